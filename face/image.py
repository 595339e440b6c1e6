"""Conversions between ComfyUI IMAGE tensors ([B, H, W, C] float 0..1) and numpy photos."""
from __future__ import annotations

import numpy as np
import torch

# the photo files read from folders (batch restoration, training faces)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")


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


def check_image_batch(image: torch.Tensor, what: str = "image", allow_empty: bool = True) -> torch.Tensor:
    """Validate an IMAGE input; a single [H, W, C] image becomes a batch of one."""
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"{what} must be an IMAGE tensor, got {type(image).__name__}")
    if image.ndim == 3:
        image = image[None]
    if image.ndim != 4 or image.shape[-1] not in (1, 2, 3, 4):
        raise ValueError(f"{what} must be an IMAGE of shape [batch, height, width, channels], got {tuple(image.shape)}")
    if not allow_empty and image.shape[0] == 0:
        raise ValueError(f"{what} is an empty batch (0 images): connect a node that outputs at least one image")
    if image.shape[0] and 0 in image.shape[1:3]:
        raise ValueError(f"{what} has no pixels ({image.shape[2]}x{image.shape[1]}): connect a real image")
    return image


INVALID_PIXELS_HINT = "the node before this one produced invalid pixels; fix it (or clamp its output) and run again"


def check_finite(image: torch.Tensor, what: str = "image", hint: str = INVALID_PIXELS_HINT) -> torch.Tensor:
    """Refuse NaN or infinite pixels, which would spread silently into crops and pasted photos.

    An error rather than a silent repair: such pixels mean the node before went wrong (an fp16
    overflow, a division by zero), and a repaired photo would hide that behind black patches.
    """
    finite = torch.isfinite(image)
    if bool(finite.all()):
        return image
    bad = ~finite
    count = int(bad.sum())
    index, y, x, _ = (int(v) for v in bad.nonzero()[0])
    raise ValueError(
        f"{what} has {count} NaN or infinite value(s) (first in image {index} at x={x}, y={y}): {hint}"
    )
