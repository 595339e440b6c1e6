"""HQ face images for training: loaded once, square, augmented per view."""
from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..face.image import IMAGE_EXTENSIONS


def list_face_images(sources: list[str]) -> list[str]:
    paths = []
    for source in sources:
        if os.path.isdir(source):
            for root, _, files in os.walk(source):
                paths += [os.path.join(root, f) for f in sorted(files) if f.lower().endswith(IMAGE_EXTENSIONS)]
        elif os.path.isfile(source):
            paths.append(source)
        else:
            raise FileNotFoundError(f"training faces: {source} is neither a folder nor an image")
    if not paths:
        raise ValueError(f"no face images ({', '.join(IMAGE_EXTENSIONS)}) in {sources}")
    return sorted(paths)


def square_image(path_or_array, size: int) -> torch.Tensor:
    """An image centre-cropped to a square and resized to size: [3, size, size] uint8."""
    if isinstance(path_or_array, str):
        with Image.open(path_or_array) as image:
            array = np.asarray(image.convert("RGB"))
    else:
        array = np.asarray(path_or_array)
    h, w = array.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    image = Image.fromarray(np.ascontiguousarray(array[top:top + side, left:left + side]))
    if side != size:
        image = image.resize((size, size), Image.BICUBIC if side < size else Image.LANCZOS)
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)


class FaceImages:
    """HQ faces in memory as uint8 [N, 3, S, S]; `view` gives an augmented float copy."""

    def __init__(self, images: torch.Tensor):
        if images.ndim != 4 or images.shape[0] < 2:
            raise ValueError("training needs at least two face images")
        self.images = images

    @classmethod
    def from_sources(cls, sources: list[str], size: int) -> "FaceImages":
        return cls(torch.stack([square_image(path, size) for path in list_face_images(sources)]))

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def size(self) -> int:
        return self.images.shape[-1]

    def view(self, index: int, rng: np.random.Generator, rescale: float = 0.0) -> torch.Tensor:
        """Face `index` as [3, S, S] 0..1, randomly flipped; with rescale > 0 also a random
        resized crop of (1 - rescale)..100% of the face."""
        image = self.images[index].float() / 255.0
        if rng.random() < 0.5:
            image = image.flip(-1)
        side = int(round(self.size * rng.uniform(1.0 - rescale, 1.0)))
        if side < self.size:
            top, left = rng.integers(0, self.size - side + 1, 2)
            crop = image[:, top:top + side, left:left + side][None]
            image = F.interpolate(crop, size=(self.size, self.size), mode="bicubic", align_corners=False, antialias=False)[0].clamp(0, 1)
        return image
