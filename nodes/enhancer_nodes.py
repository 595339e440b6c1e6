"""FaceEnhancerLoader and Enhancer: a face restorer that adds detail to aligned crops (restore/enhancers.py)."""
from __future__ import annotations

from .. import runtime
from ..models.face_restorers import RESIZE_MODES
from ..restore.enhancers import ENHANCER_FOLDER, enhance_faces, enhancer_check, load_face_enhancer
from .types import CATEGORY_FACES, FACE_ENHANCER, MODEL_FOLDER_OPTION


class FaceEnhancerLoader:
    DESCRIPTION = (
        "Loads a face restorer from models/facerestore_models: DR2's SPARNetHD (SPARNetHD_FFHQ_DR2aug.pth), "
        "GFPGAN, RestoreFormer, CodeFormer (with spandrel_extra_arches) and other face models spandrel knows, "
        "each run with its correct input and output range."
    )
    CATEGORY = CATEGORY_FACES
    FUNCTION = "load"
    RETURN_TYPES = (FACE_ENHANCER,)
    RETURN_NAMES = ("enhancer",)
    OUTPUT_TOOLTIPS = ("The face restorer, for Enhancer.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model_name": (runtime.list_model_files(ENHANCER_FOLDER), {MODEL_FOLDER_OPTION: ENHANCER_FOLDER, "tooltip": (
                    "A file in models/facerestore_models (shared with other face packs).")}),
            }
        }

    @classmethod
    def VALIDATE_INPUTS(cls, model_name):
        return enhancer_check(model_name)

    def load(self, model_name):
        return (load_face_enhancer(model_name),)


class Enhancer:
    DESCRIPTION = (
        "Restores detail on aligned face crops with a face restorer: DR2's SPARNetHD after DR2GuidedSampler "
        "(as in the paper), or GFPGAN, RestoreFormer, CodeFormer... Connect a FaceEnhancerLoader output or any "
        "ComfyUI upscale model of a face network (Load Upscale Model). Crops are resized to the network's size "
        "(512) and the output stays at that size (PasteBack resizes)."
    )
    CATEGORY = CATEGORY_FACES
    FUNCTION = "enhance"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("faces",)
    OUTPUT_TOOLTIPS = ("The enhanced face crops, at the network's size.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "crops": ("IMAGE", {"tooltip": "Aligned face crops (FaceDetect's crops or a sampler's faces)."}),
                "fidelity": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.05, "tooltip": (
                    "CodeFormer's fidelity weight w: 0 = most generated detail, 1 = closest to the input. "
                    "Other networks ignore it.")}),
                "resize": (list(RESIZE_MODES), {"default": RESIZE_MODES[0], "tooltip": (
                    "How crops are resized to the network's size. bicubic antialias: today's torchvision; "
                    "bicubic legacy: torchvision < 0.17, what DR2's authors had (their SPARNet results).")}),
            },
            "optional": {
                "enhancer": (FACE_ENHANCER, {"tooltip": "A FaceEnhancerLoader output."}),
                "upscale_model": ("UPSCALE_MODEL", {"tooltip": "Or a face network loaded with ComfyUI's Load Upscale Model."}),
            },
        }

    def enhance(self, crops, fidelity, resize, enhancer=None, upscale_model=None):
        return (enhance_faces(crops, fidelity, resize, enhancer, upscale_model),)
