"""How each face restorer is called: its input size, value range and fidelity argument.

spandrel's descriptors for GFPGAN and CodeFormer feed [0, 1] images straight into networks trained
on [-1, 1] and read [-1, 1] outputs as [0, 1]: the "grey faces" other packs' users report. Here
every known face network gets its official normalisation; models we do not know are run through
spandrel's own call (its [0, 1] convention).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

# spandrel architecture name -> (native size, takes a fidelity weight)
SIGNED_RANGE_FACE_MODELS = {"GFPGAN": 512, "RestoreFormer": 512, "CodeFormer": 512}
RESIZE_MODES = ("bicubic antialias", "bicubic legacy")
# GFPGAN's StyleGAN decoder injects random noise; seeded so results repeat
GFPGAN_NOISE_SEED = 0


@dataclass
class FaceRestorer:
    """A face network and how to call it: `run(x)` maps [B, 3, S, S] in 0..1 to 0..1 (unclamped)."""

    name: str
    module: torch.nn.Module
    size: int | None  # the input size the network wants (None: any)
    signed: bool  # works on [-1, 1]
    fidelity: bool  # takes CodeFormer's fidelity weight
    spandrel_descriptor: object = None

    def run(self, x: torch.Tensor, fidelity: float = 0.5, resize: str = "bicubic antialias") -> torch.Tensor:
        """x: [B, 3, h, w] in 0..1 -> the network's output in 0..1 at its size (not clamped)."""
        if self.spandrel_descriptor is not None and not self.signed:
            return self.spandrel_descriptor(resize_for(x, self.size, resize))
        # as the official pipelines: to [-1, 1] first, then the (unclamped) resize
        signed = resize_for(x * 2 - 1, self.size, resize)
        if self.name == "GFPGAN":
            with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
                torch.manual_seed(GFPGAN_NOISE_SEED)
                out = self.module(signed, return_rgb=False)[0]
        elif self.name == "CodeFormer":
            out = self.module(signed, weight=fidelity)[0]
        elif self.name == "RestoreFormer":
            out = self.module(signed)[0]
        else:  # SPARNetHD and our other [-1, 1] networks
            out = self.module(signed)
        return (out.float() + 1) / 2


def from_descriptor(descriptor) -> FaceRestorer:
    """A FaceRestorer for one of our ModelDescriptors (SPARNet) or a spandrel descriptor."""
    if hasattr(descriptor, "architecture") and isinstance(getattr(descriptor, "architecture"), str):
        return FaceRestorer(descriptor.architecture, descriptor.module, 512, True, False)
    name = descriptor.architecture.name
    model = descriptor.model.eval()  # spandrel hands models over in training mode
    if name in SIGNED_RANGE_FACE_MODELS:
        return FaceRestorer(name, model, SIGNED_RANGE_FACE_MODELS[name], True, name == "CodeFormer", descriptor)
    if getattr(descriptor, "scale", 1) != 1:
        raise ValueError(f"{name} upscales x{descriptor.scale}: a face enhancer must keep the size")
    return FaceRestorer(name, model, None, False, False, descriptor)


def resize_for(x: torch.Tensor, size: int | None, mode: str = "bicubic antialias") -> torch.Tensor:
    """Resize to a network's size, not clamped (as DR2 feeds SPARNet).

    'bicubic antialias' is torchvision >= 0.17's tensor resize (PIL's kernel, a = -0.5);
    'bicubic legacy' is torchvision < 0.17's (a = -0.75, no antialias), which DR2's authors had.
    """
    if size is None or x.shape[-1] == size and x.shape[-2] == size:
        return x
    if mode not in RESIZE_MODES:
        raise ValueError(f"unknown resize '{mode}' (choose one of {', '.join(RESIZE_MODES)})")
    return F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False, antialias=mode == "bicubic antialias")
