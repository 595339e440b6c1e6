"""The restoration pipelines: each shipped workflow's graph (workflows/*.json) as plain function calls,
with the same widget values, over photos or frames, without ComfyUI.

PIPELINES holds each workflow's settings by node (a test keeps them equal to the workflows, which
tools/workflow_templates.py writes from the same fast settings and names). A Pipeline checks every
weight file it needs before it loads any, loads its models once, and restores photo after photo.

DR-BFR is not here: its sampler is ComfyUI's KSampler on a Stable Diffusion checkpoint.
"""
from __future__ import annotations

import os

import torch

from .. import runtime
from ..diffusion.dr2 import automatic_omega
from ..diffusion.schedule import Schedule
from ..models.download import download, manual_steps
from ..models.manifest import manifest_entry
from .enhancers import ENHANCER_FOLDER, enhance_faces, enhancer_check, load_face_enhancer, load_upscale_model, restorer_check
from .faces import detect_faces, detector_check, detector_weights, parsing_check, parsing_weights, paste_back
from .priors import PRIOR_FOLDER, load_prior, prior_check
from .weights import locate_weights
from .sampling import DIFFACE_START_DEFAULTS, SAMPLER_DEFAULTS, difface_start, sample_faces

# DifFace's fast setting: the fewest UNet calls that match the official DDIM(0.5)'s 100 steps under the
# fast DifFace protocol (benchmarks/fast_difface_protocol.py: within its distance to DDIM(0.5)'s own
# many-step limit on faces the setting was not chosen on), on the tuned grid spacing auto picks
FAST_DIFFACE_SAMPLER = {"sampler": "seeds-2", "steps": 10, "eta": 0.5}
DIFFACE_FAST_NAME = f"DifFace fast restoration - {FAST_DIFFACE_SAMPLER['steps']} UNet calls"
# DR2's official loop on a coarser respacing (benchmarks/sampler_accuracy.py: about as close to the
# official 100-step loop's outputs as another seed of it, 0.24 against 0.18); its UNet calls for the
# workflow's N 4, tau 22 and the paper's omega
FAST_DR2_SAMPLER = {"respacing": "25"}
_FAST_DR2_SCHEDULE = Schedule(FAST_DR2_SAMPLER["respacing"])
DR2_FAST_CALLS = _FAST_DR2_SCHEDULE.index_for_fraction(automatic_omega(4, 22)) - _FAST_DR2_SCHEDULE.index_for_fraction(22) + 1
DR2_FAST_NAME = f"DR2 fast restoration - {DR2_FAST_CALLS} UNet calls"

# The widget values of the shipped workflows, by node (see tests/test_headless.py).
DETECT = {"detector": "retinaface_resnet50", "crop_size": "512", "selection": "all", "index": 0, "min_confidence": 0.8,
          "min_face_size": 16, "max_faces": 0}
PASTE = {"blend": 1.0, "color_match": "none", "parsing": "none", "keep_original_accessories": False, "mask_erosion": 0.1,
         "mask_feather": 0.1}
LOADER = {"precision": "auto", "convolutions": "exact"}
OFFICIAL = dict(SAMPLER_DEFAULTS)
DIFFACE_START = dict(DIFFACE_START_DEFAULTS)  # K = 100 of ddim250, as in the paper
PIPELINES = {
    "difface": {
        "workflow": "DifFace restoration.json",
        "detect": DETECT, "paste": {**PASTE, "parsing": "parsenet"},
        "prior": "iddpm_ffhq512_ema500000.pth", "restorer": "swinir_restoration512_L1.pth", "loader": LOADER,
        "init": DIFFACE_START,
        "sampler": OFFICIAL,
    },
    "difface-fast": {
        "workflow": DIFFACE_FAST_NAME + ".json",
        "detect": DETECT, "paste": {**PASTE, "parsing": "parsenet"},
        "prior": "iddpm_ffhq512_ema500000.pth", "restorer": "swinir_restoration512_L1.pth",
        "loader": {**LOADER, "convolutions": "channels-last (faster)"},
        "init": DIFFACE_START,
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


def missing_weights(settings: dict) -> list[str]:
    """The missing-file messages of a pipeline's weight files (the checks the nodes make in ComfyUI)."""
    checks = [detector_check(settings["detect"]["detector"]), prior_check(settings["prior"]), parsing_check(settings["paste"]["parsing"])]
    if "restorer" in settings:
        checks.append(restorer_check(settings["restorer"]))
    if "enhancer" in settings:
        checks.append(enhancer_check(settings["enhancer"]))
    return [check for check in checks if check is not True]


class MissingWeights(FileNotFoundError):
    """A pipeline's weight files are not all in place (the message names each, with how to get it)."""


def weight_files(settings: dict) -> list[tuple[str, str]]:
    """(model folder, file name) of every weight file a pipeline's settings use."""
    files = []
    detector = detector_weights(settings["detect"]["detector"])
    if detector is not None:
        files.append(detector[:2])
    files.append((PRIOR_FOLDER, settings["prior"]))
    if settings["paste"]["parsing"] != "none":
        files.append(parsing_weights(settings["paste"]["parsing"])[:2])
    if "restorer" in settings:
        files.append(("upscale_models", settings["restorer"]))
    if "enhancer" in settings:
        files.append((ENHANCER_FOLDER, settings["enhancer"]))
    return files


def pipeline_settings(name: str, overrides: dict | None = None) -> dict:
    """A pipeline's settings by node section, with overrides {"section.widget": value} applied."""
    if name not in PIPELINES:
        raise ValueError(f"unknown pipeline '{name}' (choose one of {', '.join(PIPELINES)})")
    settings = {key: (dict(value) if isinstance(value, dict) else value) for key, value in PIPELINES[name].items()}
    for key, value in (overrides or {}).items():
        section, _, widget = key.partition(".")
        if section not in settings or not isinstance(settings[section], dict) or widget not in settings[section]:
            raise ValueError(f"pipeline '{name}' has no setting {key}")
        settings[section][widget] = value
    return settings


def fetchable(entry: dict) -> bool:
    """Whether a script can fetch a manifest file (not: DR2's on Baidu, the DR-BFR files you train)."""
    return bool(entry.get("url")) and not entry.get("manual")


def needs_manual_file(settings: dict) -> bool:
    """Whether a weight file of these settings can only be fetched by hand."""
    return not all(fetchable(manifest_entry(file)) for _, file in weight_files(settings))


def download_missing_weights(name: str, overrides: dict | None = None, report=print) -> list[str]:
    """Fetch the weight files a pipeline lacks into the models folder (resumable, verified against the
    manifest, as dfr.py download does); returns their paths. A file no script can fetch stops it before
    any download, in one line with the manual steps and the pipelines that need no such file."""
    settings = pipeline_settings(name, overrides)
    missing = []
    for folder, file in weight_files(settings):
        if locate_weights(folder, file) is None:
            try:
                missing.append(manifest_entry(file))
            except KeyError:
                raise FileNotFoundError(f"pipeline '{name}' needs {file}, a file of your own (not in the manifest): "
                                        f"put it in models/{folder}") from None
    manual = [entry for entry in missing if not fetchable(entry)]
    if manual:
        others = [other for other in PIPELINES if not needs_manual_file(pipeline_settings(other))]
        steps = " ".join(f"{entry['name']}: {manual_steps(entry)}" for entry in manual)
        raise FileNotFoundError(f"pipeline '{name}' needs {', '.join(e['name'] for e in manual)}, which no script can fetch "
                                f"({steps}); these pipelines need no such file: {', '.join(others)}")
    paths = []
    for entry in missing:
        models_dir = os.path.dirname(runtime.model_search_paths(entry["folder"])[0])
        paths.append(download(entry, models_dir, report=report))
    return paths


def checked_settings(name: str, overrides: dict | None = None) -> dict:
    """A pipeline's settings (pipeline_settings) once its weight files are all in place; else
    MissingWeights naming all of them at once, before any model is loaded."""
    settings = pipeline_settings(name, overrides)
    missing = missing_weights(settings)
    if missing:
        raise MissingWeights(f"pipeline '{name}' is missing {len(missing)} weight file(s): " + " | ".join(missing))
    return settings


class Pipeline:
    """One workflow's graph, models loaded once, run per photo."""

    def __init__(self, name: str, overrides: dict | None = None):
        settings = checked_settings(name, overrides)
        self.name, self.settings = name, settings
        self.prior = load_prior(settings["prior"], **settings["loader"])
        self.restorer = load_upscale_model(settings["restorer"]) if "restorer" in settings else None
        self.enhancer = load_face_enhancer(settings["enhancer"]) if "enhancer" in settings else None

    def detect(self, photo: torch.Tensor):
        """(faces, crops) of a photo batch, as the workflow's FaceDetect finds them."""
        faces = detect_faces(photo, **self.settings["detect"])
        return faces, faces.crops

    @torch.no_grad()
    def restore(self, photo: torch.Tensor, faces, crops: torch.Tensor, seed: int, same_noise_per_person: bool = False) -> torch.Tensor:
        """The photos with the given faces restored and pasted back (the workflow's graph after FaceDetect)."""
        s = self.settings
        state = None
        if "init" in s:
            state = difface_start(self.prior, crops, seed, restorer=self.restorer, faces=faces,
                                  same_noise_per_person=same_noise_per_person, **s["init"])[0]
        guide = crops if not self.name.startswith("difface") else None
        restored, at_prior_size = sample_faces(self.prior, seed, guide=guide, state=state, faces=faces,
                                               same_noise_per_person=same_noise_per_person, **s["sampler"])
        if self.enhancer is not None:
            restored = enhance_faces(at_prior_size, enhancer=self.enhancer, **s["enhance"])
        return paste_back(photo, faces, restored, **s["paste"])[0]

    @torch.no_grad()
    def __call__(self, photo: torch.Tensor, seed: int) -> torch.Tensor:
        """The photos (IMAGE) with every face the workflow's FaceDetect finds restored; unchanged without faces."""
        return self.restore_counting(photo, seed)[0]

    @torch.no_grad()
    def restore_counting(self, photo: torch.Tensor, seed: int) -> tuple[torch.Tensor, int]:
        """As calling the pipeline, with the number of faces restored."""
        faces, crops = self.detect(photo)
        if len(faces.faces) == 0:
            return photo, 0
        return self.restore(photo, faces, crops, seed), len(faces.faces)
