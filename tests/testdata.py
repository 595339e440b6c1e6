"""Test data: real photos with faces, the shared folder, and small helpers used across tests."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
from pack_import import shared_dir  # noqa: E402

SHARED = shared_dir()


def shared_path(*parts: str) -> str:
    """A file or folder under ../shared, or a skip saying why it is needed."""
    if SHARED is None:
        pytest.skip("needs the project's shared test data (../shared beside the checkout, or $DFR_SHARED_DIR)")
    path = os.path.join(SHARED, *parts)
    if not os.path.exists(path):
        pytest.skip(f"shared test data {os.path.join(*parts)} is missing")
    return path


def load_reduced_dr2_prior(source: str, models_root: str):
    """The reduced official-layout DR2 network of ../shared/golden (source: its DR2_reduced.pkl),
    converted into models_root/face_diffusion and loaded by FaceDiffusionLoader, fp32. Leaves the
    pack's models folder set to models_root (runtime.set_models_dir(None) resets it)."""
    from diffusion_face_restore.models.convert import convert_to_safetensors
    from diffusion_face_restore import runtime
    from diffusion_face_restore.nodes.diffusion_nodes import FaceDiffusionLoader

    os.makedirs(os.path.join(models_root, "face_diffusion"), exist_ok=True)
    convert_to_safetensors(source, os.path.join(models_root, "face_diffusion", "dr2.safetensors"), {"num_head_channels": 32})
    runtime.set_models_dir(models_root)
    return FaceDiffusionLoader().load("dr2.safetensors", "fp32")[0]


def load_rgb(path: str) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.array(image.convert("RGB"))


def to_image_batch(*photos: np.ndarray) -> torch.Tensor:
    """uint8 HxWxC photos of one size -> ComfyUI IMAGE [B, H, W, C] float32."""
    return torch.from_numpy(np.stack(photos).astype(np.float32) / 255.0)


# Faces in the shared whole photos, counted by eye; the built-in detector must find them all.
WHOLE_PHOTO_FACES = {
    "difface_hepburn_rgba.png": 1,
    "difface_whole_00.jpg": 4,
    "difface_whole_01.jpg": 4,
    "difface_whole_03_rgba.png": 2,
}


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 1.0) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(peak ** 2 / mse)


def randomize_batchnorm(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give BatchNorm layers non-trivial statistics so that random-weight tests exercise them."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, torch.nn.BatchNorm2d):
                n = layer.num_features
                layer.running_mean.copy_(torch.rand(n, generator=generator) * 0.2 - 0.1)
                layer.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
                layer.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                layer.bias.copy_(torch.rand(n, generator=generator) * 0.2 - 0.1)
    return module.eval()


def facexlib_module(name: str):
    """facexlib (test-only reference implementation) or a skip."""
    return pytest.importorskip(name, reason="facexlib (tests/requirements.txt) is the reference implementation")


def golden_path(*parts: str) -> str:
    """A file of ../shared/golden (vectors from the official DifFace and DR2 code), or a skip."""
    return shared_path("golden", *parts)


def golden(*parts: str):
    """A golden .npy array."""
    return np.load(golden_path(*parts))


def template_with_reduced_models(folder, template: str) -> tuple[str, str]:
    """A workflow template (workflows/<template>.json) with its FaceDetect / FaceTrack on the built-in
    MTCNN, written to folder/<template>.json, and a models folder (folder/models) holding DR2's and
    SPARNetHD's reduced networks of ../shared/golden under the official file names: (workflow path,
    models folder)."""
    import json
    import shutil

    models = os.path.join(folder, "models")
    for source, kind, name in [("dr2/reduced/DR2_reduced.pkl", "face_diffusion", "DR2_FFHQ.pkl"),
                               ("dr2/reduced/SPARNet_reduced.pth", "facerestore_models", "SPARNetHD_FFHQ_DR2aug.pth")]:
        os.makedirs(os.path.join(models, kind), exist_ok=True)
        shutil.copy(shared_path("golden", "checkpoints", *source.split("/")), os.path.join(models, kind, name))
    with open(os.path.join(ROOT, "workflows", template + ".json"), encoding="utf-8") as handle:
        workflow = json.load(handle)
    for node in workflow["nodes"]:
        if node["type"] in ("FaceDetect", "FaceTrack"):
            node["widgets_values"][0] = "mtcnn (built-in)"
    path = os.path.join(folder, template + ".json")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(workflow, handle)
    return path, models


def video_workflow_with_reduced_models(folder) -> tuple[str, str]:
    """The video template on MTCNN with the reduced networks (template_with_reduced_models)."""
    return template_with_reduced_models(folder, "Video restoration with DR2 - tracked faces, no flicker")


def write_clip_with_sound(path: str, source: str = "real_1.mp4", frames: int = 6, start: int = 0, size=(192, 256), fps: int = 10):
    """`frames` frames of a shared real clip from frame `start`, resized to size (w, h), as an H.264
    clip at fps with an AAC tone as its sound track."""
    import av
    import cv2

    capture = cv2.VideoCapture(shared_path("videos", source))
    capture.set(cv2.CAP_PROP_POS_FRAMES, start)
    pictures = [cv2.resize(capture.read()[1][..., ::-1], size, interpolation=cv2.INTER_AREA) for _ in range(frames)]
    capture.release()
    with av.open(str(path), mode="w") as container:
        video = container.add_stream("h264", rate=fps)
        video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
        sound = container.add_stream("aac", rate=16000)
        for picture in pictures:
            container.mux(video.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(picture), format="rgb24")))
        container.mux(video.encode(None))
        samples = int(16000 * frames / fps)
        tone = av.AudioFrame.from_ndarray((0.2 * np.sin(np.arange(samples) / 16000 * 2 * np.pi * 440)).astype(np.float32)[None],
                                          format="flt", layout="mono")
        tone.sample_rate, tone.pts = 16000, 0
        container.mux(sound.encode(tone))
        container.mux(sound.encode(None))


def describe_video(path: str) -> tuple[list[np.ndarray], float, int]:
    """A video's decoded RGB frames, its frame rate and its number of sound streams."""
    import av

    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        return frames, float(container.streams.video[0].average_rate), len(container.streams.audio)
