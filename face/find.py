"""Photos in, FaceSet out: detect, select, align and crop."""
from __future__ import annotations

import dataclasses
from typing import Callable

import cv2
import numpy as np
import torch

from . import alignment
from .appearance import face_appearance
from .detection import Detection, FaceDetector
from .faces import Face, FaceSet
from .image import image_to_numpy, rgb_view, to_uint8
from .selection import select_faces

ALIGNED_INPUT = "aligned input"
# photos handed to the detector at once (RetinaFace runs them as one batch)
PHOTOS_PER_DETECTION = 8


def find_faces(
    images: torch.Tensor,
    detector: FaceDetector,
    crop_size: int = 512,
    *,
    mode: str = "all",
    index: int = 0,
    min_score: float = 0.5,
    min_size: float = 0.0,
    max_faces: int = 0,
    interpolation: str = "bicubic",
    antialias: bool = True,
    on_photo: Callable[[int], None] | None = None,
) -> FaceSet:
    """Detect faces in an IMAGE batch [B, H, W, C] and cut FFHQ-aligned crops of `crop_size`."""
    if crop_size not in alignment.CROP_SIZES:
        raise ValueError(f"crop size {crop_size} is not one of {alignment.CROP_SIZES}")
    found = detect_frames(images, detector, mode=mode, index=index, min_score=min_score, min_size=min_size, max_faces=max_faces,
                          on_photo=on_photo)
    faces, crops = [], []
    for image_index, chosen in enumerate(found):
        photo = rgb_view(image_to_numpy(images[image_index]))
        for detection in chosen:
            face, crop = align_face(photo, image_index, detection, crop_size, interpolation, antialias)
            faces.append(face)
            crops.append(crop)
    height, width = int(images.shape[1]), int(images.shape[2])
    return make_face_set(faces, crops, crop_size, [(height, width)] * images.shape[0], detector.name)


def detect_frames(
    images: torch.Tensor,
    detector: FaceDetector,
    *,
    mode: str = "all",
    index: int = 0,
    min_score: float = 0.5,
    min_size: float = 0.0,
    max_faces: int = 0,
    with_appearance: bool = False,
    on_photo: Callable[[int], None] | None = None,
) -> list[list[Detection]]:
    """Every photo's (frame's) detections, filtered and selected (face.selection), in reading order;
    the photos go to the detector PHOTOS_PER_DETECTION at a time. on_photo(i) after photo i.
    with_appearance: each detection carries its face.appearance vector (for the tracker)."""
    found_all = []
    height, width = int(images.shape[1]), int(images.shape[2])
    for start in range(0, images.shape[0], PHOTOS_PER_DETECTION):
        indices = range(start, min(images.shape[0], start + PHOTOS_PER_DETECTION))
        photos = [to_uint8(rgb_view(image_to_numpy(images[i]))) for i in indices]
        for image_index, photo, detections in zip(indices, photos, detector.detect(photos)):
            chosen = select_faces(detections, height, width, mode, index, min_score, min_size, max_faces)
            if with_appearance:
                chosen = [dataclasses.replace(d, appearance=face_appearance(photo, d.landmarks)) for d in chosen]
            found_all.append(chosen)
            if on_photo is not None:
                on_photo(image_index)
    return found_all


def faces_from_tracks(images: torch.Tensor, tracked_frames: list, crop_size: int = 512, detector_name: str = "tracked",
                      interpolation: str = "bicubic", antialias: bool = True) -> FaceSet:
    """A FaceSet of a clip's frames from their tracked faces (face.tracking.TrackedFace per frame).

    Tracked faces are aligned with the least-squares similarity of all five smoothed landmarks: it
    moves smoothly with them, where LMedS could switch between inlier sets from one frame to the next.
    """
    if crop_size not in alignment.CROP_SIZES:
        raise ValueError(f"crop size {crop_size} is not one of {alignment.CROP_SIZES}")
    template = alignment.ffhq_template(crop_size)
    faces, crops = [], []
    height, width = int(images.shape[1]), int(images.shape[2])
    for image_index, tracked in enumerate(tracked_frames):
        if not tracked:
            continue
        photo = np.ascontiguousarray(rgb_view(image_to_numpy(images[image_index])))
        for tracked_face in tracked:
            affine = alignment.similarity_least_squares(tracked_face.landmarks, template)
            face, crop = align_face(photo, image_index, tracked_face, crop_size, interpolation, antialias, affine, tracked_face.track)
            faces.append(face)
            crops.append(crop)
    return make_face_set(faces, crops, crop_size, [(height, width)] * images.shape[0], detector_name)


def align_face(photo, image_index, detection, crop_size: int, interpolation="bicubic", antialias=True,
               affine: np.ndarray | None = None, track: int = -1):
    """The Face and its crop. detection: a Detection or a tracked face (box, landmarks, score);
    affine: photo -> crop, by default estimated from the landmarks as the official code does."""
    if affine is None:
        affine = alignment.estimate_alignment(detection.landmarks, crop_size)
    crop = alignment.warp_to_crop(np.ascontiguousarray(photo), affine, crop_size, interpolation, antialias)
    face = Face(
        image_index=image_index,
        box=np.asarray(detection.box, np.float64),
        landmarks=np.asarray(detection.landmarks, np.float64),
        score=float(detection.score),
        affine=affine,
        inverse=alignment.invert_affine(affine),
        track=int(track),
    )
    return face, crop


def faces_from_aligned(images: torch.Tensor, crop_size: int = 512) -> FaceSet:
    """Each photo already is an FFHQ-aligned face crop: one face per photo, no detection.

    At the crop size the crop is the photo itself (identity transform); otherwise it is resized.
    """
    height, width = int(images.shape[1]), int(images.shape[2])
    affine = np.array(
        [
            [crop_size / width, 0.0, (crop_size / width - 1) / 2],
            [0.0, crop_size / height, (crop_size / height - 1) / 2],
        ]
    )
    inverse = alignment.invert_affine(affine)
    template = alignment.ffhq_template(crop_size)
    landmarks = template @ inverse[:, :2].T + inverse[:, 2]
    faces, crops = [], []
    for image_index in range(images.shape[0]):
        photo = rgb_view(image_to_numpy(images[image_index]))
        if (height, width) == (crop_size, crop_size):
            crop = np.array(photo, dtype=np.float32)
        else:
            shrinking = crop_size < min(height, width)
            crop = cv2.resize(
                np.ascontiguousarray(photo),
                (crop_size, crop_size),
                interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC,
            )
        faces.append(
            Face(image_index, np.array([0.0, 0.0, width - 1.0, height - 1.0]), landmarks.copy(), 1.0, affine.copy(), inverse.copy())
        )
        crops.append(np.clip(crop, 0.0, 1.0))
    return make_face_set(faces, crops, crop_size, [(height, width)] * images.shape[0], ALIGNED_INPUT, aligned=True)


def make_face_set(faces, crops, crop_size, image_sizes, detector_name, aligned=False) -> FaceSet:
    if crops:
        tensor = torch.from_numpy(np.stack(crops).astype(np.float32, copy=False))
    else:
        tensor = torch.zeros((0, crop_size, crop_size, 3), dtype=torch.float32)
    return FaceSet(crop_size, tuple(image_sizes), tuple(faces), tensor, detector_name, aligned)
