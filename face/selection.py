"""Which detected faces to keep, and in which order.

Order (documented for users): within a photo, faces are numbered left to right by the centre of
their box, top to bottom where two centres share a column. Filters run first (confidence, size),
then `max_faces` keeps the largest ones, then the selection mode picks among what is left.
"""
from __future__ import annotations

import math

import numpy as np

from .detection import Detection

SELECTION_MODES = ("all", "largest", "center", "index")


def box_side(detection: Detection) -> float:
    """The shorter side of the box in pixels (the 'face size' of the filters)."""
    x1, y1, x2, y2 = detection.box
    return float(min(x2 - x1, y2 - y1))


def clipped_area(detection: Detection, height: int, width: int) -> float:
    """Box area inside the photo (facexlib's 'largest face' measure)."""
    x1, y1, x2, y2 = detection.box
    return max(0.0, min(x2, width) - max(x1, 0.0)) * max(0.0, min(y2, height) - max(y1, 0.0))


def reading_order(detections: list[Detection]) -> list[Detection]:
    return sorted(detections, key=lambda d: ((d.box[0] + d.box[2]) / 2, (d.box[1] + d.box[3]) / 2))


def select_faces(
    detections: list[Detection],
    height: int,
    width: int,
    mode: str = "all",
    index: int = 0,
    min_score: float = 0.0,
    min_size: float = 0.0,
    max_faces: int = 0,
) -> list[Detection]:
    if mode not in SELECTION_MODES:
        raise ValueError(f"unknown face selection '{mode}' (choose one of {', '.join(SELECTION_MODES)})")
    kept = [
        d for d in detections
        if d.score >= min_score and box_side(d) >= min_size and np.isfinite(d.box).all() and np.isfinite(d.landmarks).all()
    ]
    if max_faces > 0 and len(kept) > max_faces:
        kept = sorted(kept, key=lambda d: clipped_area(d, height, width), reverse=True)[:max_faces]
    kept = reading_order(kept)
    if not kept or mode == "all":
        return kept
    if mode == "largest":
        return [max(kept, key=lambda d: clipped_area(d, height, width))]
    if mode == "center":
        cx, cy = width / 2, height / 2
        return [min(kept, key=lambda d: math.hypot((d.box[0] + d.box[2]) / 2 - cx, (d.box[1] + d.box[3]) / 2 - cy))]
    return [kept[index]] if 0 <= index < len(kept) else []
