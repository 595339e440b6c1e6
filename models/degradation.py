"""DR-BFR's Degradation Representation Module (DRM), as we design it (no code or weights were
released; bfr-research.md A.2 has the reasoning).

- encoder: LQ face -> d in R^dim. A DASR-style CNN, widened; global average pooling throws the
  spatial layout (content) away, so d can only describe the degradation.
- projection head (contrastive loss only): d -> L2-normalised 128-d.
- degrader (reconstruction loss only): HQ + d -> the LQ face without its noise, through FiLM-modulated
  residual blocks; it forces d to carry the whole degradation.
- severity head (our addition, supervised by the known synthetic parameters): d -> blur, scale,
  noise, JPEG, normalised to 0..1; gives the readable estimate and drives adaptive DR2.
- projector (trained in stage 2 with the ControlNet): d -> K cross-attention tokens of the base
  model's context width (768 for SD1.5, 1024 for SD2.x), and K learned null tokens (no degradation
  information: the negative / dropped condition).

All of it is one nn.Module saved as one .safetensors bundle; its metadata holds the configuration.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from . import DEGRADATION_MODEL, Architecture, ModelDescriptor, has_keys

SEVERITY_NAMES = ("blur", "scale", "noise", "jpeg")


def normalise_severity(blur: float, scale: float, noise: float, jpeg: int) -> list[float]:
    """Degradation parameters -> 0..1 per quantity (the severity head's targets)."""
    return [
        min(1.0, blur / 15.0),
        min(1.0, max(0.0, math.log(max(scale, 1.0)) / math.log(32.0))),
        min(1.0, noise / 20.0),
        min(1.0, max(0.0, (100 - jpeg) / 70.0)),
    ]


def readable_severity(values) -> dict:
    """0..1 severity values -> the parameters they stand for."""
    blur, scale, noise, jpeg = (float(v) for v in values)
    return {
        "blur_sigma": 15.0 * blur,
        "downscale": 32.0 ** max(0.0, scale),
        "noise_sigma": 20.0 * noise,
        "jpeg_quality": 100.0 - 70.0 * jpeg,
    }


# How the four quantities add up to one severity score (blur and scale dominate face degradation).
SEVERITY_WEIGHTS = (0.35, 0.35, 0.2, 0.1)


def severity_score(values: torch.Tensor) -> torch.Tensor:
    """[..., 4] normalised severities -> [...] one score in 0..1."""
    weights = torch.tensor(SEVERITY_WEIGHTS, dtype=values.dtype, device=values.device)
    return (values.clamp(0, 1) * weights).sum(-1)


@dataclass(eq=False)
class Degradation:
    """A measured degradation, per face (DegradationEncoder's DEGRADATION value). All on the CPU.

    embedding [B, dim]; severity [B, 4] in 0..1 (blur, scale, noise, jpeg); tokens [B, K, C] and
    null_tokens [K, C] when the bundle has a projector (stage 2), else None.
    """

    embedding: torch.Tensor
    severity: torch.Tensor
    tokens: torch.Tensor | None
    null_tokens: torch.Tensor | None
    model_name: str

    def __len__(self) -> int:
        return self.embedding.shape[0]

    def scores(self) -> torch.Tensor:
        """[B] one severity score per face, 0 (clean) .. 1 (very damaged)."""
        return severity_score(self.severity)

    def describe(self) -> str:
        lines = []
        for index, (values, score) in enumerate(zip(self.severity.tolist(), self.scores().tolist())):
            readable = readable_severity(values)
            lines.append(
                f"face {index}: severity {score:.2f} | blur sigma ~{readable['blur_sigma']:.1f} px, "
                f"downscale ~x{readable['downscale']:.1f}, noise sigma ~{readable['noise_sigma']:.1f}/255, "
                f"JPEG quality ~{readable['jpeg_quality']:.0f}"
            )
        return "\n".join(lines) if lines else "no faces"


@dataclass
class DRMConfig:
    dim: int = 256
    widths: list = field(default_factory=lambda: [64, 128, 256, 256])
    projection_dim: int = 128
    degrader_width: int = 32
    degrader_blocks: int = 2
    tokens: int = 0  # K; 0 until stage 2 adds the projector
    context_dim: int = 768
    image_size: int = 512  # faces were degraded at this size in training; inference resizes to it


def conv(in_ch, out_ch, stride=1):
    return nn.Conv2d(in_ch, out_ch, 3, stride, 1)


HIGH_PASS_GAIN = 16.0  # the residual is small (std ~0.03 on faces): bring it to the image's scale


def high_pass(x: torch.Tensor) -> torch.Tensor:
    """x minus its 3 x 3 local mean: blur, noise, blocks and missing detail live here, colour does not."""
    return x - F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)


class Encoder(nn.Module):
    """The image and its (amplified) high-pass residual -> conv stem, then per width: a stride-2 conv and a
    conv, each with LeakyReLU 0.1 -> global average and standard deviation pooling.

    No normalisation layers: a per-image norm would divide away the very energies (of noise, of
    missing detail) that measure a degradation."""

    def __init__(self, config: DRMConfig):
        super().__init__()
        self.stem = conv(6, config.widths[0])
        layers, previous = [], config.widths[0]
        for width in config.widths:
            for stride in (2, 1):
                layers += [conv(previous, width, stride), nn.LeakyReLU(0.1, inplace=True)]
                previous = width
        self.body = nn.Sequential(*layers)
        self.out = nn.Linear(2 * previous, config.dim)
        # He initialisation for LeakyReLU: with PyTorch's default conv init the input's signal shrinks
        # about 3x per layer and, 16 layers on, every image gives the same d
        for module in [self.stem, *self.body]:
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, a=0.1, nonlinearity="leaky_relu")
                nn.init.zeros_(module.bias)

    def forward(self, lq: torch.Tensor) -> torch.Tensor:
        """lq: [B, 3, H, W] in 0..1 -> d [B, dim]."""
        x = torch.cat([lq * 2 - 1, HIGH_PASS_GAIN * high_pass(lq)], dim=1)
        features = self.body(F.leaky_relu(self.stem(x), 0.1))
        pooled = torch.cat([features.mean(dim=(2, 3)), features.std(dim=(2, 3))], dim=1)
        return self.out(pooled)


class FiLMBlock(nn.Module):
    def __init__(self, width: int, dim: int):
        super().__init__()
        self.conv1, self.conv2 = conv(width, width), conv(width, width)
        self.film = nn.Linear(dim, 2 * width)

    def forward(self, x, d):
        scale, shift = self.film(d)[..., None, None].chunk(2, dim=1)
        h = F.leaky_relu(self.conv1(x), 0.2)
        return x + self.conv2(h * (1 + scale) + shift)


class Degrader(nn.Module):
    """HQ [B, 3, H, W] + d -> the LQ face (without noise), residual on the HQ input."""

    def __init__(self, config: DRMConfig):
        super().__init__()
        self.head = conv(3, config.degrader_width)
        self.blocks = nn.ModuleList(FiLMBlock(config.degrader_width, config.dim) for _ in range(config.degrader_blocks))
        self.tail = conv(config.degrader_width, 3)

    def forward(self, hq, d):
        x = self.head(hq * 2 - 1)
        for block in self.blocks:
            x = block(x, d)
        return (hq + self.tail(x)).clamp(0, 1)


class Projector(nn.Module):
    """d -> K tokens of the context width; learned null tokens for 'no degradation information'."""

    def __init__(self, config: DRMConfig):
        super().__init__()
        self.tokens, self.context_dim = config.tokens, config.context_dim
        self.mlp = nn.Sequential(nn.Linear(config.dim, 1024), nn.SiLU(), nn.Linear(1024, config.tokens * config.context_dim))
        self.norm = nn.LayerNorm(config.context_dim)
        self.null_tokens = nn.Parameter(torch.randn(config.tokens, config.context_dim) * 0.02)

    def forward(self, d):
        return self.norm(self.mlp(d).reshape(d.shape[0], self.tokens, self.context_dim))

    def null(self, batch: int) -> torch.Tensor:
        return self.norm(self.null_tokens)[None].expand(batch, -1, -1)


class DegradationModel(nn.Module):
    """The DRM bundle (keys drm_encoder.*, drm_projection.*, drm_degrader.*, drm_severity.*,
    drm_projector.*)."""

    def __init__(self, config: DRMConfig):
        super().__init__()
        self.config = config
        self.drm_encoder = Encoder(config)
        # BatchNorm in the projection head (as SimCLR) keeps the batch's features apart: without it the
        # contrastive loss collapses every embedding onto one point in the first steps
        self.drm_projection = nn.Sequential(
            nn.Linear(config.dim, config.dim), nn.BatchNorm1d(config.dim), nn.ReLU(inplace=True), nn.Linear(config.dim, config.projection_dim)
        )
        self.drm_degrader = Degrader(config)
        self.drm_severity = nn.Sequential(nn.Linear(config.dim, config.dim), nn.ReLU(inplace=True), nn.Linear(config.dim, len(SEVERITY_NAMES)))
        self.drm_projector = Projector(config) if config.tokens > 0 else None

    def encode(self, lq: torch.Tensor) -> torch.Tensor:
        return self.drm_encoder(lq)

    def encode_faces(self, crops: torch.Tensor) -> torch.Tensor:
        """Aligned crops [B, 3, H, W] 0..1 of any size -> d, at the training size (antialiased)."""
        size = self.config.image_size
        if crops.shape[-1] != size or crops.shape[-2] != size:
            crops = F.interpolate(crops, size=(size, size), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
        return self.encode(crops)

    def contrastive_features(self, d: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.drm_projection(d), dim=-1)

    def severity(self, d: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.drm_severity(d))

    def add_projector(self, tokens: int, context_dim: int) -> "DegradationModel":
        self.config.tokens, self.config.context_dim = tokens, context_dim
        self.drm_projector = Projector(self.config)
        return self


def bundle_metadata(model: DegradationModel) -> dict[str, str]:
    return {
        "dfr.architecture": "DR-BFR DRM",
        "dfr.kind": DEGRADATION_MODEL,
        "dfr.config": json.dumps(asdict(model.config)),
        "dfr.tokens": str(model.config.tokens),
        "dfr.context_dim": str(model.config.context_dim),
    }


def infer_config(state_dict: dict) -> DRMConfig:
    widths, index = [], 0
    while f"drm_encoder.body.{index}.weight" in state_dict:
        widths.append(state_dict[f"drm_encoder.body.{index}.weight"].shape[0])
        index += 4  # (stride-2 conv, activation, conv, activation) per width
    tokens, context_dim = 0, 768
    if "drm_projector.null_tokens" in state_dict:
        tokens, context_dim = state_dict["drm_projector.null_tokens"].shape
    blocks = 0
    while f"drm_degrader.blocks.{blocks}.conv1.weight" in state_dict:
        blocks += 1
    return DRMConfig(
        dim=state_dict["drm_encoder.out.weight"].shape[0],
        widths=widths,
        projection_dim=state_dict["drm_projection.3.weight"].shape[0],
        degrader_width=state_dict["drm_degrader.head.weight"].shape[0],
        degrader_blocks=blocks,
        tokens=int(tokens),
        context_dim=int(context_dim),
    )


def _detect(state_dict) -> bool:
    return has_keys(state_dict, "drm_encoder.stem.weight", "drm_encoder.out.weight", "drm_severity.2.weight")


def _build(state_dict, metadata=None) -> ModelDescriptor:
    config = infer_config(state_dict)
    if metadata and "dfr.config" in metadata:
        config.image_size = int(json.loads(metadata["dfr.config"]).get("image_size", config.image_size))
    model = DegradationModel(config)
    model.load_state_dict(state_dict, strict=True)
    return ModelDescriptor("DR-BFR DRM", DEGRADATION_MODEL, model, asdict(config))


ARCHITECTURE = Architecture("DR-BFR DRM", DEGRADATION_MODEL, _detect, _build)
