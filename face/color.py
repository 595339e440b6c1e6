"""Colour matching of a restored face to the original crop (stops colour shifts).

- adain: per-channel mean and standard deviation of the face made equal to the original's;
- wavelet: the restored face keeps its fine detail, the low frequencies (colour, shading) come from
  the original, the StableSR colour fix: five levels of a dilated 3x3 Gaussian ("a trous").
"""
from __future__ import annotations

import cv2
import numpy as np

COLOR_MATCH_MODES = ("none", "adain", "wavelet")
WAVELET_LEVELS = 5
_GAUSS_3 = np.array([1.0, 2.0, 1.0]) / 4.0


def weighted_mean_std(image: np.ndarray, weights: np.ndarray | None):
    pixels = image.reshape(-1, image.shape[-1]).astype(np.float64)
    if weights is None:
        weights = np.ones(pixels.shape[0])
    weights = weights.reshape(-1).astype(np.float64)
    total = weights.sum()
    if total <= 0:
        weights, total = np.ones(pixels.shape[0]), float(pixels.shape[0])
    mean = (pixels * weights[:, None]).sum(0) / total
    std = np.sqrt(((pixels - mean) ** 2 * weights[:, None]).sum(0) / total)
    return mean, std


def adain_match(restored: np.ndarray, reference: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    mean_r, std_r = weighted_mean_std(restored, weights)
    mean_o, std_o = weighted_mean_std(reference, weights)
    matched = (restored - mean_r) / np.maximum(std_r, 1e-6) * std_o + mean_o
    return matched.astype(np.float32)


def wavelet_low_frequency(image: np.ndarray, levels: int = WAVELET_LEVELS) -> np.ndarray:
    low = image.astype(np.float32)
    for level in range(levels):
        radius = 2 ** level
        kernel = np.zeros(2 * radius + 1)
        kernel[[0, radius, 2 * radius]] = _GAUSS_3
        low = cv2.sepFilter2D(low, -1, kernel, kernel, borderType=cv2.BORDER_REPLICATE)
    return low


def wavelet_match(restored: np.ndarray, reference: np.ndarray) -> np.ndarray:
    return (restored - wavelet_low_frequency(restored) + wavelet_low_frequency(reference)).astype(np.float32)


def match_color(restored: np.ndarray, reference: np.ndarray, mode: str, weights: np.ndarray | None = None) -> np.ndarray:
    """restored, reference: HxWx3 float32 in 0..1 of the same size; weights: HxW where to measure."""
    if mode == "none":
        return restored
    if mode == "adain":
        return np.clip(adain_match(restored, reference, weights), 0.0, 1.0)
    if mode == "wavelet":
        return np.clip(wavelet_match(restored, reference), 0.0, 1.0)
    raise ValueError(f"unknown colour matching '{mode}' (choose one of {', '.join(COLOR_MATCH_MODES)})")
