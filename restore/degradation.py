"""DR-BFR's degradation representation: loading a trained bundle and encoding aligned crops into
per-face embeddings, severity estimates and cross-attention tokens."""
from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from .. import runtime
from ..face.image import check_image_batch
from ..models import DEGRADATION_MODEL
from ..models.degradation import SEVERITY_NAMES, Degradation, DegradationModel
from .checks import expect
from .weights import find_weights, load_managed, weights_check

log = logging.getLogger("diffusion_face_restore")

DEGRADATION_FOLDER = "degradation_models"
ENCODER_CHUNK = 16  # faces per encoder call (the DRM is small; this bounds activation memory)


@dataclass(eq=False)
class DegradationModelHandle:
    """A loaded DRM bundle (the DEGRADATION_MODEL value)."""

    name: str
    managed: runtime.ManagedModule

    @property
    def model(self) -> DegradationModel:
        return self.managed.module


def degradation_model_check(model_name: str):
    """True when the bundle's file is in place, else the one-line missing-file message."""
    return weights_check(DEGRADATION_FOLDER, model_name, "DegradationModelLoader")


def load_degradation_model(model_name: str) -> DegradationModelHandle:
    """A DRM bundle from models/degradation_models (written by dfr.py train-drm / train-controlnet)."""
    path = find_weights(DEGRADATION_FOLDER, model_name, "DegradationModelLoader")
    descriptor, managed = load_managed(path, (DEGRADATION_MODEL,))
    descriptor.module.eval()
    tokens = descriptor.config["tokens"]
    log.info("degradation model %s: %s", model_name, f"{tokens} tokens of {descriptor.config['context_dim']}" if tokens else "no projector")
    return DegradationModelHandle(model_name, managed)


def encode_degradation(degradation_model: DegradationModelHandle, crops: torch.Tensor) -> Degradation:
    """Each crop's degradation: embedding, severity estimate and (with a stage-2 projector) tokens."""
    expect(degradation_model, DegradationModelHandle, "DegradationEncoder", "DegradationModelLoader's output")
    crops = check_image_batch(crops, "crops")
    model = degradation_model.managed.load()
    device = degradation_model.managed.device
    embeddings, severities, tokens = [], [], []
    with torch.no_grad():
        for start in range(0, crops.shape[0], ENCODER_CHUNK):
            part = crops[start:start + ENCODER_CHUNK, ..., :3].movedim(-1, 1).to(device, torch.float32)
            d = model.encode_faces(part)
            embeddings.append(d.float().cpu())
            severities.append(model.severity(d).float().cpu())
            if model.drm_projector is not None:
                tokens.append(model.drm_projector(d).float().cpu())
            runtime.check_cancel()
        null_tokens = model.drm_projector.null(1)[0].float().cpu() if model.drm_projector is not None else None
    dim, width = model.config.dim, len(SEVERITY_NAMES)
    degradation = Degradation(
        embedding=torch.cat(embeddings) if embeddings else torch.zeros((0, dim)),
        severity=torch.cat(severities) if severities else torch.zeros((0, width)),
        tokens=(torch.cat(tokens) if tokens else torch.zeros((0, model.config.tokens, model.config.context_dim))) if null_tokens is not None else None,
        null_tokens=null_tokens,
        model_name=degradation_model.name,
    )
    log.info("DegradationEncoder:\n%s", degradation.describe())
    return degradation
