"""Hard cuts in a clip: where one shot ends and the next begins.

The measure is PySceneDetect's content detector's (ContentDetector, its default weights): each frame
in HSV, the mean absolute difference of hue, saturation and value from the frame before, averaged
over the three channels (0..255 scale, OpenCV's HSV), on frames shrunk to about 256 px wide as
PySceneDetect shrinks them. A frame whose value reaches CUT_THRESHOLD (PySceneDetect's default, 27)
starts a new shot. Motion, a face turning or hidden, or a flash of a few frames changes a fraction of
the picture and scores far lower: on the four shared clips (every frame, and every second frame as
the tests read them) the largest value is 14.8 (real_2's fast head turn, every second frame), a face
covered by a grey patch 20, where a cut between the two real clips scores about 50
(tests/test_tracking_identity.py).
"""
from __future__ import annotations

import cv2
import numpy as np

# PySceneDetect's ContentDetector default threshold
CUT_THRESHOLD = 27.0
# frames are compared at about this width (PySceneDetect's automatic downscale aims at 256 px)
COMPARE_WIDTH = 256


def shrunk_hsv(frame: np.ndarray) -> np.ndarray:
    """A uint8 RGB frame as HSV (OpenCV's 8-bit ranges), shrunk by an integer factor to ~COMPARE_WIDTH."""
    factor = max(1, frame.shape[1] // COMPARE_WIDTH)
    if factor > 1:
        frame = cv2.resize(frame, (frame.shape[1] // factor, frame.shape[0] // factor), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2HSV).astype(np.int16)


def content_changes(frames) -> np.ndarray:
    """The content change of every frame from the one before ([T] float; 0 for the first frame).
    frames: an iterable of uint8 RGB HxWx3 arrays of one size."""
    changes, previous = [], None
    for frame in frames:
        hsv = shrunk_hsv(frame)
        changes.append(0.0 if previous is None else float(np.abs(hsv - previous).mean(axis=(0, 1)).mean()))
        previous = hsv
    return np.array(changes, dtype=np.float64)


def shot_starts(frames, threshold: float = CUT_THRESHOLD) -> tuple[int, ...]:
    """The frames (indices > 0) that start a new shot: a content change of at least `threshold`."""
    return tuple(int(i) for i in np.flatnonzero(content_changes(frames) >= threshold) if i > 0)
