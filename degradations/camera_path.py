"""Synthetic clips from a real photo along a known camera path (for tracking and flicker tests).

Every frame is the photo warped by a smooth similarity transform A_t (a slow pan, a small rotation
and zoom), optionally degraded (noise, JPEG) with a fresh draw per frame as real footage is. The
true position of any point of the photo in frame t is A_t applied to it, so a detector's
landmarks can be compared with where the face really is.
"""
from __future__ import annotations

import math

import cv2
import numpy as np
import torch


def camera_path(frames: int, size: tuple[int, int], pan: float = 0.06, rotation_deg: float = 4.0, zoom: float = 0.06) -> np.ndarray:
    """[frames, 2, 3] affines photo -> frame: around the image centre, rotation and zoom swing
    sinusoidally, the pan (a fraction of the width) drifts on its own period."""
    height, width = size
    cx, cy = (width - 1) / 2, (height - 1) / 2
    affines = []
    for t in range(frames):
        phase = 2 * math.pi * t / max(frames, 1)
        angle = math.radians(rotation_deg) * math.sin(phase)
        scale = 1.0 + zoom * math.sin(1.3 * phase)
        dx, dy = pan * width * math.sin(0.7 * phase), 0.5 * pan * height * math.sin(1.1 * phase + 1.0)
        a, b = scale * math.cos(angle), scale * math.sin(angle)
        affines.append(np.array([[a, -b, cx - a * cx + b * cy + dx], [b, a, cy - b * cx - a * cy + dy]]))
    return np.stack(affines)


def render_clip(photo: np.ndarray, affines: np.ndarray, noise: float = 0.0, jpeg: int = 0, seed: int = 0) -> torch.Tensor:
    """The clip as an IMAGE batch [T, H, W, 3] in 0..1: photo (H x W x 3 uint8) warped by each affine
    (bicubic, edges replicated), then Gaussian noise of `noise`/255 and JPEG at quality `jpeg` (0 = none)."""
    rng = np.random.default_rng(seed)
    height, width = photo.shape[:2]
    frames = []
    for affine in affines:
        frame = cv2.warpAffine(photo, affine, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        if noise:
            frame = np.clip(frame + rng.normal(0.0, noise, frame.shape), 0, 255)
        frame = frame.round().astype(np.uint8)
        if jpeg:
            ok, encoded = cv2.imencode(".jpg", frame[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(jpeg)])
            frame = cv2.imdecode(encoded, cv2.IMREAD_COLOR)[..., ::-1]
        frames.append(frame.astype(np.float32) / 255.0)
    return torch.from_numpy(np.stack(frames))


def moved_points(points: np.ndarray, affines: np.ndarray) -> np.ndarray:
    """Where points [..., 2] of the photo are in every frame: [T, ..., 2]."""
    points = np.asarray(points, np.float64)
    return np.einsum("tij,...j->t...i", affines[:, :, :2], points) + affines[:, None, :, 2].reshape(
        (affines.shape[0],) + (1,) * (points.ndim - 1) + (2,))
