"""DR2 (CVPR 2023) around its sampler: the start step omega, the guide, the settings.

N (the low-pass factor), tau (where the clean face is read off) and omega (where the diffusion
starts) are given on DR2's 0..99 scale of its 100-step respacing; with another respacing they
are mapped to the same relative position (Schedule.index_for_fraction).
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

# The official DR2E.inference table: omega = tau + offset, by N.
OMEGA_OFFSETS = ((1, 5), (2, 10), (4, 20), (8, 25))
OMEGA_OFFSET_ABOVE_8 = 30
LAST_STEP = 99  # on the 0..99 scale

# (N, tau) of the official demo folders: mild, medium and severe degradation.
DEMO_SETTINGS = {"mild": (4, 22), "medium": (8, 35), "severe": (16, 35)}
# Degradation-adaptive DR2 (our addition): a severity score in 0..1 (models/degradation.py
# severity_score) picks one of the demo settings; heavier damage gets a stronger low-pass and a later tau.
SEVERITY_THRESHOLDS = ((0.25, "mild"), (0.5, "medium"))


def settings_for_severity(score: float) -> tuple[int, int]:
    """(N, tau) for a severity score: below 0.25 mild (4, 22), below 0.5 medium (8, 35), else severe (16, 35)."""
    name = next((name for limit, name in SEVERITY_THRESHOLDS if score < limit), "severe")
    return DEMO_SETTINGS[name]


def automatic_omega(factor: int, tau: int) -> int:
    """The official omega for (N, tau), capped at 99.

    The official code takes min(tau + offset, 100) and then fails with an IndexError when that is
    100 (a 100-step schedule has no step 100); capping at 99 is the one deliberate change.
    """
    offset = next((o for limit, o in OMEGA_OFFSETS if factor <= limit), OMEGA_OFFSET_ABOVE_8)
    return min(tau + offset, LAST_STEP)


def check_steps(tau: int, omega: int):
    if not 0 <= tau <= LAST_STEP:
        raise ValueError(f"tau = {tau} is outside 0..{LAST_STEP}")
    if not tau <= omega <= LAST_STEP:
        raise ValueError(f"omega = {omega} must lie between tau = {tau} and {LAST_STEP} (0 = automatic)")


def prepare_guide(crops: torch.Tensor, size: int) -> torch.Tensor:
    """IMAGE [B, H, W, C] 0..1 -> [B, 3, size, size] in [-1, 1], as DR2 reads its input.

    The official code resizes 8-bit images with PIL's bicubic filter; so do we (the crops are
    quantised to 8 bits first). Crops already at `size` are used as they are. The result is NCHW-
    contiguous, as the official tensors are (a channels-last view would change the convolutions'
    rounding in every step built from it).
    """
    rgb = crops[..., :3].to(torch.float32)
    if rgb.shape[1:3] != (size, size):
        resized = []
        for crop in rgb.clamp(0, 1).cpu().numpy():
            image = Image.fromarray(np.rint(crop * 255).astype(np.uint8)).resize((size, size), Image.BICUBIC)
            resized.append(np.asarray(image, dtype=np.float32) / 255.0)
        rgb = torch.from_numpy(np.stack(resized)) if resized else rgb.new_zeros((0, size, size, 3))
    return ((rgb.permute(0, 3, 1, 2) - 0.5) / 0.5).contiguous()
