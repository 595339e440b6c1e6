"""Socket type names and menu categories shared by the nodes."""

FACES = "FACES"  # face.faces.FaceSet
FACE_DIFFUSION_TYPE = "FACE_DIFFUSION"  # restore.priors.FacePrior
DIFFUSION_STATE = "FACE_DIFFUSION_STATE"  # diffusion.difface.DiffusionState
FACE_ENHANCER = "FACE_ENHANCER"  # restore.enhancers.FaceEnhancer
DEGRADATION_MODEL_TYPE = "DEGRADATION_MODEL"  # restore.degradation.DegradationModelHandle
DEGRADATION = "DEGRADATION"  # models.degradation.Degradation

CATEGORY_ROOT = "Diffusion Face Restore"
CATEGORY_FACES = f"{CATEGORY_ROOT}/faces"
CATEGORY_DIFFUSION = f"{CATEGORY_ROOT}/diffusion"
CATEGORY_DR_BFR = f"{CATEGORY_ROOT}/DR-BFR"

# marks a combo input that lists the files of a model folder (for workflow checks)
MODEL_FOLDER_OPTION = "dfr_model_folder"
