"""Socket type names and menu categories shared by the nodes."""

FACES = "FACES"  # face.faces.FaceSet
FACE_DIFFUSION_TYPE = "FACE_DIFFUSION"  # nodes.diffusion_nodes.FacePrior
DIFFUSION_STATE = "FACE_DIFFUSION_STATE"  # diffusion.difface.DiffusionState
FACE_ENHANCER = "FACE_ENHANCER"  # nodes.enhancer_nodes.FaceEnhancer
DEGRADATION_MODEL_TYPE = "DEGRADATION_MODEL"  # nodes.drbfr_nodes.DegradationModelHandle
DEGRADATION = "DEGRADATION"  # nodes.drbfr_nodes.Degradation

CATEGORY_ROOT = "Diffusion Face Restore"
CATEGORY_FACES = f"{CATEGORY_ROOT}/faces"
CATEGORY_DIFFUSION = f"{CATEGORY_ROOT}/diffusion"
CATEGORY_DR_BFR = f"{CATEGORY_ROOT}/DR-BFR"

# marks a combo input that lists the files of a model folder (for workflow checks)
MODEL_FOLDER_OPTION = "dfr_model_folder"
