"""Make the README's pictures from real photos, with this pack's own code.

What they show, honestly: the stages that need no released weights -- detection, FFHQ alignment,
a synthetic degradation, what DR2 keeps of the degraded face at each N (the low-pass guide
Phi_N), and the paste-back mask. The restored faces themselves need the official weights, which
cannot be fetched on the machine that builds these pictures, so none are shown.

    python benchmarks/readme_pictures.py [--out docs/images]
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch
from PIL import Image, ImageDraw

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pack_import import import_pack, shared_dir  # noqa: E402

import_pack()
from diffusion_face_restore.degradations.synthetic import DegradationParams, degrade_batch  # noqa: E402
from diffusion_face_restore.diffusion.dr2 import prepare_guide  # noqa: E402
from diffusion_face_restore.diffusion.lowpass import LowPass  # noqa: E402
from diffusion_face_restore.nodes.face_nodes import HAAR, FaceDetect, PasteBack  # noqa: E402

TILE = 256
LABEL_HEIGHT = 22


def labelled(tiles: list[tuple[str, np.ndarray]], tile: int = TILE) -> Image.Image:
    """Tiles side by side, each resized to `tile` px high, with its label above."""
    images = []
    for label, array in tiles:
        image = Image.fromarray(array)
        width = max(1, round(image.width * tile / image.height))
        images.append((label, image.resize((width, tile), Image.LANCZOS)))
    sheet = Image.new("RGB", (sum(i.width for _, i in images) + 6 * (len(images) - 1), tile + LABEL_HEIGHT), "white")
    draw = ImageDraw.Draw(sheet)
    x = 0
    for label, image in images:
        sheet.paste(image, (x, LABEL_HEIGHT))
        draw.text((x + 4, 5), label, fill="black")
        x += image.width + 6
    return sheet


def to_uint8(image: torch.Tensor) -> np.ndarray:
    return (image.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join("docs", "images"))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    detect_settings = dict(detector=HAAR, crop_size="512", selection="all", index=0, min_confidence=0.8, min_face_size=16, max_faces=0)

    # 1. detections on a real group photo
    shared = shared_dir()
    whole = os.path.join(shared, "images", "whole", "difface_whole_00.jpg") if shared else None
    if whole and os.path.exists(whole):
        photo = torch.from_numpy(np.asarray(Image.open(whole).convert("RGB"), dtype=np.float32) / 255)[None]
        faces, crops, preview, _ = FaceDetect().detect(photo, **detect_settings)
        tiles = [("FaceDetect preview (built-in detector)", to_uint8(preview[0]))]
        tiles += [(f"aligned crop {i}", to_uint8(c)) for i, c in enumerate(crops[:3])]
        labelled(tiles).save(os.path.join(args.out, "detections.png"))

    # 2. the stages of DR2 on a synthetically degraded real photo
    import skimage.data

    photo = torch.from_numpy(skimage.data.astronaut().astype(np.float32) / 255)[None]
    params = DegradationParams(3.0, 3.0, 0.0, 4.0, 10.0, 50)  # blur 3, x4 down, noise 10/255, JPEG 50
    degraded = degrade_batch(photo.movedim(-1, 1), [params], torch.Generator().manual_seed(0)).movedim(1, -1)
    faces, crops, _, _ = FaceDetect().detect(degraded, **detect_settings)
    guide = prepare_guide(crops, 256)
    tiles = [("photo, degraded (blur 3, x4 down, noise 10, JPEG 50)", to_uint8(degraded[0, :300, 100:400])),
             ("aligned crop (DR2's input)", to_uint8(crops[0]))]
    for factor in (4, 8, 16):
        kept = LowPass(256, factor)(guide)[0].permute(1, 2, 0) * 0.5 + 0.5
        tiles.append((f"what DR2 keeps, N = {factor}", to_uint8(kept)))
    labelled(tiles).save(os.path.join(args.out, "dr2_stages.png"))

    # 3. paste-back: the soft mask that blends a crop into the photo
    faces, crops, _, _ = FaceDetect().detect(photo, **detect_settings)
    _, mask = PasteBack().paste(photo, faces, crops, 1.0, "none", "none", False, 0.1, 0.1)
    mask_rgb = (mask[0, :300, 100:400, None].expand(-1, -1, 3))
    labelled([("photo", to_uint8(photo[0, :300, 100:400])), ("PasteBack mask (eroded, feathered)", to_uint8(mask_rgb))]).save(
        os.path.join(args.out, "paste_mask.png"))
    print("pictures in", args.out)


if __name__ == "__main__":
    main()
