"""Paste restored face crops back into the photo.

For each face, as facexlib's FaceRestoreHelper does it: warp the crop back with the inverse affine;
warp a square of ones the same way and erode it a little (no black rim); erode it again and blur
it by amounts that scale with the face (sqrt of its area), giving a soft mask; optionally take the
minimum with a face-parsing mask; blend. Faces are composited one after another in FaceSet order,
so overlapping faces stack in a stable order and every composite is smooth.

Only the region a face covers is touched (the warp writes into its bounding box), so huge photos
cost memory for the photo itself and little more.

Deliberate differences from facexlib, each switchable here:
- the result stays float (facexlib truncates to uint8);
- the face is warped bicubically (`interpolation="bilinear"` is facexlib's warp), which keeps a
  crop-and-paste round trip of a small face above 40 dB; `antialias=True` low-passes faces pasted
  more than 2x smaller than their crop;
- a background bigger than the photo maps pixel centres exactly (`legacy_offset=False`; facexlib
  is half a pixel off);
- with a parsing mask the soft square mask still applies (`parse_combine="min"`, as DifFace's copy
  of the helper does); facexlib uses the parsing mask alone (`parse_combine="replace"`);
- the soft mask ends where the warped face is still made of crop pixels only
  (`mask_geometry="inside"`). facexlib erodes with even-sized kernels, which shrink the square one
  pixel less on the right and bottom than on the left and top, and its blurred edge then reaches
  the rim where the warp mixes in the black outside the crop: a 1 px line of up to 8 grey levels
  along the right and bottom of every small pasted face. `mask_geometry="facexlib"` keeps that.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .alignment import mapped_bounds, scale_inverse_affine, warp_affine
from .color import match_color

GREY_TOLERANCE = 1.5 / 255.0
# interpolation weights of a warp that reads only crop pixels sum to 1 (up to float rounding)
INSIDE_TOLERANCE = 1e-3


@dataclass(frozen=True)
class PasteSettings:
    blend: float = 1.0
    erosion: float = 0.1  # erosion kernel, as a fraction of the face size sqrt(area)
    feather: float = 0.1  # blur kernel, as a fraction of the face size
    color_match: str = "none"
    interpolation: str = "bicubic"  # of the face; facexlib: "bilinear"
    # low-pass a face pasted more than 2x smaller than its crop. Off by default: it stops fine
    # restored detail from aliasing, but costs a crop-and-paste round trip ~5 dB (39 vs 44+ dB)
    antialias: bool = False
    legacy_offset: bool = False
    parse_combine: str = "min"
    keep_grey_photos_grey: bool = True
    mask_geometry: str = "inside"  # facexlib: "facexlib"


def covered_region(inverse: np.ndarray, crop_size: int, height: int, width: int, margin: int):
    """Bounding box (x0, y0, x1, y1) in the photo of a crop warped back, grown by margin, clipped."""
    left, top, right, bottom = mapped_bounds(inverse, crop_size, crop_size)
    x0 = int(max(0, math.floor(left) - margin))
    y0 = int(max(0, math.floor(top) - margin))
    x1 = int(min(width, math.ceil(right) + margin + 1))
    y1 = int(min(height, math.ceil(bottom) + margin + 1))
    return x0, y0, x1, y1


def _translated(affine: np.ndarray, dx: float, dy: float) -> np.ndarray:
    moved = affine.copy()
    moved[0, 2] -= dx
    moved[1, 2] -= dy
    return moved


def warp_into_region(image: np.ndarray, inverse: np.ndarray, region, interpolation="bilinear", antialias=False) -> np.ndarray:
    """Warp a crop into the region (x0, y0, x1, y1) of the photo.

    The warp covers the full-width strip x = 0 .. x1 and is then sliced: OpenCV computes source
    coordinates in fixed point from the output origin, so a strip starting at x = 0 samples exactly
    where a whole-photo warp (facexlib's) does, and its memory stays photo width x face height.
    """
    x0, y0, x1, y1 = region
    strip = warp_affine(image, _translated(inverse, 0, y0), (x1, y1 - y0), interpolation, antialias)
    return strip[:, x0:x1]


def soft_square_mask(inverse: np.ndarray, crop_size: int, region, upscale: float, settings):
    """The square paste mask in the region: (weight of the warped face, soft mask)."""
    if settings.mask_geometry == "facexlib":
        return facexlib_square_mask(inverse, crop_size, region, upscale, settings)
    if settings.mask_geometry != "inside":
        raise ValueError(f"unknown mask geometry '{settings.mask_geometry}' (inside or facexlib)")
    inside = crop_pixels_only(inverse, crop_size, region, settings)
    face_size = int(float(inside.sum(dtype=np.float64)) ** 0.5)
    erosion_edge, feather_edge = _edges(face_size, settings)
    # the blur spreads the eroded square by feather_edge pixels: eroding at least that far keeps
    # the whole soft edge on pixels the warp made from the crop alone
    radius = max(erosion_edge, feather_edge)
    centre = cv2.erode(inside, np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)) if radius else inside
    soft = cv2.GaussianBlur(centre, (2 * feather_edge + 1, 2 * feather_edge + 1), 0) if feather_edge else centre
    return np.ones_like(inside), soft * inside


def crop_pixels_only(inverse: np.ndarray, crop_size: int, region, settings) -> np.ndarray:
    """1 where the face warp reads only pixels of the crop (its interpolation weights sum to 1),
    0 on the rim where it also reads the black outside the crop, and beyond."""
    ones = np.ones((crop_size, crop_size), np.float32)
    weight = warp_into_region(ones, inverse, region, settings.interpolation, settings.antialias)
    return (np.abs(weight - 1.0) < INSIDE_TOLERANCE).astype(np.float32)


def facexlib_square_mask(inverse: np.ndarray, crop_size: int, region, upscale: float, settings):
    """facexlib's square paste mask in the region: (eroded hard mask, soft mask)."""
    ones = np.ones((crop_size, crop_size), np.float32)
    hard = np.ascontiguousarray(warp_into_region(ones, inverse, region))
    rim = int(2 * upscale)
    hard = cv2.erode(hard, np.ones((rim, rim), np.uint8))
    face_size = int(float(hard.sum(dtype=np.float64)) ** 0.5)
    erosion_edge, feather_edge = _edges(face_size, settings)
    # cv2 erodes with a 3x3 square when the kernel is empty: kept, facexlib's behaviour for tiny faces
    centre = cv2.erode(hard, np.ones((2 * erosion_edge, 2 * erosion_edge), np.uint8))
    soft = cv2.GaussianBlur(centre, (2 * feather_edge + 1, 2 * feather_edge + 1), 0)
    return hard, soft


def _edges(face_size: int, settings) -> tuple[int, int]:
    """facexlib's erosion and blur half-widths in pixels: fractions of the face size, halved."""
    erosion_edge = int(math.floor(face_size * settings.erosion / 2 + 1e-9))
    feather_edge = int(math.floor(face_size * settings.feather / 2 + 1e-9))
    return erosion_edge, feather_edge


def is_grey(region: np.ndarray) -> bool:
    """True for a black-and-white region (stored as RGB with equal channels, or as one channel)."""
    if region.shape[-1] < 3:
        return True
    rgb = region[..., :3]
    return bool(np.abs(rgb[..., 0] - rgb[..., 1]).max(initial=0) < GREY_TOLERANCE and np.abs(rgb[..., 1] - rgb[..., 2]).max(initial=0) < GREY_TOLERANCE)


def to_grey(rgb: np.ndarray) -> np.ndarray:
    luma = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.repeat(luma[..., None], 3, axis=-1)


def paste_faces(
    background: np.ndarray,
    source_size: tuple[int, int],
    inverses: list[np.ndarray],
    restored: list[np.ndarray],
    originals: list[np.ndarray] | None = None,
    parse_masks: list[np.ndarray | None] | None = None,
    settings: PasteSettings = PasteSettings(),
    in_place: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Paste crops into one photo.

    background: HxWxC float32 (C = 1, 3 or 4; alpha is kept), the photo or a resized copy of it.
    source_size: (height, width) of the photo the faces were found in.
    inverses: crop -> photo affines; restored / originals: SxSx3 float32 crops (originals for
    colour matching); parse_masks: SxS soft masks or None.
    Returns (pasted photo, mask of the pasted regions HxW); with in_place the background itself
    (float32) is written to and returned.
    """
    height, width = background.shape[:2]
    scale_x, scale_y = width / source_size[1], height / source_size[0]
    upscale = (scale_x + scale_y) / 2
    if in_place:
        if background.dtype != np.float32:
            raise ValueError("in-place pasting needs a float32 background")
        output = background
    else:
        output = np.array(background, dtype=np.float32, copy=True)
    coverage = np.zeros((height, width), np.float32)
    colour_channels = 3 if output.shape[2] >= 3 else 1  # the rest (alpha) is kept
    for index, (inverse, face) in enumerate(zip(inverses, restored)):
        crop_size = face.shape[0]
        if originals is not None and settings.color_match != "none":
            face = match_color(face, originals[index], settings.color_match, _inside_photo_weights(inverse, crop_size, source_size))
        inverse = scale_inverse_affine(inverse, scale_x, scale_y, settings.legacy_offset)
        face_scale = math.sqrt(abs(np.linalg.det(inverse[:, :2]))) * crop_size
        margin = int(2 * upscale) + int(face_scale * max(settings.erosion, settings.feather)) + 4
        x0, y0, x1, y1 = covered_region(inverse, crop_size, height, width, margin)
        if x1 <= x0 or y1 <= y0:
            continue  # the face lies outside this background
        region_box = (x0, y0, x1, y1)
        hard, alpha = soft_square_mask(inverse, crop_size, region_box, upscale, settings)
        mask = parse_masks[index] if parse_masks is not None else None
        if mask is not None:
            warped_mask = warp_into_region(mask.astype(np.float32), inverse, region_box)
            alpha = np.minimum(alpha, warped_mask) if settings.parse_combine == "min" else warped_mask
        region = output[y0:y1, x0:x1]
        warped = warp_into_region(np.ascontiguousarray(face, np.float32), inverse, region_box, settings.interpolation, settings.antialias)
        np.clip(warped, 0.0, 1.0, out=warped)
        if settings.parse_combine == "replace" and mask is not None:
            pasted = warped  # facexlib does not multiply by the hard mask in its parsing branch
        else:
            pasted = hard[..., None] * warped
        alpha = (alpha * settings.blend)[..., None].astype(np.float32)
        if colour_channels == 1 or (settings.keep_grey_photos_grey and is_grey(region)):
            pasted = to_grey(pasted)
        colour = region[..., :colour_channels]
        region[..., :colour_channels] = alpha * pasted[..., :colour_channels] + (1.0 - alpha) * colour
        coverage[y0:y1, x0:x1] += alpha[..., 0] * (1.0 - coverage[y0:y1, x0:x1])
    return output, coverage


def _inside_photo_weights(inverse: np.ndarray, crop_size: int, source_size: tuple[int, int]) -> np.ndarray:
    """1 where a crop pixel came from inside the photo, 0 where it is border fill."""
    grid = np.arange(crop_size, dtype=np.float64)
    xs, ys = np.meshgrid(grid, grid)
    px = inverse[0, 0] * xs + inverse[0, 1] * ys + inverse[0, 2]
    py = inverse[1, 0] * xs + inverse[1, 1] * ys + inverse[1, 2]
    height, width = source_size
    return ((px >= 0) & (px <= width - 1) & (py >= 0) & (py <= height - 1)).astype(np.float32)
