"""DR-BFR: the degradation model loader, DegradationEncoder and DR-ControlNetApply.

The ControlNet itself is ComfyUI's (ControlNetLoader reads the file our stage-2 exporter writes);
the degradation tokens come from restore/degradation.py, and this module adds them to ComfyUI's
conditioning.
"""
from __future__ import annotations

import torch

from .. import runtime
from ..face.image import check_image_batch
from ..models.degradation import Degradation
from ..restore.checks import expect
from ..restore.degradation import DEGRADATION_FOLDER, degradation_model_check, encode_degradation, load_degradation_model
from .types import CATEGORY_DR_BFR, DEGRADATION, DEGRADATION_MODEL_TYPE, MODEL_FOLDER_OPTION


def add_tokens(conditioning: list, tokens: torch.Tensor) -> list:
    """ComfyUI CONDITIONING with `tokens` [B or 1, K, C] appended to every entry's cross-attention
    context, after its own tokens. A single-prompt context [1, T, C] is repeated to the B faces."""
    out = []
    for context, options in conditioning:
        if context.shape[-1] != tokens.shape[-1]:
            raise ValueError(
                f"the degradation tokens are {tokens.shape[-1]} wide but the conditioning is {context.shape[-1]} wide: "
                "use a degradation bundle trained for this base model (768 for SD1.5, 1024 for SD2.x)"
            )
        batch = max(context.shape[0], tokens.shape[0])
        if context.shape[0] not in (1, batch) or tokens.shape[0] not in (1, batch):
            raise ValueError(f"the conditioning has {context.shape[0]} entries but there are {tokens.shape[0]} faces: use one prompt or one per face")
        extra = tokens.to(context.device, context.dtype).expand(batch, -1, -1)
        out.append([torch.cat([context.expand(batch, -1, -1), extra], dim=1), options.copy()])
    return out


class DegradationModelLoader:
    DESCRIPTION = (
        "Loads a DR-BFR degradation bundle from models/degradation_models: the Degradation Representation "
        "Module (and, after stage-2 training, its token projector), one .safetensors written by "
        "'python dfr.py train-drm' / 'train-controlnet'. DR-BFR released no weights: you train them."
    )
    CATEGORY = CATEGORY_DR_BFR
    FUNCTION = "load"
    RETURN_TYPES = (DEGRADATION_MODEL_TYPE,)
    RETURN_NAMES = ("degradation_model",)
    OUTPUT_TOOLTIPS = ("The degradation model, for DegradationEncoder.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model_name": (runtime.list_model_files(DEGRADATION_FOLDER), {MODEL_FOLDER_OPTION: DEGRADATION_FOLDER, "tooltip": (
                    "A bundle in models/degradation_models: drm_projector.safetensors from stage 2 (for DR-ControlNetApply) "
                    "or drm.safetensors from stage 1 (severity estimates and adaptive DR2 only).")}),
            }
        }

    @classmethod
    def VALIDATE_INPUTS(cls, model_name):
        return degradation_model_check(model_name)

    def load(self, model_name):
        return (load_degradation_model(model_name),)


class DegradationEncoder:
    DESCRIPTION = (
        "DR-BFR's Degradation Representation Module on aligned face crops: an embedding of how each face is "
        "degraded (not of who it is), its cross-attention tokens for DR-ControlNetApply, and an estimate of "
        "blur, downscale, noise and JPEG quality you can read (also drives adaptive DR2 in DR2GuidedSampler)."
    )
    CATEGORY = CATEGORY_DR_BFR
    FUNCTION = "encode"
    RETURN_TYPES = (DEGRADATION, "STRING")
    RETURN_NAMES = ("degradation", "estimate")
    OUTPUT_TOOLTIPS = (
        "Per-face degradation embedding, severity and tokens.",
        "A readable estimate per face: severity 0..1, blur sigma, downscale factor, noise sigma, JPEG quality.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "degradation_model": (DEGRADATION_MODEL_TYPE, {"tooltip": "The DRM bundle (DegradationModelLoader)."}),
                "crops": ("IMAGE", {"tooltip": "Aligned face crops (FaceDetect's crops), any size: resized to the size the DRM was trained at."}),
            }
        }

    def encode(self, degradation_model, crops):
        degradation = encode_degradation(degradation_model, crops)
        text = degradation.describe()
        return {"ui": {"text": [text]}, "result": (degradation, text)}


class DRControlNetApply:
    DESCRIPTION = (
        "DR-BFR's conditioning: ComfyUI's ControlNet (trained by 'dfr.py train-controlnet', loaded with "
        "ControlNetLoader) gets the degraded crops as its hint, chained like Apply ControlNet (Advanced); the "
        "degradation tokens are appended to the positive context and the learned null tokens to the negative, "
        "so both have the same length and still run as one batch. One conditioning entry per face: feed "
        "KSampler a latent with one entry per crop (VAEEncode of the crops)."
    )
    CATEGORY = CATEGORY_DR_BFR
    FUNCTION = "apply"
    RETURN_TYPES = ("CONDITIONING", "CONDITIONING")
    RETURN_NAMES = ("positive", "negative")
    OUTPUT_TOOLTIPS = (
        "The prompt with the DR tokens and the ControlNet, one entry per face (KSampler's positive).",
        "The negative prompt with the null tokens and the same ControlNet (KSampler's negative).",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "positive": ("CONDITIONING", {"tooltip": "The prompt's conditioning (CLIPTextEncode), e.g. 'a high quality photo of a face'."}),
                "negative": ("CONDITIONING", {"tooltip": "The negative prompt's conditioning."}),
                "control_net": ("CONTROL_NET", {"tooltip": "The DR-BFR ControlNet (ControlNetLoader on dr_controlnet.safetensors)."}),
                "crops": ("IMAGE", {"tooltip": "The degraded aligned crops (FaceDetect's crops): the ControlNet's hint."}),
                "degradation": (DEGRADATION, {"tooltip": "DegradationEncoder's output for the same crops (needs a stage-2 bundle with a projector)."}),
                "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01, "tooltip": (
                    "How strongly the ControlNet steers: lower trusts the base model more (more detail, less fidelity).")}),
                "start_percent": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.001, "tooltip": "Where in the sampling the ControlNet starts."}),
                "end_percent": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.001, "tooltip": "Where in the sampling the ControlNet stops."}),
            },
            "optional": {
                "vae": ("VAE", {"tooltip": "Only for ControlNets that take a latent hint (as core Apply ControlNet)."}),
            },
        }

    def apply(self, positive, negative, control_net, crops, degradation, strength, start_percent, end_percent, vae=None):
        expect(degradation, Degradation, "DR-ControlNetApply", "DegradationEncoder's output")
        if degradation.tokens is None:
            raise ValueError(
                f"{degradation.model_name} has no token projector (a stage-1 bundle): train stage 2 "
                f"({runtime.command('train-controlnet CONFIG')}) and load its drm_projector.safetensors"
            )
        crops = check_image_batch(crops, "crops")
        if crops.shape[0] != len(degradation):
            raise ValueError(f"{crops.shape[0]} crops but a degradation of {len(degradation)} faces: encode the same crops")
        positive = add_tokens(positive, degradation.tokens)
        negative = add_tokens(negative, degradation.null_tokens[None].expand(len(degradation), -1, -1))
        if strength == 0:
            return (positive, negative)
        hint = crops[..., :3].movedim(-1, 1)
        controls = {}  # one ControlNet per previous one, shared by positive and negative (as the core node)
        out = []
        for conditioning in (positive, negative):
            entries = []
            for context, options in conditioning:
                previous = options.get("control", None)
                if previous not in controls:
                    control = control_net.copy().set_cond_hint(hint, strength, (start_percent, end_percent), vae=vae)
                    control.set_previous_controlnet(previous)
                    controls[previous] = control
                options["control"] = controls[previous]
                options["control_apply_to_uncond"] = False
                entries.append([context, options])
            out.append(entries)
        return (out[0], out[1])
