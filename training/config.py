"""Training configurations, read from JSON files (examples in training/configs/)."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields


@dataclass
class Stage1Config:
    """Stage 1: the Degradation Representation Module on HQ faces degraded on the fly."""

    faces: list = field(default_factory=list)  # folders and/or image files of HQ faces
    out_dir: str = "runs/drm"
    size: int = 512  # faces are resized to size x size, then degraded
    crop: int = 128  # the encoder sees random crops of the LQ face this big
    preset: str = "drm"  # degradation ranges (degradations/synthetic.py PRESETS)
    groups: int = 8  # degradations per batch
    faces_per_group: int = 4  # each degradation is applied to this many different faces
    steps: int = 20000
    lr: float = 1e-3
    weight_decay: float = 1e-4
    temperature: float = 0.1
    contrastive_weight: float = 1.0
    reconstruction_weight: float = 1.0
    # the severity MSE (0..1 targets) is ~50x smaller than the contrastive loss: at 1.0 the head learned
    # nothing in 1000 CPU steps on one machine; 30 orders the ladder and lifts the pair AUC (drm_quality)
    severity_weight: float = 30.0
    dim: int = 256
    widths: list = field(default_factory=lambda: [64, 128, 256, 256])
    seed: int = 0
    checkpoint_every: int = 500
    log_every: int = 10
    max_minutes: float = 0.0  # stop (with a checkpoint) after this long; 0 = no limit
    device: str = "auto"
    bf16: bool = True  # autocast in bf16 on a CUDA device that supports it

    @classmethod
    def from_dict(cls, values: dict) -> "Stage1Config":
        return _from_dict(cls, values)


@dataclass
class Stage2Config:
    """Stage 2: a ControlNet and the DR token projector against a frozen Stable Diffusion UNet."""

    base_model: str = ""  # a diffusers folder: unet/, vae/, scheduler/ (text_encoder/ + tokenizer/ optional)
    drm: str = ""  # the stage-1 bundle (.safetensors)
    faces: list = field(default_factory=list)
    out_dir: str = "runs/controlnet"
    resolution: int = 512
    batch: int = 4
    steps: int = 50000
    lr_controlnet: float = 1e-5
    lr_projector: float = 1e-4
    tokens: int = 16  # K DR tokens added to the cross-attention context
    dr_dropout: float = 0.1  # null tokens instead, for classifier-free guidance
    prompt: str = ""  # the text the tokens are added to (the text encoder of base_model encodes it)
    prompt_embedding: str = ""  # or a .safetensors with "embedding" [77, context] when there is no text encoder
    preset: str = "difface"
    conditioning_channels: list = field(default_factory=lambda: [16, 32, 96, 256])
    seed: int = 0
    checkpoint_every: int = 1000
    log_every: int = 10
    max_minutes: float = 0.0
    device: str = "auto"
    bf16: bool = True

    @classmethod
    def from_dict(cls, values: dict) -> "Stage2Config":
        return _from_dict(cls, values)


def _from_dict(cls, values: dict):
    known = {f.name for f in fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"unknown {cls.__name__} settings: {', '.join(sorted(unknown))} (known: {', '.join(sorted(known))})")
    return cls(**values)


def load_config(path: str, cls):
    with open(path, encoding="utf-8") as handle:
        return cls.from_dict(json.load(handle))


def save_config(config, path: str):
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(asdict(config), handle, indent=2)
