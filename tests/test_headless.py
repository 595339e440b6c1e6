"""The headless batch runner: a folder of real photos restored with DR2's pipeline (reduced official
networks from ../shared/golden), resumable, a fixed seed per file, the workflows' defaults."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from testdata import ROOT, golden_path
from test_workflows import widget_specs

from diffusion_face_restore.models.convert import convert_to_safetensors
from diffusion_face_restore.restore.faces import HAAR
from diffusion_face_restore.restore.photos import seed_for
from diffusion_face_restore.restore.pipelines import PIPELINES

SECTIONS = {"loader": "FaceDiffusionLoader", "detect": "FaceDetect", "paste": "PasteBack", "init": "DifFaceInit", "sampler": "DR2GuidedSampler", "enhance": "Enhancer"}


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_pipelines_use_the_workflow_defaults(name):
    settings = PIPELINES[name]
    with open(os.path.join(ROOT, "workflows", settings["workflow"]), encoding="utf-8") as handle:
        nodes = json.load(handle)["nodes"]
    for section, node_type in SECTIONS.items():
        if section not in settings:
            continue
        node = next(n for n in nodes if n["type"] == node_type)
        values = dict(zip([widget for widget, _ in widget_specs(node_type)], node["widgets_values"]))
        for widget, value in settings[section].items():
            assert values[widget] == value, f"{name}: {node_type}.{widget} is {values[widget]!r} in the workflow, {value!r} here"
    loaders = {n["type"]: n["widgets_values"][0] for n in nodes if n["type"] in ("FaceDiffusionLoader", "FaceEnhancerLoader", "UpscaleModelLoader")}
    assert loaders["FaceDiffusionLoader"] == settings["prior"]
    assert loaders.get("FaceEnhancerLoader") == settings.get("enhancer") and loaders.get("UpscaleModelLoader") == settings.get("restorer")


def test_seed_per_file_is_fixed_and_differs_between_files():
    assert seed_for("a.png", 0) == seed_for("a.png", 0) != seed_for("b.png", 0)
    assert seed_for("a.png", 1) == (seed_for("a.png", 0) + 1) % 2 ** 32


def test_batch_restores_a_folder_and_skips_finished_files_on_a_rerun(tmp_path, astronaut, grace_hopper):
    models = tmp_path / "models"
    (models / "face_diffusion").mkdir(parents=True)
    (models / "facerestore_models").mkdir()
    # DR2's reduced official networks under the official names (the .safetensors conversion carries
    # the reduced UNet's head width; the loaders accept it for DR2_FFHQ.pkl)
    convert_to_safetensors(golden_path("checkpoints", "dr2", "reduced", "DR2_reduced.pkl"), str(models / "face_diffusion" / "DR2_FFHQ.safetensors"), {"num_head_channels": 32})
    shutil.copy(golden_path("checkpoints", "dr2", "reduced", "SPARNet_reduced.pth"), models / "facerestore_models" / "SPARNetHD_FFHQ_DR2aug.pth")
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(astronaut[:256, 96:352]).save(photos / "astronaut.png")
    Image.fromarray(grace_hopper[:300, 150:450]).save(photos / "grace.jpg")
    Image.fromarray(np.full((64, 80, 3), 90, np.uint8)).save(photos / "wall.png")  # no face: passes through
    (photos / "notes.txt").write_text("not a photo")
    out = tmp_path / "restored"
    command = [sys.executable, os.path.join(ROOT, "dfr.py"), "batch", "dr2", str(photos), str(out), "--seed", "3",
               "--models-dir", str(models), "--set", f"detect.detector={HAAR}", "--set", "sampler.respacing=25"]
    first = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr
    assert "restored 3, skipped 0" in first.stdout
    assert sorted(os.listdir(out)) == ["astronaut.png", "grace.png", "manifest.jsonl", "wall.png"]
    restored = np.asarray(Image.open(out / "astronaut.png"))
    assert restored.shape == (256, 256, 3) and np.abs(restored.astype(int) - astronaut[:256, 96:352]).mean() > 1  # the face changed
    assert np.array_equal(np.asarray(Image.open(out / "wall.png")), np.full((64, 80, 3), 90, np.uint8))
    stamp = os.path.getmtime(out / "grace.png")
    os.remove(out / "astronaut.png")
    second = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stderr
    assert "restored 1, skipped 2" in second.stdout and os.path.getmtime(out / "grace.png") == stamp
    assert np.array_equal(np.asarray(Image.open(out / "astronaut.png")), restored)  # the same seed for the same file


def test_a_pipeline_names_every_missing_file_before_it_loads_anything(tmp_path):
    from diffusion_face_restore import runtime
    from diffusion_face_restore.restore.pipelines import Pipeline

    runtime.set_models_dir(str(tmp_path))
    try:
        with pytest.raises(FileNotFoundError) as error:
            Pipeline("dr2-p2", {"paste.parsing": "parsenet"})
    finally:
        runtime.set_models_dir(None)
    message = str(error.value)
    assert message.startswith("pipeline 'dr2-p2' is missing 4 weight file(s): ") and "\n" not in message
    for name in ("detection_Resnet50_Final.pth", "ffhq_p2.pt", "GFPGANv1.4.pth", "parsing_parsenet.pth"):
        assert name in message, name
    assert "drive.google.com" in message, "the P2 prior's message says where to get it"
