"""Socket type names, menu categories and input checks shared by the nodes."""

FACES = "FACES"  # face.faces.FaceSet
FACE_DIFFUSION_TYPE = "FACE_DIFFUSION"  # nodes.diffusion_nodes.FacePrior
DIFFUSION_STATE = "FACE_DIFFUSION_STATE"  # diffusion.difface.DiffusionState
FACE_ENHANCER = "FACE_ENHANCER"  # nodes.enhancer_nodes.FaceEnhancer
DEGRADATION_MODEL_TYPE = "DEGRADATION_MODEL"  # nodes.drbfr_nodes.DegradationModelHandle
DEGRADATION = "DEGRADATION"  # models.degradation.Degradation

CATEGORY_ROOT = "Diffusion Face Restore"
CATEGORY_FACES = f"{CATEGORY_ROOT}/faces"
CATEGORY_DIFFUSION = f"{CATEGORY_ROOT}/diffusion"
CATEGORY_DR_BFR = f"{CATEGORY_ROOT}/DR-BFR"

# marks a combo input that lists the files of a model folder (for workflow checks)
MODEL_FOLDER_OPTION = "dfr_model_folder"

# why a diffusion output can hold NaN: said wherever such pixels are refused
FP16_OVERFLOW_HINT = "a face prior in fp16 can overflow: set FaceDiffusionLoader's precision to bf16 or fp32"


def expect(value, cls, what: str, source: str):
    """`value` if it is a `cls`, else a one-line error that says which output to connect."""
    if not isinstance(value, cls):
        raise TypeError(f"{what} got a {type(value).__name__}: connect the {source}")
    return value
