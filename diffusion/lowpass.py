"""DR2's low-pass operator Phi_N: a MATLAB-style antialiased cubic resize down by N and back up.

The official code uses the ILVR "Resizer" (a MATLAB imresize clone): separable, Keys cubic
(a = -0.5, width 4), stretched by N and scaled by 1/N when shrinking (antialiasing), weights
normalised per output pixel, mirror reflection at the borders, and sample positions
p_in = p_out / s + 0.5 (1 - 1 / s) in 1-based pixel units (reference-algorithms.md B.4).

Here each 1-D resize is a dense (out x in) matrix built once in float64 and used in float32, so
Phi_N(x) = U (D x D^T) U^T per channel: four small matrix products on the device.
"""
from __future__ import annotations

import functools

import numpy as np
import torch

KERNEL_WIDTH = 4.0


def keys_cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's 'cubic')."""
    ax = np.abs(x)
    return (1.5 * ax ** 3 - 2.5 * ax ** 2 + 1) * (ax <= 1) + (-0.5 * ax ** 3 + 2.5 * ax ** 2 - 4 * ax + 2) * ((1 < ax) & (ax <= 2))


def resize_matrix(in_length: int, out_length: int) -> np.ndarray:
    """The (out x in) float64 matrix of a 1-D MATLAB-style cubic resize of in_length samples."""
    scale = out_length / in_length
    antialias = scale < 1
    kernel = (lambda d: scale * keys_cubic(scale * d)) if antialias else keys_cubic
    width = KERNEL_WIDTH / scale if antialias else KERNEL_WIDTH
    out_coordinates = np.arange(1, out_length + 1) - (out_length - in_length * scale) / 2
    centres = out_coordinates / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(centres - width / 2)
    taps = left[:, None] + np.arange(np.ceil(width) + 2) - 1  # the input pixels each output sees (0-based)
    weights = kernel(centres[:, None] - taps - 1)
    sums = weights.sum(axis=1, keepdims=True)
    weights = weights / np.where(sums == 0, 1.0, sums)
    # mirror reflection at both borders (edge sample repeated), as the Resizer's index trick
    mirror = np.concatenate([np.arange(in_length), np.arange(in_length - 1, -1, -1)])
    sources = mirror[np.mod(taps.astype(np.int64), 2 * in_length)]
    matrix = np.zeros((out_length, in_length))
    rows = np.repeat(np.arange(out_length)[:, None], taps.shape[1], axis=1)
    np.add.at(matrix, (rows, sources), weights)
    return matrix


@functools.lru_cache(maxsize=32)
def _matrices(size: int, factor: int) -> tuple[torch.Tensor, torch.Tensor]:
    small = size // factor
    down = torch.tensor(resize_matrix(size, small), dtype=torch.float32)
    up = torch.tensor(resize_matrix(small, size), dtype=torch.float32)
    return down, up


def check_lowpass_factor(factor: int, size: int):
    """N must be a whole number >= 1 that divides the prior's size (the low-pass resizes by it)."""
    if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)) or factor < 1 or size % factor:
        raise ValueError(
            f"N = {factor} is not a low-pass factor for a {size} px prior: use 1 (no guidance mixing) or a "
            f"divisor of {size} (the paper uses 4, 8 and 16)"
        )


class LowPass:
    """Phi_N for square images of `size`: x -> up(down(x)), batched, on x's device."""

    def __init__(self, size: int, factor: int):
        check_lowpass_factor(factor, size)
        self.size, self.factor = size, factor
        self._down, self._up = _matrices(size, factor)

    def down(self, x: torch.Tensor) -> torch.Tensor:
        d = self._down.to(x.device, x.dtype)
        return torch.matmul(torch.matmul(d, x), d.transpose(0, 1))

    def up(self, x: torch.Tensor) -> torch.Tensor:
        u = self._up.to(x.device, x.dtype)
        return torch.matmul(torch.matmul(u, x), u.transpose(0, 1))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.down(x))
