"""Headless batch restoration: the workflows' pipelines over a folder of photos, without ComfyUI.

Each pipeline is the node graph of its workflow (workflows/*.json), called node by node through
the same classes ComfyUI runs, with the same widget values (PIPELINES; a test keeps them equal to
the workflows). Resumable: a photo whose output exists is skipped; outputs are written to a
temporary name and renamed, so an interrupted run leaves no half-written file. Every photo gets its
own fixed seed: seed + crc32 of its file name, the same on every run and every machine.

DR-BFR is not here: its sampler is ComfyUI's KSampler on a Stable Diffusion checkpoint.
"""
from __future__ import annotations

import os
import zlib

import numpy as np
import torch
from PIL import Image, ImageOps

from ..training.data import IMAGE_EXTENSIONS
from .. import runtime
from .diffusion_nodes import DifFaceInit, DR2GuidedSampler, FaceDiffusionLoader
from .enhancer_nodes import Enhancer, FaceEnhancerLoader, spandrel_loader
from .face_nodes import FaceDetect, PasteBack
from .loading import find_weights, weights_check
from .workflow_builder import DIFFACE_FAST_NAME, DR2_FAST_NAME, FAST_DIFFACE_SAMPLER, FAST_DR2_SAMPLER, defaults_of

# The widget values of the shipped workflows, by node (see tests/test_headless.py).
DETECT = {"detector": "retinaface_resnet50", "crop_size": "512", "selection": "all", "index": 0, "min_confidence": 0.8,
          "min_face_size": 16, "max_faces": 0}
PASTE = {"blend": 1.0, "color_match": "none", "parsing": "none", "keep_original_accessories": False, "mask_erosion": 0.1,
         "mask_feather": 0.1}
LOADER = {"precision": "auto", "convolutions": "exact"}
SAMPLER_WIDGETS = ("N", "tau", "omega", "eta", "respacing", "sampler", "steps", "spacing")
OFFICIAL = {widget: value for widget, value in defaults_of("DR2GuidedSampler").items() if widget in SAMPLER_WIDGETS}
PIPELINES = {
    "difface": {
        "workflow": "DifFace restoration.json",
        "detect": DETECT, "paste": {**PASTE, "parsing": "parsenet"},
        "prior": "iddpm_ffhq512_ema500000.pth", "restorer": "swinir_restoration512_L1.pth", "loader": LOADER,
        "init": {"start_step": 100, "respacing": "ddim250"},
        "sampler": OFFICIAL,
    },
    "difface-fast": {
        "workflow": DIFFACE_FAST_NAME + ".json",
        "detect": DETECT, "paste": {**PASTE, "parsing": "parsenet"},
        "prior": "iddpm_ffhq512_ema500000.pth", "restorer": "swinir_restoration512_L1.pth",
        "loader": {**LOADER, "convolutions": "channels-last (faster)"},
        "init": {"start_step": 100, "respacing": "ddim250"},
        "sampler": {**OFFICIAL, **FAST_DIFFACE_SAMPLER},
    },
    "dr2": {
        "workflow": "DR2 restoration.json",
        "detect": DETECT, "paste": PASTE,
        "prior": "DR2_FFHQ.pkl", "enhancer": "SPARNetHD_FFHQ_DR2aug.pth", "loader": LOADER,
        "sampler": OFFICIAL,
        "enhance": {"fidelity": 0.5, "resize": "bicubic antialias"},
    },
    "dr2-fast": {
        "workflow": DR2_FAST_NAME + ".json",
        "detect": DETECT, "paste": PASTE,
        "prior": "DR2_FFHQ.pkl", "enhancer": "SPARNetHD_FFHQ_DR2aug.pth",
        "loader": {**LOADER, "convolutions": "channels-last (faster)"},
        "sampler": {**OFFICIAL, **FAST_DR2_SAMPLER},
        "enhance": {"fidelity": 0.5, "resize": "bicubic antialias"},
    },
    "dr2-p2": {
        "workflow": "DR2 restoration without Baidu - P2 prior and GFPGAN.json",
        "detect": DETECT, "paste": PASTE,
        "prior": "ffhq_p2.pt", "enhancer": "GFPGANv1.4.pth", "loader": LOADER,
        "sampler": OFFICIAL,
        "enhance": {"fidelity": 0.5, "resize": "bicubic antialias"},
    },
    "hybrid": {
        "workflow": "DifFace start with DR2 guidance.json",
        "detect": DETECT, "paste": PASTE,
        "prior": "DR2_FFHQ.pkl", "enhancer": "SPARNetHD_FFHQ_DR2aug.pth", "restorer": "swinir_restoration512_L1.pth",
        "loader": LOADER, "init": {"start_step": 40, "respacing": "100"},
        "sampler": OFFICIAL,
        "enhance": {"fidelity": 0.5, "resize": "bicubic antialias"},
    },
}


def seed_for(name: str, seed: int) -> int:
    """The fixed seed of one photo: the run's seed plus the CRC-32 of its file name."""
    return (int(seed) + zlib.crc32(name.encode("utf-8"))) % 2 ** 32


def list_photos(folder: str) -> list[str]:
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{folder} is not a folder of photos")
    return sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith("."))


def load_photo(path: str) -> torch.Tensor:
    """A photo as a ComfyUI IMAGE [1, H, W, 3] (EXIF rotation applied, as LoadImage does)."""
    with Image.open(path) as image:
        array = np.asarray(ImageOps.exif_transpose(image).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array)[None]


def save_photo(image: torch.Tensor, path: str):
    array = (image[0].clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    temporary = path + ".partial.png"
    Image.fromarray(array).save(temporary, format="PNG")
    os.replace(temporary, path)


def load_upscale_model(name: str):
    """A 1x restorer from models/upscale_models through spandrel (what ComfyUI's UpscaleModelLoader does)."""
    from ..models.checkpoint import load_state_dict

    path = find_weights("upscale_models", name, "the restorer")
    return spandrel_loader().load_from_state_dict(dict(load_state_dict(path)))


def missing_weights(settings: dict) -> list[str]:
    """The missing-file messages of a pipeline's weight files (the nodes' own checks, as in ComfyUI)."""
    checks = [FaceDetect.VALIDATE_INPUTS(settings["detect"]["detector"]), FaceDiffusionLoader.VALIDATE_INPUTS(settings["prior"]),
              PasteBack.VALIDATE_INPUTS(settings["paste"]["parsing"])]
    if "restorer" in settings:
        checks.append(weights_check("upscale_models", settings["restorer"], "the restorer"))
    if "enhancer" in settings:
        checks.append(FaceEnhancerLoader.VALIDATE_INPUTS(settings["enhancer"]))
    return [check for check in checks if check is not True]


class Pipeline:
    """One workflow's graph, models loaded once, run per photo."""

    def __init__(self, name: str, overrides: dict | None = None):
        if name not in PIPELINES:
            raise ValueError(f"unknown pipeline '{name}' (choose one of {', '.join(PIPELINES)})")
        settings = {key: (dict(value) if isinstance(value, dict) else value) for key, value in PIPELINES[name].items()}
        for key, value in (overrides or {}).items():  # "section.widget" -> value
            section, _, widget = key.partition(".")
            if section not in settings or not isinstance(settings[section], dict) or widget not in settings[section]:
                raise ValueError(f"pipeline '{name}' has no setting {key}")
            settings[section][widget] = value
        self.name, self.settings = name, settings
        missing = missing_weights(settings)
        if missing:  # all of them at once, before any model is loaded
            raise FileNotFoundError(f"pipeline '{name}' is missing {len(missing)} weight file(s): " + " | ".join(missing))
        self.prior = FaceDiffusionLoader().load(settings["prior"], **settings["loader"])[0]
        self.restorer = load_upscale_model(settings["restorer"]) if "restorer" in settings else None
        self.enhancer = FaceEnhancerLoader().load(settings["enhancer"])[0] if "enhancer" in settings else None

    def detect(self, photo: torch.Tensor):
        """(faces, crops) of a photo batch, as the workflow's FaceDetect finds them."""
        faces, crops, _, _ = FaceDetect().detect(photo, **self.settings["detect"])
        return faces, crops

    def restore(self, photo: torch.Tensor, faces, crops: torch.Tensor, seed: int, same_noise_per_person: bool = False) -> torch.Tensor:
        """The photos with the given faces restored and pasted back (the workflow's graph after FaceDetect)."""
        s = self.settings
        state = None
        if "init" in s:
            state = DifFaceInit().init(self.prior, crops, seed, restorer=self.restorer, faces=faces,
                                       same_noise_per_person=same_noise_per_person, **s["init"])[0]
        guide = crops if not self.name.startswith("difface") else None
        restored, at_prior_size = DR2GuidedSampler().sample(self.prior, seed, guide=guide, state=state, faces=faces,
                                                            same_noise_per_person=same_noise_per_person, **s["sampler"])
        if self.enhancer is not None:
            restored = Enhancer().enhance(at_prior_size, enhancer=self.enhancer, **s["enhance"])[0]
        return PasteBack().paste(photo, faces, restored, **s["paste"])[0]

    def __call__(self, photo: torch.Tensor, seed: int) -> torch.Tensor:
        faces, crops = self.detect(photo)
        if len(faces.faces) == 0:
            return photo
        return self.restore(photo, faces, crops, seed)


def run_folder(pipeline: str, input_dir: str, output_dir: str, seed: int = 0, overrides: dict | None = None, report=print) -> dict:
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
