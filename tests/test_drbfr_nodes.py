"""DR-BFR nodes without ComfyUI: the loader, DegradationEncoder, and the tokens DR-ControlNetApply adds.
(The ControlNet half of DR-ControlNetApply runs on ComfyUI's own ControlNet objects: tests/comfyui.)"""
from __future__ import annotations

import pytest
import torch

from testdata import to_image_batch

from diffusion_face_restore.models.degradation import DegradationModel, DRMConfig
from diffusion_face_restore import runtime
from diffusion_face_restore.nodes.drbfr_nodes import (
    DegradationEncoder, DegradationModelLoader, DRControlNetApply, add_tokens,
)
from diffusion_face_restore.nodes.face_nodes import FaceDetect
from diffusion_face_restore.restore.faces import HAAR
from diffusion_face_restore.training.stage1 import export_bundle

CONTEXT = 64


@pytest.fixture
def models_dir(tmp_path):
    folder = tmp_path / "degradation_models"
    folder.mkdir()
    torch.manual_seed(0)
    stage1 = DegradationModel(DRMConfig(dim=32, widths=[16, 16], image_size=128)).eval()
    export_bundle(stage1, str(folder / "drm.safetensors"))
    export_bundle(DegradationModel(DRMConfig(dim=32, widths=[16, 16], image_size=128)).add_projector(4, CONTEXT).eval(), str(folder / "drm_projector.safetensors"))
    runtime.set_models_dir(str(tmp_path))
    yield folder
    runtime.set_models_dir(None)


@pytest.fixture(scope="module")
def crops(astronaut, grace_hopper):
    settings = dict(detector=HAAR, crop_size="512", selection="largest", index=0, min_confidence=0.8, min_face_size=16, max_faces=0)
    return torch.cat([FaceDetect().detect(to_image_batch(photo), **settings)[1] for photo in (astronaut, grace_hopper)])


def test_encoder_gives_embeddings_tokens_and_a_readable_estimate(models_dir, crops):
    assert DegradationModelLoader.INPUT_TYPES()["required"]["model_name"][0] == ["drm.safetensors", "drm_projector.safetensors"]
    handle = DegradationModelLoader().load("drm_projector.safetensors")[0]
    result = DegradationEncoder().encode(handle, crops)["result"]
    degradation, text = result
    assert len(degradation) == crops.shape[0] == 2
    assert degradation.tokens.shape == (2, 4, CONTEXT) and degradation.null_tokens.shape == (4, CONTEXT)
    assert degradation.severity.shape == (2, 4) and ((degradation.severity >= 0) & (degradation.severity <= 1)).all()
    # the embedding is the DRM's on the crops resized to its training size
    direct = handle.model.encode_faces(crops.movedim(-1, 1))
    assert torch.allclose(degradation.embedding, direct, atol=1e-5)
    assert text.count("\n") == 1 and "blur sigma" in text and "JPEG quality" in text
    # an RGBA crop batch gives the same answer as its RGB part
    rgba = torch.cat([crops, torch.ones_like(crops[..., :1])], dim=-1)
    assert torch.allclose(DegradationEncoder().encode(handle, rgba)["result"][0].embedding, degradation.embedding)


def test_tokens_extend_positive_and_negative_to_the_same_length(models_dir, crops):
    handle = DegradationModelLoader().load("drm_projector.safetensors")[0]
    degradation = DegradationEncoder().encode(handle, crops)["result"][0]
    prompt = torch.randn(1, 77, CONTEXT)
    positive, negative = DRControlNetApply().apply([[prompt, {"pooled_output": None}]], [[torch.zeros(1, 77, CONTEXT), {}]], None, crops, degradation, 0.0, 0.0, 1.0)
    assert positive[0][0].shape == negative[0][0].shape == (2, 81, CONTEXT)  # one entry per face, cond and uncond batch together
    assert torch.equal(positive[0][0][:, :77], prompt.expand(2, -1, -1)) and torch.equal(positive[0][0][:, 77:], degradation.tokens)
    assert torch.equal(negative[0][0][1, 77:], degradation.null_tokens)
    assert "pooled_output" in positive[0][1]
    with pytest.raises(ValueError, match="768 for SD1.5"):
        add_tokens([[torch.zeros(1, 77, 768), {}]], degradation.tokens)
    with pytest.raises(ValueError, match="encode the same crops"):
        DRControlNetApply().apply([[prompt, {}]], [[prompt, {}]], None, crops[:1], degradation, 1.0, 0.0, 1.0)


def test_stage1_bundle_estimates_severity_but_cannot_condition(models_dir, crops):
    handle = DegradationModelLoader().load("drm.safetensors")[0]
    degradation = DegradationEncoder().encode(handle, crops)["result"][0]
    assert degradation.tokens is None and degradation.severity.shape == (2, 4)
    with pytest.raises(ValueError, match="train stage 2"):
        DRControlNetApply().apply([[torch.zeros(1, 77, CONTEXT), {}]], [[torch.zeros(1, 77, CONTEXT), {}]], None, crops, degradation, 1.0, 0.0, 1.0)


def test_missing_bundle_says_how_to_make_one(models_dir):
    with pytest.raises(FileNotFoundError, match="degradation_models"):
        DegradationModelLoader().load("nope.safetensors")
