"""Detections drawn on the photo, for a quick look at what FaceDetect found."""
from __future__ import annotations

import cv2
import numpy as np

from .faces import FaceSet

PREVIEW_MAX_SIDE = 2048
LANDMARK_COLOURS = ((1.0, 0.2, 0.2), (0.2, 1.0, 0.2), (0.2, 0.4, 1.0), (1.0, 0.9, 0.1), (1.0, 0.2, 1.0))


def draw_detections(photo: np.ndarray, face_set: FaceSet, image_index: int) -> np.ndarray:
    """A copy of the HxWx3 float photo (shrunk to PREVIEW_MAX_SIDE) with boxes, landmarks, numbers."""
    height, width = photo.shape[:2]
    scale = min(1.0, PREVIEW_MAX_SIDE / max(height, width))
    canvas = np.ascontiguousarray(photo[..., :3], dtype=np.float32)
    if scale < 1.0:
        canvas = cv2.resize(canvas, (max(1, int(width * scale)), max(1, int(height * scale))), interpolation=cv2.INTER_AREA)
    else:
        canvas = canvas.copy()
    thickness = max(1, int(round(max(canvas.shape[:2]) / 400)))
    limit = 4 * max(canvas.shape[:2])  # OpenCV takes 32-bit coordinates: keep far-off boxes drawable

    def point(x, y):
        return int(np.clip(round(x * scale), -limit, limit)), int(np.clip(round(y * scale), -limit, limit))

    for number, face_index in enumerate(face_set.faces_of_image(image_index)):
        face = face_set.faces[face_index]
        x1, y1 = point(face.box[0], face.box[1])
        cv2.rectangle(canvas, (x1, y1), point(face.box[2], face.box[3]), (0.1, 1.0, 0.3), thickness)
        for landmark, colour in zip(face.landmarks, LANDMARK_COLOURS):
            cv2.circle(canvas, point(*landmark), thickness + 1, colour, -1)
        label = f"{number}: {face.score:.2f}" if face.track < 0 else f"person {face.track}"
        font_scale = max(0.4, thickness * 0.45)
        cv2.putText(canvas, label, (x1, max(0, y1 - 3 * thickness)), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (0.1, 1.0, 0.3), thickness)
    return canvas


def no_face_placeholder(crop_size: int) -> np.ndarray:
    """The crop shown when a batch holds no face: facexlib's grey with a short note."""
    from .alignment import BORDER_GREY_RGB

    crop = np.empty((crop_size, crop_size, 3), np.float32)
    crop[:] = BORDER_GREY_RGB
    scale = crop_size / 512
    for text, y in (("no face found", 0.47), ("PasteBack returns the photo", 0.56)):
        size = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, max(1, int(2 * scale)))[0]
        origin = ((crop_size - size[0]) // 2, int(crop_size * y))
        cv2.putText(crop, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0.25, 0.25, 0.25), max(1, int(2 * scale)), cv2.LINE_AA)
    return crop
