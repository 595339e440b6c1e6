"""The script API (restore/): the README's lines restore a folder with ComfyUI absent, and give the
same images as the same graph run through the node classes ComfyUI runs.

The networks are DR2's reduced official-layout test checkpoints under the released names; the
photos are real (Grace Hopper, and a wall without a face).
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from testdata import ROOT, golden_path

from diffusion_face_restore.models.convert import convert_to_safetensors
from diffusion_face_restore.restore.faces import HAAR

# the test networks are small and the built-in detector needs no weights
OVERRIDES = {"detect.detector": HAAR, "sampler.respacing": "25"}

# run in a fresh interpreter where importing ComfyUI fails, as on a machine without it
SCRIPT = """
import importlib.abc, json, sys

class NoComfyUI(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("comfy", "comfy_extras", "comfy_api", "folder_paths"):
            raise ImportError(f"ComfyUI is absent here ({name})")

sys.meta_path.insert(0, NoComfyUI())
root, models, photos, out, overrides = sys.argv[1:6]
sys.path.insert(0, root)
from pack_import import import_pack
import_pack()

# the README's lines
import diffusion_face_restore as dfr
dfr.set_models_dir(models)
result = dfr.restore_folder("dr2", photos, out, overrides=json.loads(overrides))

loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("comfy", "folder_paths") or m.startswith("diffusion_face_restore.nodes"))
print(json.dumps({"result": result, "loaded": loaded}))
"""


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    (root / "face_diffusion").mkdir()
    (root / "facerestore_models").mkdir()
    convert_to_safetensors(golden_path("checkpoints", "dr2", "reduced", "DR2_reduced.pkl"), str(root / "face_diffusion" / "DR2_FFHQ.safetensors"),
                           {"num_head_channels": 32})
    shutil.copy(golden_path("checkpoints", "dr2", "reduced", "SPARNet_reduced.pth"), root / "facerestore_models" / "SPARNetHD_FFHQ_DR2aug.pth")
    return root


def test_the_readme_lines_restore_a_folder_without_comfyui_as_the_node_graph_does(tmp_path, models, grace_hopper):
    photos, out = tmp_path / "photos", tmp_path / "restored"
    photos.mkdir()
    portrait = grace_hopper  # the whole photo: 512 x 600, one face
    Image.fromarray(portrait).save(photos / "grace.png")
    Image.fromarray(np.full((48, 64, 3), 70, np.uint8)).save(photos / "wall.png")
    run = subprocess.run([sys.executable, "-c", SCRIPT, ROOT, str(models), str(photos), str(out), json.dumps(OVERRIDES)],
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert sorted(report["result"]["done"]) == ["grace.png", "wall.png"] and not report["result"]["failed"]
    assert report["loaded"] == [], f"the script API imported ComfyUI or the node classes: {report['loaded']}"
    assert np.array_equal(np.asarray(Image.open(out / "wall.png")), np.full((48, 64, 3), 70, np.uint8)), "no face: unchanged"

    restored = np.asarray(Image.open(out / "grace.png"))
    assert restored.shape == portrait.shape and np.abs(restored.astype(int) - portrait).mean() > 1, "the face was restored"
    assert np.array_equal(restored, node_graph(models, portrait, "grace.png")), "the script API and the node graph differ"


def node_graph(models, portrait: np.ndarray, name: str) -> np.ndarray:
    """The dr2 workflow's graph through the node classes (FaceDetect, FaceDiffusionLoader,
    DR2GuidedSampler, FaceEnhancerLoader, Enhancer, PasteBack) with the pipeline's settings."""
    from diffusion_face_restore import NODE_CLASS_MAPPINGS as N
    from diffusion_face_restore import runtime
    from diffusion_face_restore.restore.photos import seed_for
    from diffusion_face_restore.restore.pipelines import PIPELINES

    settings = {section: dict(values) if isinstance(values, dict) else values for section, values in PIPELINES["dr2"].items()}
    for key, value in OVERRIDES.items():
        section, _, widget = key.partition(".")
        settings[section][widget] = value
    runtime.set_models_dir(str(models))
    try:
        image = torch.from_numpy(portrait.astype(np.float32) / 255)[None]
        faces, crops, _, _ = N["FaceDetect"]().detect(image, **settings["detect"])
        prior = N["FaceDiffusionLoader"]().load(settings["prior"], **settings["loader"])[0]
        _, at_prior_size = N["DR2GuidedSampler"]().sample(prior, seed_for(name, 0), guide=crops, **settings["sampler"])
        enhancer = N["FaceEnhancerLoader"]().load(settings["enhancer"])[0]
        enhanced = N["Enhancer"]().enhance(at_prior_size, enhancer=enhancer, **settings["enhance"])[0]
        pasted = N["PasteBack"]().paste(image, faces, enhanced, **settings["paste"])[0]
    finally:
        runtime.set_models_dir(None)
    return (pasted[0].clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def test_a_pipeline_restores_a_photo_in_memory_and_refuses_unknown_settings(models, astronaut):
    from diffusion_face_restore import restore

    restore.set_models_dir(str(models))
    try:
        with pytest.raises(ValueError, match="has no setting sampler.tua"):
            restore.Pipeline("dr2", {"sampler.tua": 35})
        pipeline = restore.Pipeline("dr2", OVERRIDES)
        photo = torch.from_numpy(astronaut[:256, 96:352].astype(np.float32) / 255)[None]
        with torch.no_grad():
            first, again = pipeline(photo, seed=5), pipeline(photo, seed=5)
            other = pipeline(photo, seed=6)
    finally:
        restore.set_models_dir(None)
    assert first.shape == photo.shape and torch.equal(first, again), "a seed gives the same photo"
    assert not torch.equal(first, other), "another seed, other draws"
    assert (first - photo).abs().mean() > 1 / 255, "the face was restored"
