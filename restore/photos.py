"""Photos in and out of the pipelines: reading (EXIF rotation applied), writing without half-written
files, the fixed seed of each photo, and restoring a whole folder, resumably.

Resumable: a photo whose output exists is skipped; outputs are written to a temporary name and
renamed, so an interrupted run leaves no half-written file. Every photo gets its own fixed seed:
seed + crc32 of its file name, the same on every run and every machine.
"""
from __future__ import annotations

import os
import zlib

import numpy as np
import torch
from PIL import Image, ImageOps

from .. import runtime
from ..face.image import IMAGE_EXTENSIONS
from .pipelines import Pipeline


def seed_for(name: str, seed: int) -> int:
    """The fixed seed of one photo: the run's seed plus the CRC-32 of its file name."""
    return (int(seed) + zlib.crc32(name.encode("utf-8"))) % 2 ** 32


def list_photos(folder: str) -> list[str]:
    """The photo files of a folder (not its subfolders), sorted by name; two whose outputs
    (`<name>.png`) would share a name are refused."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{folder} is not a folder of photos")
    photos = sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith("."))
    stems: dict[str, list[str]] = {}
    for name in photos:
        stems.setdefault(os.path.splitext(name)[0], []).append(name)
    clashes = [" and ".join(names) for names in stems.values() if len(names) > 1]
    if clashes:
        raise ValueError(f"{'; '.join(clashes)} would be written to the same output name; rename one of each")
    return photos


def load_photo(path: str) -> torch.Tensor:
    """A photo as a ComfyUI IMAGE [1, H, W, 3] (EXIF rotation applied, as LoadImage does)."""
    with Image.open(path) as image:
        array = np.asarray(ImageOps.exif_transpose(image).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array)[None]


def save_photo(image: torch.Tensor, path: str):
    """The first image of an IMAGE batch as a PNG at path, written under a temporary name and renamed."""
    array = (image[0].clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    temporary = path + ".partial.png"
    Image.fromarray(array).save(temporary, format="PNG")
    os.replace(temporary, path)


def restore_folder(pipeline: str, input_dir: str, output_dir: str, seed: int = 0, overrides: dict | None = None, report=print) -> dict:
    """Restore every photo of input_dir into output_dir/<name>.png; returns {"done", "skipped", "failed"}."""
    photos = list_photos(input_dir)
    os.makedirs(output_dir, exist_ok=True)
    todo = [name for name in photos if not os.path.exists(os.path.join(output_dir, os.path.splitext(name)[0] + ".png"))]
    result = {"done": [], "skipped": sorted(set(photos) - set(todo)), "failed": []}
    report(f"{len(photos)} photo(s) in {input_dir}: {len(result['skipped'])} already done, {len(todo)} to restore")
    if not todo:
        return result
    runner = Pipeline(pipeline, overrides)
    progress = runtime.TerminalProgress(len(todo), pipeline)
    for name in todo:
        target = os.path.join(output_dir, os.path.splitext(name)[0] + ".png")
        try:
            with torch.no_grad():
                restored = runner(load_photo(os.path.join(input_dir, name)), seed_for(name, seed))
            save_photo(restored, target)
            result["done"].append(name)
        except (ValueError, OSError) as error:  # one bad photo does not stop the night's run
            report(f"{name}: {error}")
            result["failed"].append(name)
        progress.update(1, name)
        runtime.check_cancel()
    return result
