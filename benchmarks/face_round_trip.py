"""Detect -> align -> paste back with the crops unchanged, on real photos: how close to the photo?

Prints, per photo: faces found by the built-in detector, their sizes, whether every pixel outside
the pasted mask is identical, the PSNR inside the mask, and the time of each stage (median of
--repeats runs).

    python benchmarks/face_round_trip.py [--repeats 3] [--interpolation bicubic|bilinear]

(bilinear, without antialiasing, is facexlib's sampling; bicubic is the pack's default.)
"""
from __future__ import annotations

import argparse
import glob
import os
import statistics
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pack_import import import_pack, shared_dir  # noqa: E402

import_pack()
from diffusion_face_restore.face.detection.haar import HaarDetector  # noqa: E402
from diffusion_face_restore.face.find import find_faces  # noqa: E402
from diffusion_face_restore.face.paste import PasteSettings, paste_faces  # noqa: E402


def real_photos() -> dict[str, np.ndarray]:
    from matplotlib import cbook
    from PIL import Image
    import skimage.data

    photos = {"astronaut (skimage)": skimage.data.astronaut()}
    with cbook.get_sample_data("grace_hopper.jpg") as handle:
        photos["grace_hopper (matplotlib)"] = np.array(Image.open(handle).convert("RGB"))
    shared = shared_dir()
    if shared:
        for path in sorted(glob.glob(os.path.join(shared, "images", "whole", "*"))):
            photos[os.path.basename(path)] = np.array(Image.open(path).convert("RGB"))
    return photos


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--interpolation", choices=["bicubic", "bilinear"], default="bicubic")
    args = parser.parse_args()
    detector = HaarDetector()
    print("| photo | size | faces (box px) | outside mask identical | PSNR inside mask | detect+align s | paste s |")
    print("|---|---|---|---|---|---|---|")
    for name, photo_uint8 in real_photos().items():
        image = torch.from_numpy(photo_uint8.astype(np.float32) / 255.0)[None]
        photo = image[0].numpy()
        detect_times, paste_times = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            face_set = find_faces(
                image, detector, 512, min_score=0.8, min_size=16, interpolation=args.interpolation,
                antialias=args.interpolation == "bicubic",
            )
            detect_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            out, coverage = paste_faces(
                photo, face_set.image_sizes[0], [f.inverse for f in face_set.faces], list(face_set.crops.numpy()),
                settings=PasteSettings(interpolation=args.interpolation),
            )
            paste_times.append(time.perf_counter() - start)
        inside = coverage > 0
        identical = np.array_equal(out[~inside], photo[~inside])
        mse = float(np.mean((out[inside].astype(np.float64) - photo[inside]) ** 2))
        sizes = ", ".join(f"{face.box_size:.0f}" for face in face_set.faces)
        print(
            f"| {name} | {photo.shape[1]}x{photo.shape[0]} | {len(face_set)} ({sizes}) | {identical} | "
            f"{10 * np.log10(1 / mse):.1f} dB | {statistics.median(detect_times):.3f} | {statistics.median(paste_times):.3f} |"
        )


if __name__ == "__main__":
    main()
