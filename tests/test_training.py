"""Both DR-BFR training stages really train: losses go down, runs resume, exports load."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from testdata import SHARED

from diffusion_face_restore.models import DEGRADATION_MODEL, load_model
from diffusion_face_restore.models.degradation import DegradationModel, DRMConfig
from diffusion_face_restore.models.checkpoint import load_state_dict, read_metadata, save_safetensors
from diffusion_face_restore.training.config import Stage1Config, Stage2Config
from diffusion_face_restore.training.data import FaceImages
from diffusion_face_restore.training.evaluation import evaluate, real_faces
from diffusion_face_restore.training.stage1 import stage1_batch, stage1_losses, train_stage1


@pytest.fixture(scope="module")
def faces64():
    return real_faces(SHARED, 64)


def tiny_stage1(out_dir, steps):
    return Stage1Config(out_dir=str(out_dir), size=64, crop=48, groups=3, faces_per_group=2, steps=steps, dim=32,
                        widths=[16, 16], checkpoint_every=1000, device="cpu", lr=1e-3)


@torch.no_grad()
def fixed_batch_loss(model, faces, config, seed=123):
    """Stage-1 loss of the model on four fixed batches (the same for every model)."""
    model.eval()
    rng, generator = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
    return float(np.mean([float(stage1_losses(model, stage1_batch(faces, config, rng, generator, "cpu"), config)["loss"]) for _ in range(4)]))


def test_stage1_loss_goes_down_and_the_bundle_loads(tmp_path, faces64):
    faces = FaceImages(faces64)
    untrained = train_stage1(tiny_stage1(tmp_path / "zero", 0), faces, log=lambda m: None)
    trained = train_stage1(tiny_stage1(tmp_path / "run", 60), faces, log=lambda m: None)
    config = tiny_stage1(tmp_path, 0)
    before, after = fixed_batch_loss(untrained["model"], faces, config), fixed_batch_loss(trained["model"], faces, config)
    assert after < 0.85 * before, (before, after)
    descriptor = load_model(trained["bundle"], (DEGRADATION_MODEL,))
    assert descriptor.config["image_size"] == 64 and descriptor.config["tokens"] == 0
    probe = faces64[:4].float() / 255
    assert torch.allclose(descriptor.module.eval().encode(probe), trained["model"].encode(probe), atol=1e-6)
    assert os.path.exists(tmp_path / "run" / "log.csv")


def test_stage1_resumes_where_it_stopped(tmp_path, faces64):
    faces = FaceImages(faces64)
    straight = train_stage1(tiny_stage1(tmp_path / "straight", 6), faces, log=lambda m: None)
    train_stage1(tiny_stage1(tmp_path / "resumed", 3), faces, log=lambda m: None)
    messages = []
    resumed = train_stage1(tiny_stage1(tmp_path / "resumed", 6), faces, log=messages.append)
    assert any("resumed at step 3" in m for m in messages)
    assert resumed["history"] == pytest.approx(straight["history"], rel=1e-5)
    for (name, a), b in zip(straight["model"].state_dict().items(), resumed["model"].state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6), name


QUALITY_STEPS = 1000  # 500 sufficed on one CPU, not on another (AUC 0.66 there; 0.88 after 1000)


@pytest.fixture(scope="module")
def trained_drm(tmp_path_factory):
    """A DRM trained as benchmarks/drm_quality.py does, for a fixed number of steps (a few minutes on a CPU)."""
    faces = real_faces(SHARED, 256)
    held_out = torch.arange(faces.shape[0]) % 3 == 2
    config = Stage1Config(out_dir=str(tmp_path_factory.mktemp("drm")), size=256, crop=64, preset="drm", groups=4, faces_per_group=4,
                          steps=QUALITY_STEPS, lr=1e-3, widths=[32, 64, 128, 128], dim=128, checkpoint_every=100000, device="cpu")
    model = train_stage1(config, FaceImages(faces[~held_out]), log=lambda m: None)["model"].eval()
    return model, faces[~held_out], faces[held_out]


def test_drm_tells_degradations_apart_on_held_out_faces(trained_drm):
    model, train, test = trained_drm
    untrained = DegradationModel(DRMConfig(dim=128, widths=[32, 64, 128, 128]))
    baseline = evaluate(untrained, train, test)
    scores = evaluate(model, train, test)
    assert scores["pair_auc"] > 0.7 and scores["pair_auc"] > baseline["pair_auc"] + 0.1, (scores, baseline)  # chance: 0.5
    assert scores["centroid_accuracy"] > 0.25, scores  # chance: 0.125 (8 classes)


def paired_t(before: torch.Tensor, after: torch.Tensor) -> float:
    """Paired t statistic of a change per face (how far it stands out of the face-to-face spread)."""
    change = after - before
    return float(change.mean() / (change.std() / len(change) ** 0.5))


@torch.no_grad()
def test_severity_and_adaptive_settings_grow_with_the_degradation(trained_drm):
    from diffusion_face_restore.diffusion.dr2 import settings_for_severity
    from diffusion_face_restore.training.evaluation import ladder_true_scores, severity_ladder

    model, _, test = trained_drm
    per_face = severity_ladder(model, test)  # [5 steps of growing damage, held-out faces]
    scores = per_face.mean(1).tolist()
    # a short CPU run learns blur and downscale, not yet noise and JPEG, and compresses the ladder
    # (true 0.00 .. 0.67; measured 0.14 0.16 0.22 0.28 0.29, and with severity_weight 10 a plateau,
    # 0.14 0.17 0.28 0.27 0.27): the rise from the mildest step to the worst must stand out of the
    # face-to-face spread, and no step may fall by more than a plateau's wobble
    assert paired_t(per_face[0], per_face[-1]) > 3, scores
    assert all(b > a - 0.02 for a, b in zip(scores, scores[1:])), scores
    settings = [settings_for_severity(s) for s in scores]
    assert settings == sorted(settings), (scores, settings)
    # the mapping itself, on the ladder's true severities: heavier damage gets a stronger setting
    true_scores = ladder_true_scores()
    assert [settings_for_severity(s) for s in true_scores] == [(4, 22), (4, 22), (8, 35), (8, 35), (16, 35)], true_scores


diffusers = pytest.importorskip("diffusers", reason="stage 2 needs diffusers (tests/requirements.txt)")


def test_stage2_controlnet_learns_resumes_and_exports(tmp_path, faces64):
    from diffusers import ControlNetModel

    from diffusion_face_restore.training.stage2 import train_stage2
    from tiny_diffusers import CONTEXT_DIM, write_tiny_stable_diffusion

    base = write_tiny_stable_diffusion(str(tmp_path / "base"))
    save_safetensors({"embedding": torch.randn(77, CONTEXT_DIM, generator=torch.Generator().manual_seed(0))}, str(tmp_path / "prompt.safetensors"))
    drm = train_stage1(tiny_stage1(tmp_path / "drm", 3), FaceImages(faces64), log=lambda m: None)["bundle"]
    faces32 = FaceImages(torch.nn.functional.interpolate(faces64.float(), size=(32, 32), mode="area").round().to(torch.uint8))

    def config(steps):
        return Stage2Config(base_model=base, drm=drm, out_dir=str(tmp_path / "cn"), resolution=32, batch=4, steps=steps,
                            lr_controlnet=1e-3, lr_projector=1e-3, tokens=4, prompt_embedding=str(tmp_path / "prompt.safetensors"),
                            conditioning_channels=[16, 32], checkpoint_every=1000, device="cpu")

    def fixed_loss(trainer):
        rng, generator = np.random.default_rng(5), torch.Generator().manual_seed(5)
        trainer.controlnet.eval()
        with torch.no_grad():
            return float(np.mean([float(trainer.losses(trainer.batch(faces32, rng, generator))) for _ in range(4)]))

    start = train_stage2(config(0), faces32, log=lambda m: None)
    before = fixed_loss(start["trainer"])
    messages = []
    trained = train_stage2(config(30), faces32, log=messages.append)
    assert any("resumed at step 0" in m for m in messages)
    after = fixed_loss(trained["trainer"])
    assert after < 0.9 * before, (before, after)

    # the ControlNet export is a diffusers ControlNet state dict (what ComfyUI's ControlNetLoader reads)
    state = load_state_dict(trained["controlnet"])
    assert "controlnet_cond_embedding.conv_in.weight" in state and "controlnet_mid_block.weight" in state
    reloaded = ControlNetModel.from_unet(trained["trainer"].unet, conditioning_embedding_out_channels=(16, 32))
    reloaded.load_state_dict(state, strict=True)
    trained_weight = trained["trainer"].controlnet.controlnet_cond_embedding.conv_in.weight
    assert torch.allclose(reloaded.controlnet_cond_embedding.conv_in.weight, trained_weight, atol=2e-3)  # fp16 export
    # the bundle holds the DRM and its projector, and says how many tokens of which width
    metadata = read_metadata(trained["bundle"])
    assert metadata["dfr.tokens"] == "4" and metadata["dfr.context_dim"] == str(CONTEXT_DIM)
    bundle = load_model(trained["bundle"], (DEGRADATION_MODEL,)).module.eval()
    d = bundle.encode_faces(faces64[:2].float() / 255)
    assert bundle.drm_projector(d).shape == (2, 4, CONTEXT_DIM)


def test_command_line_trains_the_drm_from_a_config_file(tmp_path):
    import json
    import subprocess
    import sys

    from testdata import ROOT, shared_path

    config = {"faces": [shared_path("images", "aligned")], "out_dir": str(tmp_path / "run"), "size": 64, "crop": 48, "groups": 2,
              "faces_per_group": 2, "steps": 2, "dim": 16, "widths": [8, 8], "device": "cpu"}
    (tmp_path / "config.json").write_text(json.dumps(config))
    command = [sys.executable, os.path.join(ROOT, "dfr.py"), "train-drm", str(tmp_path / "config.json"), "--set", "steps=3"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "step 3" in result.stdout and os.path.exists(tmp_path / "run" / "drm.safetensors")
    config["wrong"] = 1
    (tmp_path / "config.json").write_text(json.dumps(config))
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and "unknown Stage1Config settings: wrong" in result.stderr
