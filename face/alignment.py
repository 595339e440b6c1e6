"""Five-point FFHQ alignment: landmarks -> similarity transform -> aligned crop.

Conventions (the same as OpenCV and facexlib): points are (x, y) in pixels, pixel centres sit on
integer coordinates, and an affine is a 2x3 matrix mapping photo coordinates to crop coordinates.
"""
from __future__ import annotations

import cv2
import numpy as np

# The five FFHQ landmarks of a 512 x 512 crop, as used by facexlib, CodeFormer and DifFace:
# left eye, right eye, nose tip, left mouth corner, right mouth corner ("left" = image left).
FFHQ_TEMPLATE_512 = np.array(
    [
        [192.98138, 239.94708],
        [318.90277, 240.1936],
        [256.63416, 314.01935],
        [201.26117, 371.41043],
        [313.08905, 371.15118],
    ],
    dtype=np.float64,
)

CROP_SIZES = (256, 512, 1024)

# facexlib fills the crop outside the photo with this grey (BGR 135, 133, 132), here in RGB 0..1.
BORDER_GREY_RGB = (132 / 255.0, 133 / 255.0, 135 / 255.0)

INTERPOLATIONS = {"bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}


def ffhq_template(crop_size: int) -> np.ndarray:
    """The five template landmarks for a square crop of `crop_size` pixels."""
    return FFHQ_TEMPLATE_512 * (crop_size / 512.0)


def similarity_least_squares(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares 4-DOF similarity (rotation, uniform scale, translation) mapping src to dst.

    Closed form of Umeyama's method without reflection; used when LMedS has no answer.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    s, d = src - src_mean, dst - dst_mean
    norm = (s ** 2).sum()
    if norm <= 0:
        raise ValueError("landmarks are all at one point; cannot align this face")
    a = (s[:, 0] * d[:, 0] + s[:, 1] * d[:, 1]).sum() / norm
    b = (s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum() / norm
    rotation_scale = np.array([[a, -b], [b, a]])
    translation = dst_mean - rotation_scale @ src_mean
    return np.hstack([rotation_scale, translation[:, None]])


def estimate_alignment(landmarks: np.ndarray, crop_size: int) -> np.ndarray:
    """Affine (2x3, photo -> crop) that puts five landmarks onto the FFHQ template.

    Uses OpenCV's LMedS similarity fit, as facexlib and DifFace do: with five good points it is
    the least-squares fit, and one outlying landmark is ignored.
    """
    landmarks = np.asarray(landmarks, np.float64).reshape(5, 2)
    template = ffhq_template(crop_size)
    affine, _ = cv2.estimateAffinePartial2D(landmarks, template, method=cv2.LMEDS)
    if affine is None or not np.isfinite(affine).all():
        affine = similarity_least_squares(landmarks, template)
    return affine


def invert_affine(affine: np.ndarray) -> np.ndarray:
    return cv2.invertAffineTransform(np.asarray(affine, np.float64))


def mapped_bounds(affine: np.ndarray, width: float, height: float) -> tuple[float, float, float, float]:
    """Bounds (x_min, y_min, x_max, y_max) of a width x height pixel grid (pixel edges at -0.5 and
    size - 0.5) mapped by an affine."""
    corners = np.array([[0, 0], [width, 0], [0, height], [width, height]], np.float64) - 0.5
    points = corners @ np.asarray(affine)[:, :2].T + np.asarray(affine)[:, 2]
    return points[:, 0].min(), points[:, 1].min(), points[:, 0].max(), points[:, 1].max()


def crop_scale(affine: np.ndarray) -> float:
    """How many crop pixels one photo pixel becomes (the similarity's scale)."""
    return float(np.sqrt(abs(np.linalg.det(np.asarray(affine)[:, :2]))))


def warp_affine(image, affine, size, interpolation="bicubic", antialias=True, border_value=0.0) -> np.ndarray:
    """cv2.warpAffine (size = (width, height)) with an optional area pre-shrink against aliasing.

    With `antialias`, where the warp shrinks by more than 2x, the part of the image it reads is
    first reduced with an antialiased bicubic filter so the warp itself runs at about 1:1
    (sampling alone would alias).
    """
    affine = np.asarray(affine, np.float64)
    if antialias and crop_scale(affine) < 0.5:
        image, affine = _shrink_source(image, affine, size)
    return cv2.warpAffine(
        image,
        affine,
        size,
        flags=INTERPOLATIONS[interpolation],
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=border_value,
    )


def warp_to_crop(photo, affine, crop_size, interpolation="bicubic", antialias=True) -> np.ndarray:
    """Cut one aligned face crop out of a float32 HxWx3 photo (values 0..1).

    Outside the photo the crop is facexlib's grey. facexlib samples bilinearly and does not
    antialias; bicubic sampling keeps the detail of faces smaller than the crop (a crop-and-paste
    round trip stays above 45 dB where bilinear loses about 6 dB), and antialiasing stops faces
    larger than twice the crop from aliasing. interpolation="bilinear", antialias=False is
    facexlib's crop exactly.
    """
    crop = warp_affine(photo, affine, (crop_size, crop_size), interpolation, antialias, BORDER_GREY_RGB)
    return np.clip(crop, 0.0, 1.0, out=crop)


def _shrink_source(image, affine, size):
    """Resize the part of `image` the warp reads with an antialiased bicubic filter (PIL's kind)
    so the remaining warp runs at about 1:1; returns the reduced image and the affine from it."""
    import torch
    import torch.nn.functional as F

    h, w = image.shape[:2]
    left, top, right, bottom = mapped_bounds(invert_affine(affine), *size)
    x0 = int(np.clip(np.floor(left) - 4, 0, w))
    x1 = int(np.clip(np.ceil(right) + 5, 0, w))
    y0 = int(np.clip(np.floor(top) - 4, 0, h))
    y1 = int(np.clip(np.ceil(bottom) + 5, 0, h))
    if x1 - x0 < 4 or y1 - y0 < 4:
        return image, affine
    scale = crop_scale(affine)
    new_w, new_h = max(2, int(round((x1 - x0) * scale))), max(2, int(round((y1 - y0) * scale)))
    region = torch.from_numpy(np.ascontiguousarray(image[y0:y1, x0:x1], dtype=np.float32))
    region = region[None, None] if region.ndim == 2 else region.permute(2, 0, 1)[None]
    small = F.interpolate(region, size=(new_h, new_w), mode="bicubic", align_corners=False, antialias=True)[0]
    small = small[0].numpy() if image.ndim == 2 else small.permute(1, 2, 0).contiguous().numpy()
    sx, sy = (x1 - x0) / new_w, (y1 - y0) / new_h
    # the centre of small pixel (u, v) is image pixel (x0 + (u + 0.5) * sx - 0.5, ...)
    to_image = np.array([[sx, 0.0, x0 + 0.5 * sx - 0.5], [0.0, sy, y0 + 0.5 * sy - 0.5], [0, 0, 1]])
    return small, (np.vstack([affine, [0, 0, 1]]) @ to_image)[:2]


def scale_inverse_affine(inverse: np.ndarray, scale_x: float, scale_y: float, legacy_offset: bool = False):
    """The crop -> photo affine for a background that is the photo resized by (scale_x, scale_y).

    Pixel centres map as x' = s*x + (s - 1)/2. facexlib (and DifFace's copy) add s/2 instead
    (`inverse_affine[:, 2] += 0.5 * upscale`), half a pixel off; legacy_offset=True reproduces it.
    """
    inverse = np.asarray(inverse, np.float64)
    scaled = inverse * np.array([[scale_x], [scale_y]])
    if scale_x == 1 and scale_y == 1:
        return scaled
    if legacy_offset:
        # facexlib scales by one factor and adds 0.5 * factor only when it is above 1
        if scale_x > 1:
            scaled[0, 2] += 0.5 * scale_x
        if scale_y > 1:
            scaled[1, 2] += 0.5 * scale_y
    else:
        scaled[0, 2] += (scale_x - 1) / 2
        scaled[1, 2] += (scale_y - 1) / 2
    return scaled
