"""The built-in detector: OpenCV's Haar cascades, no download needed.

Good for: upright frontal faces from about 24 px wide in ordinary photos; it works the moment the
pack is installed. Not good for: profiles, faces tilted more than about 15 degrees, heavily
occluded, very dark or very blurred faces, and precise landmarks. The cascades give a box and eye
boxes only; the five landmarks come from a model calibrated on FFHQ-aligned real faces (mean
positions in the box, then roll, position and scale refined from a detected eye pair). On held-out
faces their mean error is about 8% of the eye distance (benchmarks/calibrate_builtin_detector.py);
RetinaFace regresses the landmarks directly and is the better choice for restoration quality.
The score is a heuristic (agreeing detections, eye pair found), not a probability.
"""
from __future__ import annotations

import functools
import math
import os

import cv2
import numpy as np

from . import Detection, FaceDetector, non_maximum_suppression

FACE_CASCADE = "haarcascade_frontalface_alt2.xml"
EYE_CASCADE = "haarcascade_eye.xml"

# Where the cascades may live besides OpenCV 4.x's wheel data (Debian and source builds).
_SYSTEM_CASCADE_DIRS = (
    "/usr/share/opencv4/haarcascades",
    "/usr/local/share/opencv4/haarcascades",
    "/usr/share/opencv/haarcascades",
)

# The landmark model. Measured by benchmarks/calibrate_builtin_detector.py on the FFHQ-aligned
# real faces of ../shared/images/aligned under random similarity transforms (true landmarks known;
# --per-image 20, seed 0):
# mean landmark position as a fraction of the face box (x of width, y of height) ...
BOX_LANDMARKS = np.array(
    [
        [0.3109, 0.3973],
        [0.6861, 0.3948],
        [0.5000, 0.6164],
        [0.3346, 0.7881],
        [0.6678, 0.7859],
    ]
)
# ... the eye-box centre's bias against the true eye centre (fraction of the eye box width) ...
EYE_BOX_CENTER_OFFSET = np.array([0.0509, 0.0167])
# ... and how far the box model moves toward a detected eye pair (position and scale).
EYE_POSITION_WEIGHT = 0.75
EYE_SCALE_WEIGHT = 0.25

# Eyes are searched in the upper part of the face box, resized to this width.
EYE_SEARCH_WIDTH = 200
EYE_SEARCH_HEIGHT_FRACTION = 0.6
# A detected eye must lie within this fraction of the box width from where the box model expects it.
EYE_SEARCH_RADIUS = 0.15
# score = 1 - exp(-(neighbours + EYE_PAIR_BONUS * eye_pair) / SCORE_SCALE)
EYE_PAIR_BONUS = 10.0
SCORE_SCALE = 10.0


class CascadeFilesMissing(RuntimeError):
    pass


def find_cascade(filename: str) -> str:
    candidates = []
    data = getattr(cv2, "data", None)
    if data is not None and getattr(data, "haarcascades", None):
        candidates.append(data.haarcascades)
    candidates.extend(_SYSTEM_CASCADE_DIRS)
    for folder in candidates:
        path = os.path.join(folder, filename)
        if os.path.isfile(path):
            return path
    raise CascadeFilesMissing(
        f"the built-in face detector needs OpenCV's Haar cascade file {filename}, which OpenCV "
        f"{cv2.__version__} does not ship (OpenCV 5 wheels dropped them): install "
        f"'opencv-python-headless<5', or choose a RetinaFace detector"
    )


@functools.lru_cache(maxsize=None)
def _cascade(filename: str) -> cv2.CascadeClassifier:
    classifier = cv2.CascadeClassifier(find_cascade(filename))
    if classifier.empty():
        raise CascadeFilesMissing(f"OpenCV could not read the Haar cascade {filename}")
    return classifier


def box_landmarks(box_xywh) -> np.ndarray:
    """Landmarks the box model expects for a Haar box (x, y, w, h in pixel-edge units)."""
    x, y, w, h = (float(v) for v in box_xywh)
    return np.stack([x + BOX_LANDMARKS[:, 0] * w, y + BOX_LANDMARKS[:, 1] * h], axis=1)


def detect_eyes(gray: np.ndarray, box_xywh) -> list[tuple[np.ndarray, float]]:
    """Eye boxes found by the eye cascade in the face's upper part: (centre, width) in photo pixels."""
    x, y, w, h = (int(v) for v in box_xywh)
    y1 = min(gray.shape[0], y + int(round(h * EYE_SEARCH_HEIGHT_FRACTION)))
    x0, y0, x1 = max(0, x), max(0, y), min(gray.shape[1], x + w)
    if x1 - x0 < 8 or y1 - y0 < 8:
        return []
    roi = gray[y0:y1, x0:x1]
    zoom = EYE_SEARCH_WIDTH / roi.shape[1]
    roi = cv2.resize(roi, (EYE_SEARCH_WIDTH, max(1, int(round(roi.shape[0] * zoom)))), interpolation=cv2.INTER_LINEAR)
    min_eye = max(8, int(zoom * w / 10))
    max_eye = max(min_eye + 1, int(zoom * w / 3))
    eyes = _cascade(EYE_CASCADE).detectMultiScale(roi, 1.05, 3, minSize=(min_eye, min_eye), maxSize=(max_eye, max_eye))
    found = []
    for ex, ey, ew, eh in np.asarray(eyes).reshape(-1, 4):
        # box edges -> pixel-centre coordinates in the zoomed ROI, then back to the photo
        centre = np.array([ex + ew / 2 - 0.5, ey + eh / 2 - 0.5])
        found.append(((centre + 0.5) / zoom - 0.5 + np.array([x0, y0]), ew / zoom))
    return found


def eye_centre_candidates(gray: np.ndarray, box_xywh) -> list[np.ndarray]:
    return [centre + EYE_BOX_CENTER_OFFSET * width for centre, width in detect_eyes(gray, box_xywh)]


def pick_eye_pair(candidates: list[np.ndarray], expected: np.ndarray, box_width: float):
    """The candidates closest to where the box model expects each eye, or None."""
    radius = EYE_SEARCH_RADIUS * box_width
    pair = []
    for target in expected[:2]:
        near = [c for c in candidates if np.linalg.norm(c - target) < radius]
        if not near:
            return None
        pair.append(min(near, key=lambda c: np.linalg.norm(c - target)))
    left, right = pair
    distance = np.linalg.norm(right - left)
    expected_distance = np.linalg.norm(expected[1] - expected[0])
    if not (0.6 * expected_distance < distance < 1.5 * expected_distance) or right[0] <= left[0]:
        return None
    return left, right


def refine_with_eyes(landmarks: np.ndarray, left_eye: np.ndarray, right_eye: np.ndarray) -> np.ndarray:
    """Rotate the box-model landmarks to the eye pair's roll; move and scale them part-way."""
    expected_left, expected_right = landmarks[0], landmarks[1]
    expected_vector, found_vector = expected_right - expected_left, right_eye - left_eye
    roll = math.atan2(found_vector[1], found_vector[0]) - math.atan2(expected_vector[1], expected_vector[0])
    scale = 1 + EYE_SCALE_WEIGHT * (np.linalg.norm(found_vector) / np.linalg.norm(expected_vector) - 1)
    rotation = scale * np.array([[math.cos(roll), -math.sin(roll)], [math.sin(roll), math.cos(roll)]])
    pivot = (expected_left + expected_right) / 2
    shift = EYE_POSITION_WEIGHT * ((left_eye + right_eye) / 2 - pivot)
    return (landmarks - pivot) @ rotation.T + pivot + shift


def detect_faces_haar(photo_rgb: np.ndarray, min_neighbours: int = 3) -> list[Detection]:
    gray = cv2.equalizeHist(cv2.cvtColor(photo_rgb, cv2.COLOR_RGB2GRAY))
    boxes, neighbours = _cascade(FACE_CASCADE).detectMultiScale2(gray, 1.1, min_neighbours, minSize=(24, 24))
    detections = []
    for box, count in zip(np.asarray(boxes).reshape(-1, 4), np.asarray(neighbours).reshape(-1)):
        landmarks = box_landmarks(box)
        pair = pick_eye_pair(eye_centre_candidates(gray, box), landmarks, box[2])
        if pair is not None:
            landmarks = refine_with_eyes(landmarks, *pair)
        evidence = float(count) + (EYE_PAIR_BONUS if pair is not None else 0.0)
        score = 1.0 - math.exp(-evidence / SCORE_SCALE)
        x, y, w, h = (float(v) for v in box)
        # Haar boxes are in pixel-edge units [x, x + w); as centres: x .. x + w - 1
        detections.append(Detection(np.array([x, y, x + w - 1, y + h - 1]), landmarks, score))
    keep = non_maximum_suppression(
        np.array([d.box for d in detections]).reshape(-1, 4), np.array([d.score for d in detections]), 0.3
    )
    return [detections[i] for i in keep]


class HaarDetector(FaceDetector):
    name = "opencv-haar (built-in)"
    summary = (
        "built-in, no download: upright frontal faces; approximate landmarks; misses profiles and "
        "strongly tilted faces"
    )

    def __init__(self):
        _cascade(FACE_CASCADE)  # fail early, with the clear message, if the files are missing
        _cascade(EYE_CASCADE)

    def detect_resized(self, photos):
        return [detect_faces_haar(p) for p in photos]
