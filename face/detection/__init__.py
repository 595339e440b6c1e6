"""Face detectors: photo in, boxes + five landmarks + score out.

Every detector sees the photo at a bounded resolution (see `detection_scale`) and reports
coordinates in the photo's own pixels.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Photos whose short side is below this are enlarged before detection (DifFace does the same:
# RetinaFace's smallest anchor is 16 px, the Haar window 24 px).
DETECTION_MIN_SHORT_SIDE = 640
# ... and photos are shrunk so the long side stays below this (bounded time and memory).
DETECTION_MAX_LONG_SIDE = 2048


@dataclass(frozen=True)
class Detection:
    box: np.ndarray  # (4,) x1, y1, x2, y2
    landmarks: np.ndarray  # (5, 2) left eye, right eye, nose, left mouth, right mouth
    score: float
    # what the face looks like (face.appearance), where a tracker asked for it
    appearance: np.ndarray | None = None

    def to_photo(self, fx: float, fy: float) -> "Detection":
        """Map from a photo resized by (fx, fy) back to the photo (pixel centres line up)."""
        factors = np.array([fx, fy])
        landmarks = (self.landmarks + 0.5) / factors - 0.5
        box = ((self.box.reshape(2, 2) + 0.5) / factors - 0.5).reshape(4)
        return Detection(box, landmarks, self.score)


def detection_scale(height: int, width: int) -> float:
    """Factor applied to a photo before detection (coordinates are divided by it afterwards)."""
    scale = max(1.0, DETECTION_MIN_SHORT_SIDE / min(height, width))
    return min(scale, DETECTION_MAX_LONG_SIDE / max(height, width))


def resize_for_detection(photo: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Resize an HxWxC uint8 photo to detection resolution; returns it and the (fx, fy) used."""
    h, w = photo.shape[:2]
    scale = detection_scale(h, w)
    if abs(scale - 1.0) < 1e-6:
        return photo, 1.0, 1.0
    new_w, new_h = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
    interpolation = cv2.INTER_LINEAR if scale > 1 else cv2.INTER_AREA
    resized = cv2.resize(photo, (new_w, new_h), interpolation=interpolation)
    return resized, new_w / w, new_h / h


class FaceDetector:
    """Base class: subclasses implement `detect_resized` on photos at detection resolution."""

    name = "detector"
    # a short sentence for the UI and the README
    summary = ""

    def detect(self, photos: list[np.ndarray]) -> list[list[Detection]]:
        """Detect faces in uint8 RGB HxWx3 photos; coordinates in each photo's own pixels."""
        prepared = [resize_for_detection(p) for p in photos]
        found = self.detect_resized([resized for resized, _, _ in prepared])
        return [[d.to_photo(fx, fy) for d in dets] for dets, (_, fx, fy) in zip(found, prepared)]

    def detect_resized(self, photos: list[np.ndarray]) -> list[list[Detection]]:
        raise NotImplementedError


def non_maximum_suppression(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[int]:
    """Greedy NMS with torchvision.ops.nms's semantics: indices kept, by descending score.

    Vectorised over the remaining boxes: one numpy pass per kept box (random or untrained weights at
    min_confidence 0 give ~10^4 candidates, where a Python loop over pairs took a minute)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        x1 = np.maximum(boxes[best, 0], boxes[rest, 0])
        y1 = np.maximum(boxes[best, 1], boxes[rest, 1])
        x2 = np.minimum(boxes[best, 2], boxes[rest, 2])
        y2 = np.minimum(boxes[best, 3], boxes[rest, 3])
        inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = inter / (areas[best] + areas[rest] - inter)
        order = rest[~(iou > iou_threshold)]  # NaN (degenerate boxes) is not an overlap: kept
    return keep
