"""Pixel-space face diffusion priors (DifFace's iDDPM UNet, DR2's ADM UNet): loading, and a
denoiser that runs batches of faces on the device in chunks that fit."""
from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from .. import runtime
from ..models import FACE_DIFFUSION, ModelDescriptor
from .weights import find_weights, load_managed, weights_check

log = logging.getLogger("diffusion_face_restore")

PRIOR_FOLDER = "face_diffusion"
# activation memory of one 512 x 512 face through the UNet, float32 (scaled by area and dtype)
UNET_BYTES_PER_FACE_512 = 768 * 2 ** 20
# how the UNet's convolutions run: NCHW as the official code (its results bit for bit), or
# channels-last (1.2-1.6x faster on a CPU, ~1e-6 per call from the official, ~2e-4 after 100 steps)
CONVOLUTIONS = {"exact": torch.contiguous_format, "channels-last (faster)": torch.channels_last}


@dataclass(eq=False)
class FacePrior:
    """A loaded pixel-space face diffusion prior (the FACE_DIFFUSION value)."""

    name: str
    descriptor: ModelDescriptor
    managed: runtime.ManagedModule
    dtype: torch.dtype
    memory_format: torch.memory_format = torch.contiguous_format  # of every tensor the UNet sees

    @property
    def image_size(self) -> int:
        return int(self.descriptor.config["image_size"])

    @property
    def learn_sigma(self) -> bool:
        return self.descriptor.config["out_channels"] == 2 * self.descriptor.config["in_channels"]

    def bytes_per_face(self) -> int:
        scale = (self.image_size / 512) ** 2 * (0.6 if self.dtype != torch.float32 else 1.0)
        return int(UNET_BYTES_PER_FACE_512 * scale)

    def denoiser(self, batch: int):
        """denoise(x, t) on the device, in chunks that fit; halves the chunk on out-of-memory."""
        module = self.managed.load(memory_required=self.bytes_per_face() * max(1, batch))
        device = self.managed.device
        chunk = [runtime.items_that_fit(self.bytes_per_face(), batch)]

        def denoise(x: torch.Tensor, t: int) -> torch.Tensor:
            outputs, start = [], 0
            while start < x.shape[0]:
                # one memory format on purpose: the convolutions' rounding depends on it (channels-
                # last inputs differ from the official NCHW run by ~1e-6 per call)
                part = x[start:start + chunk[0]].to(device).contiguous(memory_format=self.memory_format)
                try:
                    timesteps = torch.full((part.shape[0],), t, dtype=torch.int64, device=device)
                    outputs.append(module(part, timesteps).float())
                    start += part.shape[0]
                except Exception as error:  # noqa: BLE001 - only out-of-memory is retried
                    if not runtime.is_out_of_memory(error) or chunk[0] == 1:
                        raise
                    chunk[0] = max(1, chunk[0] // 2)
                    runtime.free_cached_memory()
                    log.warning("out of memory: now %d face(s) at a time through the UNet", chunk[0])
            return torch.cat(outputs)

        return denoise


def prior_check(model_name: str):
    """True when the prior's file is in place, else the one-line missing-file message."""
    return weights_check(PRIOR_FOLDER, model_name, "FaceDiffusionLoader")


def load_prior(model_name: str, precision: str = "auto", convolutions: str = "exact") -> FacePrior:
    """A face prior from models/face_diffusion (as released or converted to .safetensors), loaded once
    per file and dtype; precision auto = bf16 or fp16 where the device does them well."""
    if convolutions not in CONVOLUTIONS:
        raise ValueError(f"unknown convolutions '{convolutions}' (choose one of {', '.join(CONVOLUTIONS)})")
    path = find_weights(PRIOR_FOLDER, model_name, "FaceDiffusionLoader")
    dtype = runtime.pick_dtype(precision)
    descriptor, managed = load_managed(path, (FACE_DIFFUSION,), dtype, CONVOLUTIONS[convolutions])
    log.info("face prior %s: %s, %d px, %s", model_name, descriptor.architecture, descriptor.config["image_size"], dtype)
    return FacePrior(model_name, descriptor, managed, dtype, CONVOLUTIONS[convolutions])
