"""dfr.py convert: any supported file to .safetensors with our metadata, loading to the same network."""
import json
import os
import subprocess
import sys

import pytest
import torch

from testdata import ROOT, golden_path
from diffusion_face_restore.models import load_model
from diffusion_face_restore.models.checkpoint import CheckpointError, load_state_dict, read_safetensors_metadata
from diffusion_face_restore.models.convert import convert_to_safetensors
from diffusion_face_restore.models.unet import build_unet


def test_converted_prior_keeps_its_configuration_and_outputs(tmp_path):
    source = golden_path("checkpoints", "dr2", "reduced", "DR2_reduced.pkl")
    target = convert_to_safetensors(source, str(tmp_path / "dr2.safetensors"), {"num_head_channels": 32})
    metadata = read_safetensors_metadata(target)
    config = json.loads(metadata["dfr.config"])
    assert metadata["dfr.source"] == "DR2_reduced.pkl" and len(metadata["dfr.source_sha256"]) == 64
    assert config["num_head_channels"] == 32 and config["resblock_updown"] is True and config["image_size"] == 256
    converted = load_model(target)
    assert converted.config == config
    assert load_model(source).config["num_head_channels"] == 64, "without metadata the official head width is assumed"
    original = build_unet(load_state_dict(source), {"dfr.config": json.dumps({"num_head_channels": 32})})
    x, t = torch.randn(1, 3, 32, 32), torch.tensor([424])
    with torch.no_grad():
        assert torch.equal(converted.module(x, t), original.module(x, t))


def test_converted_swinir_loads_in_spandrel_like_the_release_file(tmp_path):
    import spandrel

    source = golden_path("checkpoints", "difface", "reduced", "swinir_reduced128.pth")
    target = convert_to_safetensors(source, str(tmp_path / "swinir.safetensors"))
    assert read_safetensors_metadata(target)["dfr.architecture"] == "SwinIR"
    released = spandrel.ModelLoader().load_from_state_dict(load_state_dict(source)).eval()
    converted = spandrel.ModelLoader().load_from_state_dict(load_state_dict(target)).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(released.model(x), converted.model(x))


def test_the_command_line_converts_and_refuses_to_overwrite(tmp_path):
    source = golden_path("checkpoints", "difface", "reduced", "iddpm_reduced128_ema.pth")
    target = tmp_path / "prior.safetensors"
    command = [sys.executable, os.path.join(ROOT, "dfr.py"), "convert", source, str(target), "--head-channels", "32"]
    result = subprocess.run(command, capture_output=True, text=True, preexec_fn=lambda: os.umask(0o022))
    assert result.returncode == 0 and "wrote" in result.stdout, result.stderr
    assert json.loads(read_safetensors_metadata(str(target))["dfr.config"])["num_head_channels"] == 32
    assert os.stat(target).st_mode & 0o777 == 0o644  # readable by the group sharing the models folder, as any new file
    again = subprocess.run(command, capture_output=True, text=True)
    assert again.returncode == 1 and "exists" in again.stderr
    assert subprocess.run(command + ["--force"], capture_output=True, text=True).returncode == 0


def test_unknown_networks_are_refused(tmp_path):
    path = tmp_path / "mystery.pth"
    torch.save({"a.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(CheckpointError, match="neither this pack nor spandrel"):
        convert_to_safetensors(str(path))
