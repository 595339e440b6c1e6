"""The ADM/iDDPM UNet family: official key layouts, configuration from the state dict, golden
forward passes, SDPA attention equal to the official formula, precision modes, file formats."""
import json
import math

import numpy as np
import pytest
import torch

from testdata import golden, golden_path
from diffusion_face_restore.models import FACE_DIFFUSION, load_model
from diffusion_face_restore.models.checkpoint import load_state_dict, save_safetensors
from diffusion_face_restore.models.unet import AttentionBlock, UNet, UNetConfig, build_unet, infer_config

DIFFACE_512 = UNetConfig()  # the defaults are DifFace's released configuration
DR2_256 = UNetConfig(3, 6, 128, [1, 1, 2, 2, 4, 4], [1] * 6, [False, False, False, False, True, False], 64, True, True, 256)


def official_layout(keys_json: str) -> list:
    with open(golden_path("checkpoints", *keys_json.split("/"))) as handle:
        return [(k[7:] if k.startswith("module.") else k, shape) for k, shape, _ in json.load(handle)]


@pytest.mark.parametrize(
    "keys_json,config,parameters",
    [
        ("difface/full/iddpm_ffhq512_ema500000.pth.keys.json", DIFFACE_512, 159_788_454),
        ("dr2/full/DR2_FFHQ.pkl.keys.json", DR2_256, 93_563_910),
    ],
)
def test_full_size_priors_have_the_official_key_layout(keys_json, config, parameters):
    layout = official_layout(keys_json)
    model = UNet(config)
    assert [(k, list(v.shape)) for k, v in model.state_dict().items()] == layout
    assert sum(p.numel() for p in model.parameters()) == parameters
    inferred = infer_config({k: torch.empty(shape) for k, shape in layout})
    assert inferred == config, "the configuration must be read back from the released layout"


@pytest.mark.parametrize("steps", [(0, 0), (1, 1), (2, 2), (3, 99)])
def test_reduced_difface_unet_matches_the_official_forward(steps):
    row, step = steps
    state_dict = load_state_dict(golden_path("checkpoints", "difface", "reduced", "iddpm_reduced128_ema.pth"))
    model = build_unet(state_dict, {"dfr.config": json.dumps({"num_head_channels": 32})}).module
    x = torch.from_numpy(golden("difface_reduced_aligned_default_schedule", "ddim_x_in_first3_last.npy")[row])
    t = torch.from_numpy(golden("difface_reduced_aligned_default_schedule", "unet_timesteps.npy")[step])
    expected = golden("difface_reduced_aligned_default_schedule", "unet_out_first3_last.npy")[row]
    with torch.no_grad():
        np.testing.assert_allclose(model(x, t).numpy(), expected, atol=1e-5)


def test_sdpa_attention_equals_the_official_legacy_formula():
    torch.manual_seed(0)
    block = AttentionBlock(128, num_head_channels=32)
    torch.nn.init.normal_(block.proj_out.weight)  # the official proj_out is zero-initialised
    x = torch.randn(2, 128, 8, 8)
    heads, ch = 4, 32
    flat = x.reshape(2, 128, -1)
    qkv = block.qkv(block.norm(flat))
    q, k, v = qkv.reshape(2 * heads, 3 * ch, -1).split(ch, dim=1)
    scale = 1 / math.sqrt(math.sqrt(ch))
    weight = torch.softmax(torch.einsum("bct,bcs->bts", q * scale, k * scale), dim=-1)
    expected = flat + block.proj_out(torch.einsum("bts,bcs->bct", weight, v).reshape(2, 128, -1))
    with torch.no_grad():
        torch.testing.assert_close(block(x), expected.reshape(x.shape), atol=1e-5, rtol=1e-5)


def test_full_size_512_unet_loads_strictly_from_pth_and_safetensors(tmp_path):
    torch.manual_seed(0)
    model = UNet(DIFFACE_512)
    for parameter in model.parameters():
        torch.nn.init.normal_(parameter, std=0.02)
    released = tmp_path / "iddpm_ffhq512_ema500000.pth"
    torch.save({"module." + k: v for k, v in model.state_dict().items()}, released)  # the release file's layout
    converted = tmp_path / "iddpm_ffhq512_ema500000.safetensors"
    save_safetensors(model.state_dict(), str(converted))
    from_pth = load_model(str(released), (FACE_DIFFUSION,))
    from_safetensors = load_model(str(converted), (FACE_DIFFUSION,))
    assert from_pth.config == from_safetensors.config and from_pth.config["image_size"] == 512
    x, t = torch.randn(1, 3, 64, 64), torch.tensor([396])
    with torch.no_grad():
        expected = model(x, t)
        assert torch.equal(from_pth.module(x, t), expected)
        assert torch.equal(from_safetensors.module(x, t), expected)


def test_half_precision_torso_stays_close_to_float32():
    torch.manual_seed(0)
    model = UNet(UNetConfig(3, 6, 32, [1, 2, 2], [1, 1, 1], [False, True, True], 32, True, False, 32))
    for parameter in model.parameters():
        torch.nn.init.normal_(parameter, std=0.05)
    x, t = torch.randn(2, 3, 32, 32), torch.tensor([400, 400])
    with torch.no_grad():
        reference = model(x, t)
        model.set_torso_dtype(torch.bfloat16)
        half = model(x, t)
    assert half.dtype == torch.float32, "the output head runs in float32"
    assert model.time_embed[0].weight.dtype == torch.float32 and model.input_blocks[1][0].in_layers[2].weight.dtype == torch.bfloat16
    relative = (half - reference).norm() / reference.norm()
    assert relative < 0.05, f"bf16 torso drifted {relative:.3f} from float32"


def test_p2_weighting_prior_loads_as_dr2s_architecture(tmp_path):
    """ffhq_p2.pt (P2 weighting, guided-diffusion's flat state dict, no prefix) is DR2 without Baidu."""
    from dataclasses import asdict

    from diffusion_face_restore.models.manifest import manifest_entry, verify_file
    from diffusion_face_restore import runtime
    from diffusion_face_restore.nodes.diffusion_nodes import FaceDiffusionLoader

    torch.manual_seed(0)
    model = UNet(DR2_256)
    for parameter in model.parameters():
        torch.nn.init.normal_(parameter, std=0.02)
    (tmp_path / "face_diffusion").mkdir()
    released = tmp_path / "face_diffusion" / "ffhq_p2.pt"
    torch.save(model.state_dict(), released)
    assert verify_file(str(released), manifest_entry("ffhq_p2.pt")) == []
    runtime.set_models_dir(str(tmp_path))
    try:
        prior = FaceDiffusionLoader().load("ffhq_p2.pt", "fp32")[0]
    finally:
        runtime.set_models_dir(None)
    assert prior.image_size == 256 and prior.learn_sigma and prior.descriptor.architecture == "ADM-UNet"
    assert prior.descriptor.config == asdict(DR2_256), "read as DR2's configuration"
    x, t = torch.randn(1, 3, 64, 64), torch.tensor([424])
    with torch.no_grad():
        assert torch.equal(prior.managed.module(x, t), model(x, t))
