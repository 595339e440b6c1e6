"""Conversions between ComfyUI IMAGE tensors ([B, H, W, C] float 0..1) and numpy photos."""
from __future__ import annotations

import numpy as np
import torch


def rgb_view(photo: np.ndarray) -> np.ndarray:
    """The RGB channels of an HxWxC photo: grey (C = 1 or 2) is repeated, alpha is dropped."""
    if photo.ndim == 2:
        photo = photo[..., None]
    channels = photo.shape[-1]
    if channels >= 3:
        return photo[..., :3]
    return np.repeat(photo[..., :1], 3, axis=-1)


def image_to_numpy(image: torch.Tensor) -> np.ndarray:
    """One IMAGE item [H, W, C] -> float32 numpy (no copy for contiguous float32 CPU tensors)."""
    array = image.detach()
    if array.device.type != "cpu":
        array = array.cpu()
    return np.ascontiguousarray(array.float().numpy())


def to_uint8(photo: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(photo * 255.0), 0, 255).astype(np.uint8)


def check_image_batch(image: torch.Tensor, what: str = "image") -> torch.Tensor:
    """Validate an IMAGE input; a single [H, W, C] image becomes a batch of one."""
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"{what} must be an IMAGE tensor, got {type(image).__name__}")
    if image.ndim == 3:
        image = image[None]
    if image.ndim != 4 or image.shape[-1] not in (1, 2, 3, 4):
        raise ValueError(f"{what} must be an IMAGE of shape [batch, height, width, channels], got {tuple(image.shape)}")
    return image
