"""The Enhancer: SPARNetHD from DR2's layout (spectral norm folded), spandrel face models with their
correct value ranges (no "grey faces"), and DR2 + SPARNetHD against the official outputs."""
import json

import numpy as np
import pytest
import torch

from testdata import golden, golden_path
from diffusion_face_restore.models import load_model
from diffusion_face_restore.models.sparnet import SPARNet, fold_spectral_norm, infer_config
from diffusion_face_restore import runtime
from diffusion_face_restore.nodes.enhancer_nodes import Enhancer, FaceEnhancerLoader

CASE = "dr2_reduced_N4_tau22"


@pytest.fixture()
def models_dir(tmp_path):
    (tmp_path / "facerestore_models").mkdir()
    runtime.set_models_dir(str(tmp_path))
    yield tmp_path / "facerestore_models"
    runtime.set_models_dir(None)


def with_spectral_norm(model: torch.nn.Module) -> torch.nn.Module:
    """The official SPARNetHD2D build: spectral norm on every conv, u/v power-iterated a few times."""
    for module in list(model.modules()):
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.utils.spectral_norm(module)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(1, 3, 64, 64))
    return model.eval()


def test_full_size_sparnethd_in_the_official_layout_loads_strictly(models_dir):
    with open(golden_path("checkpoints", "dr2", "full", "SPARNetHD_FFHQ_DR2aug.pth.keys.json")) as handle:
        layout = [(k, shape) for k, shape, _ in json.load(handle)]
    shapes = {k: torch.empty(shape) for k, shape in layout}
    for key in shapes:
        if key.endswith(("weight_u", "weight_v")):
            shapes[key] = torch.ones_like(shapes[key])
    config = infer_config(fold_spectral_norm(shapes))
    torch.manual_seed(0)
    official = with_spectral_norm(SPARNet(config))
    state_dict = official.state_dict()
    assert [(k, list(v.shape)) for k, v in state_dict.items()] == layout, "the official key order and shapes"
    torch.save(state_dict, models_dir / "SPARNetHD_FFHQ_DR2aug.pth")
    enhancer = FaceEnhancerLoader().load("SPARNetHD_FFHQ_DR2aug.pth")[0]
    assert enhancer.restorer.name == "SPARNetHD2D"
    assert sum(p.numel() for p in enhancer.restorer.module.parameters()) == 85_793_412
    x = torch.rand(1, 3, 128, 128) * 2 - 1
    with torch.no_grad():  # eval-mode spectral norm: weight_orig / sigma from the stored u, v
        np.testing.assert_allclose(enhancer.restorer.module(x).numpy(), official(x).numpy(), atol=2e-5)


def test_reduced_sparnet_equals_the_official_forward():
    model = load_model(golden_path("checkpoints", "dr2", "reduced", "SPARNet_reduced.pth")).module
    with torch.no_grad():
        for inputs, outputs in [("sr_in.npy", "sr_out.npy"), ("sr_in_legacy_tv.npy", "sr_out_legacy_tv.npy")]:
            # float32 rounding accumulated through a deep conv stack (outputs up to |2.8|), the platform's:
            # within 1e-5 on one machine, 1.5e-5 on an AVX2-only AMD EPYC, anywhere in the image
            np.testing.assert_allclose(model(torch.from_numpy(golden(CASE, inputs))).numpy(), golden(CASE, outputs), atol=2e-5)


@pytest.mark.parametrize("resize,expected", [("bicubic antialias", "sr_out.npy"), ("bicubic legacy", "sr_out_legacy_tv.npy")])
def test_dr2_output_through_the_enhancer_equals_the_official_enhancement(models_dir, resize, expected):
    import shutil

    shutil.copy(golden_path("checkpoints", "dr2", "reduced", "SPARNet_reduced.pth"), models_dir / "SPARNet_reduced.pth")
    enhancer = FaceEnhancerLoader().load("SPARNet_reduced.pth")[0]
    dr2_output = torch.from_numpy(golden(CASE, "dr2_output.npy"))  # x0 at tau, [-1, 1], 256
    crops = (dr2_output * 0.5 + 0.5).clamp(0, 1).permute(0, 2, 3, 1)  # DR2GuidedSampler's faces_prior_size
    enhanced = Enhancer().enhance(crops, 0.5, resize, enhancer=enhancer)[0]
    official = np.clip(golden(CASE, expected) * 0.5 + 0.5, 0, 1)
    np.testing.assert_allclose(enhanced.permute(0, 3, 1, 2).numpy(), official, atol=1e-4)


def spandrel_face_model(kind: str):
    import spandrel

    torch.manual_seed(0)
    if kind == "GFPGAN":
        from spandrel.architectures.GFPGAN import GFPGAN

        network = GFPGAN(out_size=512, num_style_feat=512, channel_multiplier=2, num_mlp=8, input_is_latent=True, different_w=True, narrow=1, sft_half=True)
    else:
        from spandrel.architectures.RestoreFormer import RestoreFormer

        network = RestoreFormer()
    with torch.no_grad():
        for parameter in network.parameters():  # random but not degenerate: unit-scale outputs
            parameter.mul_(1.5)
    descriptor = spandrel.ModelLoader().load_from_state_dict(dict(network.state_dict()))
    assert descriptor.architecture.name == kind
    return descriptor.eval()


@pytest.mark.parametrize("kind", ["GFPGAN", "RestoreFormer"])
def test_spandrel_face_models_run_with_their_value_ranges(kind):
    descriptor = spandrel_face_model(kind)
    crops = torch.rand(1, 512, 512, 3)
    ours = Enhancer().enhance(crops, 0.5, "bicubic antialias", upscale_model=descriptor)[0].permute(0, 3, 1, 2)
    x = crops.permute(0, 3, 1, 2).contiguous()
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(0)
        signed_output = descriptor.model(x * 2 - 1, return_rgb=False)[0] if kind == "GFPGAN" else descriptor.model(x * 2 - 1)[0]
    official = ((signed_output + 1) / 2).clamp(0, 1)
    torch.testing.assert_close(ours, official, atol=1e-4, rtol=0)
    if kind == "GFPGAN":  # spandrel's own call feeds [0, 1] and reads [-1, 1] as [0, 1]: grey faces
        with torch.no_grad(), torch.random.fork_rng():
            torch.manual_seed(0)
            naive = descriptor(x)
        assert (naive - official).abs().mean() > 0.05


def test_enhancer_needs_exactly_one_restorer():
    crops = torch.rand(1, 64, 64, 3)
    with pytest.raises(ValueError, match="needs a face restorer"):
        Enhancer().enhance(crops, 0.5, "bicubic antialias")
