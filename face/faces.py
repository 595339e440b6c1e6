"""The FACES value: aligned face crops plus everything needed to paste them back."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Face:
    """One detected face.

    image_index: which photo of the batch it came from.
    box: detection box (x1, y1, x2, y2) in photo pixels.
    landmarks: 5x2 (x, y): left eye, right eye, nose, left and right mouth corner (image left).
    score: detector confidence in 0..1.
    affine: 2x3 photo -> crop; inverse: 2x3 crop -> photo.
    track: the person's id through the frames of a clip (FaceTrack), -1 for a single photo.
    """

    image_index: int
    box: np.ndarray
    landmarks: np.ndarray
    score: float
    affine: np.ndarray
    inverse: np.ndarray
    track: int = -1

    @property
    def box_size(self) -> float:
        """The shorter side of the detection box, in photo pixels."""
        return float(min(self.box[2] - self.box[0], self.box[3] - self.box[1]))

    @property
    def center(self) -> tuple[float, float]:
        return float((self.box[0] + self.box[2]) / 2), float((self.box[1] + self.box[3]) / 2)


@dataclass(frozen=True)
class FaceSet:
    """Faces found in a batch of photos, in a stable order.

    Order: photo by photo; within a photo, left to right by the centre of the box (top to
    bottom where two centres share a column). `crops` holds the aligned crops in that order as a
    float32 [N, S, S, 3] tensor in 0..1 (ComfyUI's IMAGE layout).
    """

    crop_size: int
    image_sizes: tuple[tuple[int, int], ...]  # (height, width) of every photo in the batch
    faces: tuple[Face, ...]
    crops: torch.Tensor
    detector: str
    aligned_input: bool = False
    # frames of a clip that start a new shot after a hard cut (FaceTrack; face.shots)
    shot_starts: tuple[int, ...] = ()

    def __post_init__(self):
        if self.crops.ndim != 4 or self.crops.shape[0] != len(self.faces):
            raise ValueError(f"FaceSet has {len(self.faces)} faces but crops of shape {tuple(self.crops.shape)}")

    def __len__(self) -> int:
        return len(self.faces)

    @property
    def num_images(self) -> int:
        return len(self.image_sizes)

    @property
    def tracks(self) -> list[int]:
        """The track id of every face, in face order (-1 where the faces were not tracked)."""
        return [face.track for face in self.faces]

    def faces_of_image(self, image_index: int) -> list[int]:
        """Indices (into `faces`) of the faces found in one photo."""
        return [i for i, f in enumerate(self.faces) if f.image_index == image_index]

    def describe(self) -> str:
        counts = [len(self.faces_of_image(i)) for i in range(self.num_images)]
        return f"{len(self)} face(s) in {self.num_images} photo(s) {counts}, {self.crop_size}px crops, {self.detector}"
