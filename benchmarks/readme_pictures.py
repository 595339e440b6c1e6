"""Make the README's pictures, the template thumbnails and the Registry icon from real photos, with
this pack's own code.

What they show, honestly: the stages that need no released weights -- detection, FFHQ alignment,
a synthetic degradation, the estimate diffused to DifFace's start step, what DR2 keeps of the
degraded face at each N (the low-pass guide Phi_N), the degradations DR-BFR's encoder tells apart,
and the paste-back mask. The restored faces themselves need the official weights, which cannot be
fetched on the machine that builds these pictures, so none are shown.

    python benchmarks/readme_pictures.py [--out docs/images] [--workflows workflows]

Writes docs/images/{detections,dr2_stages,paste_mask}.png, docs/images/icon.png (400 x 400, the
Registry's icon) and workflows/<template>.jpg (512 x 512, ComfyUI's template browser cards).
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pack_import import import_pack, shared_dir  # noqa: E402

import_pack()
from diffusion_face_restore.degradations.camera_path import camera_path, render_clip  # noqa: E402
from diffusion_face_restore.degradations.synthetic import DegradationParams, degrade_batch  # noqa: E402
from diffusion_face_restore.diffusion.dr2 import prepare_guide  # noqa: E402
from diffusion_face_restore.diffusion.lowpass import LowPass  # noqa: E402
from diffusion_face_restore.diffusion.fast_solvers import solver_timesteps  # noqa: E402
from diffusion_face_restore.diffusion.samplers import q_sample  # noqa: E402
from diffusion_face_restore.diffusion.schedule import NoiseLevels, Schedule  # noqa: E402
from diffusion_face_restore.restore.faces import detect_faces, detection_previews, paste_back, track_faces  # noqa: E402
from diffusion_face_restore.restore.pipelines import DR2_FAST_CALLS, FAST_DIFFACE_SAMPLER, FAST_DR2_SAMPLER  # noqa: E402
from diffusion_face_restore.tools import workflow_templates as templates  # noqa: E402

TILE = 256
LABEL_HEIGHT = 22
# blur 3, x4 down, noise 10/255, JPEG 50: a clearly damaged face
DEGRADATION = DegradationParams(3.0, 3.0, 0.0, 4.0, 10.0, 50)


def font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one small bitmap font
        return ImageFont.load_default()


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


def card(title: str, tiles: list[tuple[str, np.ndarray]], size: int = 512) -> Image.Image:
    """A template-browser thumbnail: a title bar over a 2 x 2 grid of labelled square tiles."""
    title_height, label_font, title_font = 40, font(15), font(22)
    half = size // 2
    sheet = Image.new("RGB", (size, size), (24, 24, 28))
    draw = ImageDraw.Draw(sheet)
    draw.text((10, 8), title, fill=(240, 240, 240), font=title_font)
    tile_height = (size - title_height) // 2
    for index, (label, array) in enumerate(tiles[:4]):
        image = Image.fromarray(array)
        scale = max(half / image.width, tile_height / image.height)
        image = image.resize((max(half, round(image.width * scale)), max(tile_height, round(image.height * scale))), Image.LANCZOS)
        left, top = (image.width - half) // 2, (image.height - tile_height) // 2
        image = image.crop((left, top, left + half, top + tile_height))
        x, y = (index % 2) * half, title_height + (index // 2) * tile_height
        sheet.paste(image, (x, y))
        box = draw.textbbox((x + 6, y + tile_height - 24), label, font=label_font)
        draw.rectangle((box[0] - 4, box[1] - 3, box[2] + 4, box[3] + 3), fill=(0, 0, 0))
        draw.text((x + 6, y + tile_height - 24), label, fill=(255, 255, 255), font=label_font)
    return sheet


def to_uint8(image: torch.Tensor) -> np.ndarray:
    return (image.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def from_minus_one(x: torch.Tensor) -> np.ndarray:
    """[3, H, W] in -1..1 -> uint8 H x W x 3."""
    return to_uint8(x.permute(1, 2, 0) * 0.5 + 0.5)


def load_photo(path: str) -> torch.Tensor:
    return torch.from_numpy(np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255)[None]


def degrade(photo: torch.Tensor, params: DegradationParams = DEGRADATION, seed: int = 0) -> torch.Tensor:
    return degrade_batch(photo.movedim(-1, 1), [params], torch.Generator().manual_seed(seed)).movedim(1, -1)


def diffused(crop: torch.Tensor, size: int, respacing: str, step: int, seed: int = 0) -> np.ndarray:
    """The crop (IMAGE [1, S, S, 3]) at the prior's size, diffused to `step` of `respacing`."""
    x0 = prepare_guide(crop, size)
    return from_minus_one(q_sample(Schedule(respacing), x0, step, torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed)))[0])


def kept_by_dr2(crop: torch.Tensor, factor: int) -> np.ndarray:
    return from_minus_one(LowPass(256, factor)(prepare_guide(crop, 256))[0])


class Photos:
    """The real photos every picture is made from, detected once."""

    def __init__(self):
        import skimage.data

        self.astronaut = torch.from_numpy(skimage.data.astronaut().astype(np.float32) / 255)[None]
        self.degraded = degrade(self.astronaut)
        # FaceDetect's defaults (the function's defaults are the node's), the built-in detector
        self.crop = detect_faces(self.astronaut).crops[:1]
        self.degraded_crop = detect_faces(self.degraded).crops[:1]
        shared = shared_dir()
        group = os.path.join(shared, "images", "whole", "difface_whole_00.jpg") if shared else None
        self.group = load_photo(group) if group and os.path.exists(group) else self.astronaut
        self.group_faces = detect_faces(self.group)
        self.group_crops, self.group_preview = self.group_faces.crops, detection_previews(self.group, self.group_faces)


def readme_pictures(photos: Photos, out: str):
    tiles = [("FaceDetect preview (built-in detector)", to_uint8(photos.group_preview[0]))]
    tiles += [(f"aligned crop {i}", to_uint8(c)) for i, c in enumerate(photos.group_crops[:3])]
    labelled(tiles).save(os.path.join(out, "detections.png"))

    tiles = [("photo, degraded (blur 3, x4 down, noise 10, JPEG 50)", to_uint8(photos.degraded[0, :300, 100:400])),
             ("aligned crop (DR2's input)", to_uint8(photos.degraded_crop[0]))]
    tiles += [(f"what DR2 keeps, N = {factor}", kept_by_dr2(photos.degraded_crop, factor)) for factor in (4, 8, 16)]
    labelled(tiles).save(os.path.join(out, "dr2_stages.png"))

    mask = paste_mask(photos.astronaut)
    labelled([("photo", to_uint8(photos.astronaut[0, :300, 100:400])),
              ("PasteBack mask (eroded, feathered)", to_uint8(mask[:300, 100:400, None].expand(-1, -1, 3)))]).save(
        os.path.join(out, "paste_mask.png"))


def paste_mask(photo: torch.Tensor) -> torch.Tensor:
    faces = detect_faces(photo)
    return paste_back(photo, faces, faces.crops)[1][0]


def icon(photos: Photos, out: str):
    """400 x 400: the astronaut's aligned crop, degraded on the left, the original on the right."""
    clean = Image.fromarray(to_uint8(photos.crop[0])).resize((400, 400), Image.LANCZOS)
    damaged = Image.fromarray(to_uint8(photos.degraded_crop[0])).resize((400, 400), Image.LANCZOS)
    picture = clean.copy()
    picture.paste(damaged.crop((0, 0, 200, 400)), (0, 0))
    ImageDraw.Draw(picture).line((200, 0, 200, 400), fill=(255, 255, 255), width=3)
    picture.save(os.path.join(out, "icon.png"))


def tracked_clip(photos: Photos, frames: int = 30) -> tuple[torch.Tensor, torch.Tensor]:
    """A clip of the astronaut along a known camera path (noise, JPEG), through FaceTrack with the
    built-in detector: (previews, crops), one face per frame."""
    photo = to_uint8(photos.astronaut[0])
    clip = render_clip(photo, camera_path(frames, photo.shape[:2]), noise=6, jpeg=70, seed=0)
    faces = track_faces(clip)  # FaceTrack's defaults
    return detection_previews(clip, faces), faces.crops


def thumbnails(photos: Photos, out: str) -> dict[str, Image.Image]:
    degraded_crop, group_mask = to_uint8(photos.degraded_crop[0]), paste_mask(photos.group)
    degraded_photo = to_uint8(photos.degraded[0, 60:380, 120:440])
    difface_start = ("diffused to K = 100 (t = 400)", diffused(photos.degraded_crop, 512, "ddim250", 100))
    previews, track_crops = tracked_clip(photos)
    fast = FAST_DIFFACE_SAMPLER
    grid = solver_timesteps(fast["sampler"], NoiseLevels(), 400, fast["steps"], "auto", fast["eta"])
    grid_shown = [grid[len(grid) // 3], grid[2 * len(grid) // 3]]
    dr2_respacing = FAST_DR2_SAMPLER["respacing"]
    dr2_fast = Schedule(dr2_respacing)
    dr2_fast_omega = dr2_fast.index_for_fraction(42)
    cards = {
        templates.FACE_CROP_PASTE_NAME: ("Face crop and paste", [
            ("FaceDetect preview", to_uint8(photos.group_preview[0, 40:200, 20:480])),
            ("aligned crop 0", to_uint8(photos.group_crops[0])),
            ("aligned crop 1", to_uint8(photos.group_crops[1])),
            ("PasteBack mask", to_uint8(group_mask[40:200, 20:480, None].expand(-1, -1, 3)))]),
        templates.DIFFACE_NAME: ("DifFace", [
            ("degraded photo", degraded_photo), ("aligned crop", degraded_crop), difface_start,
            ("paste mask", to_uint8(paste_mask(photos.degraded)[60:380, 120:440, None].expand(-1, -1, 3)))]),
        templates.DIFFACE_FAST_NAME: (f"DifFace fast: {fast['steps']} UNet calls", [
            ("degraded crop", degraded_crop), difface_start,
            *[(f"solver grid: t = {t} of 400", diffused(photos.degraded_crop, 512, "1000", t)) for t in grid_shown]]),
        templates.DIFFACE_X2_NAME: ("DifFace, 2x background", [
            ("degraded photo", degraded_photo), ("aligned crop", degraded_crop), difface_start,
            ("2x canvas (bicubic stand-in)", to_uint8(torch.nn.functional.interpolate(
                photos.degraded.movedim(-1, 1), scale_factor=2, mode="bicubic")[0].movedim(0, -1)[240:560, 440:760]))]),
        templates.DR2_NAME: ("DR2", [
            ("degraded crop", degraded_crop), ("diffused to omega = 42", diffused(photos.degraded_crop, 256, "100", 42)),
            ("DR2 keeps, N = 4", kept_by_dr2(photos.degraded_crop, 4)), ("DR2 keeps, N = 16", kept_by_dr2(photos.degraded_crop, 16))]),
        templates.DR2_FAST_NAME: (f"DR2 fast: {DR2_FAST_CALLS} UNet calls", [
            ("degraded crop", degraded_crop), (f"respacing {dr2_respacing}: omega at t = {dr2_fast.timestep_map[dr2_fast_omega]}",
                                               diffused(photos.degraded_crop, 256, dr2_respacing, dr2_fast_omega)),
            ("DR2 keeps, N = 4", kept_by_dr2(photos.degraded_crop, 4)), ("DR2 keeps, N = 16", kept_by_dr2(photos.degraded_crop, 16))]),
        templates.DR2_P2_NAME: ("DR2 without Baidu (P2)", [
            ("degraded crop", degraded_crop), ("diffused to omega = 42", diffused(photos.degraded_crop, 256, "100", 42)),
            ("DR2 keeps, N = 4", kept_by_dr2(photos.degraded_crop, 4)), ("DR2 keeps, N = 8", kept_by_dr2(photos.degraded_crop, 8))]),
        templates.HYBRID_NAME: ("DifFace start + DR2", [
            ("degraded crop", degraded_crop), ("diffused to K = 40 (t = 404)", diffused(photos.degraded_crop, 256, "100", 40)),
            ("DR2 keeps, N = 4", kept_by_dr2(photos.degraded_crop, 4)), ("paste mask", to_uint8(group_mask[40:200, 20:480, None].expand(-1, -1, 3)))]),
        # the kinds of damage the Degradation Encoder tells apart, on the clean aligned crop
        templates.DR_BFR_NAME: ("DR-BFR", [
            (label, to_uint8(degrade(photos.crop, params)[0]))
            for label, params in (("blur 6", DegradationParams(6.0, 6.0, 0.0, 1.0, 0.0, 100)),
                                  ("noise 25", DegradationParams(0.1, 0.1, 0.0, 1.0, 25.0, 100)),
                                  ("JPEG 15", DegradationParams(0.1, 0.1, 0.0, 1.0, 0.0, 15)),
                                  ("x8 down", DegradationParams(0.1, 0.1, 0.0, 8.0, 0.0, 100)))]),
        # frames of a moving clip with FaceTrack's person label, and the smoothed crops that stay still
        templates.VIDEO_DR2_NAME: ("Video: tracked faces", [
            ("frame 0, FaceTrack", to_uint8(previews[0, :320, 90:410])),
            ("frame 15", to_uint8(previews[15, :320, 90:410])),
            ("aligned crop, frame 0", to_uint8(track_crops[0])),
            ("aligned crop, frame 15", to_uint8(track_crops[15]))]),
    }
    made = {}
    for name, (title, tiles) in cards.items():
        made[name] = card(title, tiles)
        made[name].save(os.path.join(out, name + ".jpg"), quality=88)
    return made


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join("docs", "images"))
    parser.add_argument("--workflows", default=templates.WORKFLOWS_DIR)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    photos = Photos()
    readme_pictures(photos, args.out)
    icon(photos, args.out)
    thumbnails(photos, args.workflows)
    print("pictures in", args.out, "and", args.workflows)


if __name__ == "__main__":
    main()
