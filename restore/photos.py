"""Photos in and out of the pipelines: reading (EXIF rotation applied), writing without half-written
files, the fixed seed of each photo, and restoring a whole folder, resumably.

Resumable: every photo's outcome is a line of OUTPUT/manifest.jsonl and a photo whose output exists
is skipped (restore/outcomes.py); outputs are written to a temporary name and renamed, so an
interrupted run leaves no half-written file. Every photo gets its own fixed seed:
seed + crc32 of its file name, the same on every run and every machine.
"""
from __future__ import annotations

import contextlib
import os
import threading
import time
import zlib

import numpy as np
import torch
from PIL import Image, ImageOps

from .. import runtime
from ..face.image import IMAGE_EXTENSIONS
from .outcomes import failure_reason, plan_inputs, run_inputs
from .pipelines import Pipeline, checked_settings


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


# Pixel formats read as pictures, not as 8-bit codes: 16-bit samples (PNG/TIFF greyscale, "I;16*" or
# "I") are scaled by 1/65535, 32-bit float TIFFs ("F") are taken as 0..1; Pillow itself converts
# every other mode (palette, CMYK, grey + alpha, 1-bit, 16-bit RGB read as 8-bit) to RGB.
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
# the pixel limit of a batch when none is given: what fits the memory of this machine at
# BATCH_BYTES_PER_PIXEL bytes per pixel (the photo, its copies and masks in float32 while faces are
# pasted back: benchmarks/batch_memory.py measured 47-59 bytes per added pixel with the face template,
# 21-29 with DR2 fast, at 4 and 16 MP; 100 leaves room for the models), never under Pillow's own limit
BATCH_BYTES_PER_PIXEL = 100
PIXEL_LIMIT_OPTION = "--max-megapixels"
_pillow_limit = threading.Lock()


class PictureTooLarge(ValueError):
    """A picture over the batch's pixel limit (the message says how to allow it)."""


def default_max_pixels() -> int:
    """The pixel limit of a batch when none is given (see BATCH_BYTES_PER_PIXEL)."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # Windows: no sysconf; assume 16 GiB
        memory = 16 * 2 ** 30
    return max(int(Image.MAX_IMAGE_PIXELS or 0), memory // BATCH_BYTES_PER_PIXEL)


@contextlib.contextmanager
def open_picture(path: str, max_pixels: int | None = None):
    """Image.open(path) with `max_pixels` (None: default_max_pixels()) in place of Pillow's own
    decompression-bomb limit; a picture over it is refused before its pixels are decoded."""
    limit = default_max_pixels() if max_pixels is None else int(max_pixels)
    with _pillow_limit:  # Pillow's limit is a global: lifted only while this file is opened
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            image = Image.open(path)
        finally:
            Image.MAX_IMAGE_PIXELS = saved
    with image:
        width, height = image.size
        if width * height > limit:
            raise PictureTooLarge(f"{width}x{height} is {width * height / 1e6:.1f} megapixels, over this batch's limit of "
                                  f"{limit / 1e6:.1f} ({PIXEL_LIMIT_OPTION}); give a larger {PIXEL_LIMIT_OPTION} if this "
                                  "machine has the memory (about 100 bytes per pixel)")
        yield image


def picture_to_tensors(frame: Image.Image) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One frame (EXIF rotation applied) as RGB [H, W, 3] in 0..1 and its alpha [H, W] (None if it
    has none): 16-bit and float samples keep their range, every other mode through Pillow's RGB."""
    frame = ImageOps.exif_transpose(frame)
    if frame.mode in SIXTEEN_BIT_MODES or frame.mode == "F":
        samples = np.asarray(frame, dtype=np.float32)
        grey = np.clip(samples if frame.mode == "F" else samples / 65535.0, 0.0, 1.0)
        return torch.from_numpy(np.repeat(grey[..., None], 3, axis=-1)), None
    rgb = torch.from_numpy(np.asarray(frame.convert("RGB"), dtype=np.float32) / 255.0)
    alpha = None
    if "A" in frame.getbands():
        alpha = np.asarray(frame.getchannel("A"), dtype=np.float32) / 255.0
    elif frame.mode == "P" and "transparency" in frame.info:
        alpha = np.asarray(frame.convert("RGBA").getchannel("A"), dtype=np.float32) / 255.0
    return rgb, None if alpha is None else torch.from_numpy(alpha)


def frame_count(image: Image.Image) -> int:
    """The pictures a file holds as ComfyUI's Load Image counts them (an MPO's extra pictures, a
    camera's previews, are not frames)."""
    return 1 if image.format == "MPO" else int(getattr(image, "n_frames", 1))


def read_picture(path: str, max_pixels: int | None = None, all_frames: bool = True) -> tuple[torch.Tensor, list]:
    """The frames of a picture file as an IMAGE [N, H, W, 3] and each frame's alpha (or None); with
    all_frames, every frame the size of the first (as ComfyUI's Load Image), else the first."""
    with open_picture(path, max_pixels) as image:
        images, alphas = [], []
        for index in range(frame_count(image) if all_frames else 1):
            image.seek(index)
            rgb, alpha = picture_to_tensors(image)
            if images and rgb.shape != images[0].shape:
                continue
            images.append(rgb)
            alphas.append(alpha)
    return torch.stack(images), alphas


def load_photo(path: str, max_pixels: int | None = None) -> torch.Tensor:
    """A photo as a ComfyUI IMAGE [1, H, W, 3] (EXIF rotation applied, 16-bit samples kept; see
    read_picture). A file of several frames (an animated GIF or WebP) is refused: a pipeline
    restores one picture per file."""
    with open_picture(path, max_pixels) as image:
        frames = frame_count(image)
        if frames > 1:
            raise ValueError(f"it holds {frames} frames (an animation); a pipeline restores one picture per file: run a "
                             "workflow with --workflow (its Load Image hands on every frame) or save the frames as photos")
        return picture_to_tensors(image)[0][None]


def write_atomically(path: str, write):
    """write(temporary path) and rename it to path: a stop or a full disk leaves no partial file
    under either name (the temporary keeps path's extension, `.partial.png`, for the writers that
    read the format from it)."""
    temporary = f"{path}.partial{os.path.splitext(path)[1]}"
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def save_photo(image: torch.Tensor, path: str):
    """The first image of an IMAGE batch as a PNG at path, written under a temporary name and renamed."""
    array = (image[0].clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    write_atomically(path, lambda temporary: Image.fromarray(array).save(temporary, format="PNG"))


def restore_folder(pipeline: str, input_dir: str, output_dir: str, seed: int = 0, overrides: dict | None = None, report=print,
                   max_pixels: int | None = None) -> dict:
    """Restore every photo of input_dir into output_dir/<name>.png, each outcome a line of
    output_dir/manifest.jsonl (restore/outcomes.py); returns {"done", "skipped", "failed"}. The
    output folder is checked and the settings are read before any model is loaded; a photo that
    fails (over `max_pixels`, unreadable, out of memory) is its manifest line and the batch goes on;
    Ctrl-C or SIGTERM raises BatchStopped with the result so far."""
    photos = list_photos(input_dir)
    settings = checked_settings(pipeline, overrides)  # invalid settings, missing weights: refused before any work
    todo, result = plan_inputs(input_dir, photos, output_dir, output_name, report, f" through the {pipeline} pipeline")
    if not todo:
        return result
    runner = Pipeline(pipeline, overrides)

    def process(name: str) -> dict:
        start = time.perf_counter()
        try:
            restored, faces = runner.restore_counting(load_photo(os.path.join(input_dir, name), max_pixels), seed_for(name, seed))
            save_photo(restored, os.path.join(output_dir, output_name(name)))
            record = {"photo": name, "status": "done", "outputs": [output_name(name)], "faces": faces}
        except Exception as error:  # one bad photo never stops the night's run: it is its line
            record = {"photo": name, "status": "failed", "reason": failure_reason(error)}
        runtime.check_cancel()
        return {**record, "seconds": round(time.perf_counter() - start, 3), "pipeline": settings["workflow"]}

    return run_inputs(todo, process, output_dir, result, report, pipeline)


def output_name(photo: str) -> str:
    """A photo's output file in the pipeline batch: <name>.png."""
    return os.path.splitext(photo)[0] + ".png"
