"""DR2: the low-pass operator, omega, the guided loop on the golden vectors (core and nodes)."""
import numpy as np
import pytest
import torch
from PIL import Image

from testdata import golden, golden_path
from diffusion_face_restore.diffusion.difface import randn_like_from
from diffusion_face_restore.diffusion.dr2 import automatic_omega, prepare_guide
from diffusion_face_restore.diffusion.lowpass import LowPass, resize_matrix
from diffusion_face_restore.diffusion.samplers import sample_dr2
from diffusion_face_restore.diffusion.schedule import Schedule
from diffusion_face_restore.nodes.diffusion_nodes import DifFaceInit, DR2GuidedSampler

CASE = "dr2_reduced_N4_tau22"
SEED = 20240601


@pytest.mark.parametrize("factor", [2, 4, 8, 16])
def test_lowpass_reproduces_the_official_resizer(factor):
    np.testing.assert_array_equal(resize_matrix(256, 256 // factor), golden("dr2_lowpass_filter", f"down_N{factor}_matrix.npy"))
    np.testing.assert_array_equal(resize_matrix(256 // factor, 256), golden("dr2_lowpass_filter", f"up_N{factor}_matrix.npy"))
    x = torch.from_numpy(golden("dr2_lowpass_filter", "x.npy"))
    lowpass = LowPass(256, factor)
    np.testing.assert_allclose(lowpass.down(x).numpy(), golden("dr2_lowpass_filter", f"down_N{factor}.npy"), atol=1e-6)
    np.testing.assert_allclose(lowpass(x).numpy(), golden("dr2_lowpass_filter", f"updown_N{factor}.npy"), atol=1e-6)


def test_omega_table_and_limits():
    assert [automatic_omega(n, t) for n, t in [(4, 22), (8, 35), (16, 35), (1, 10), (2, 10)]] == [42, 60, 65, 15, 20]
    assert automatic_omega(16, 80) == 99, "the official min(tau + 30, 100) would crash at 100"
    with pytest.raises(ValueError, match="N = 3 is not a low-pass factor for a 256 px prior"):
        LowPass(256, 3)


def unet():
    import json

    from diffusion_face_restore.models.checkpoint import load_state_dict
    from diffusion_face_restore.models.unet import build_unet

    state_dict = load_state_dict(golden_path("checkpoints", "dr2", "reduced", "DR2_reduced.pkl"))
    return build_unet(state_dict, {"dfr.config": json.dumps({"num_head_channels": 32})}).module


def test_dr2_loop_traces_match_the_official_code():
    model = unet()
    schedule = Schedule("100")
    y = torch.from_numpy(golden(CASE, "ref_img.npy"))
    draws, samples, x0s = [], [], []
    source = randn_like_from(torch.Generator().manual_seed(SEED))

    def noise(like):
        draws.append(source(like))
        return draws[-1]

    def callback(info):
        samples.append(info["x"])
        x0s.append(info["denoised"])

    with torch.no_grad():
        out = sample_dr2(lambda x, t: model(x, torch.full((x.shape[0],), t)), y, schedule, 42, 22, LowPass(256, 4), noise, callback=callback)
    assert len(draws) == 2 * (42 - 22) + 2 == 42 and len(samples) == 21
    official_draws = golden(CASE, "noise_draws_first3_last.npy")
    for row, index in enumerate([0, 1, 2]):
        assert torch.equal(draws[index], torch.from_numpy(official_draws[row]))
    official_samples = golden(CASE, "p_sample_first3_last.npy")
    for row, index in enumerate([0, 1, 2, 20]):
        np.testing.assert_allclose(samples[index].numpy(), official_samples[row], atol=1e-4)
    np.testing.assert_allclose(out.numpy(), golden(CASE, "dr2_output.npy"), atol=1e-4)


def official_input() -> torch.Tensor:
    with Image.open(golden_path(CASE, "input.png")) as image:
        return torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255)[None]


def test_guide_is_read_as_the_official_code_reads_it():
    np.testing.assert_array_equal(prepare_guide(official_input(), 256).numpy(), golden(CASE, "ref_img.npy"))


def test_dr2_node_equals_the_official_dr2(dr2_prior):
    faces, native = DR2GuidedSampler().sample(dr2_prior, SEED, 4, 22, 0, 0.5, "auto", guide=official_input())
    expected = golden(CASE, "dr2_output.npy") * 0.5 + 0.5
    error = float(np.abs(native.permute(0, 3, 1, 2).numpy() - np.clip(expected, 0, 1)).max())
    assert error <= 1e-4, f"DR2 differs from the official output by {error:.2e}"
    assert faces.shape == (1, 512, 512, 3) and native.shape == (1, 256, 256, 3)
    official_png = np.asarray(Image.open(golden_path(CASE, "output_dr2_official.png")).convert("RGB"), dtype=int)
    assert np.abs(np.rint(native[0].numpy() * 255).astype(int) - official_png).max() <= 1


def test_explicit_omega_and_batches(dr2_prior, aligned_faces):
    crops = torch.from_numpy(np.stack(list(aligned_faces.values())[:2]).astype(np.float32) / 255)
    batch = DR2GuidedSampler().sample(dr2_prior, 1, 8, 35, 38, 0.5, "auto", guide=crops)[1]
    single = DR2GuidedSampler().sample(dr2_prior, 1, 8, 35, 38, 0.5, "auto", guide=crops[1:])[1]
    assert batch.shape == (2, 256, 256, 3) and not torch.allclose(batch[0], batch[1])
    assert not torch.allclose(batch[1], single[0]), "each batch draws its noise as one tensor, as the official code"
    with pytest.raises(ValueError, match="omega = 20 must lie between tau = 35"):
        DR2GuidedSampler().sample(dr2_prior, 1, 8, 35, 20, 0.5, "auto", guide=crops)
    for bad_factor in (3, 0, -4):  # the widget stops these in the UI; headless callers get the same line
        with pytest.raises(ValueError, match=f"N = {bad_factor} is not a low-pass factor for a 256 px prior: use 1"):
            DR2GuidedSampler().sample(dr2_prior, 1, bad_factor, 35, 0, 0.5, "auto", guide=crops)


def test_difface_start_with_dr2_guidance(dr2_prior, aligned_faces):
    crops = torch.from_numpy(np.stack(list(aligned_faces.values())[:1]).astype(np.float32) / 255)
    state, _ = DifFaceInit().init(dr2_prior, crops, 5, 40, "100")
    hybrid = DR2GuidedSampler().sample(dr2_prior, 0, 4, 35, 0, 0.5, "auto", guide=crops, state=state)[1]
    plain = DR2GuidedSampler().sample(dr2_prior, 0, 4, 35, 0, 0.5, "auto", state=state)[1]
    assert hybrid.shape == plain.shape == (1, 256, 256, 3) and not torch.allclose(hybrid, plain)
    with pytest.raises(ValueError, match="before the state's start step"):
        DR2GuidedSampler().sample(dr2_prior, 0, 4, 60, 0, 0.5, "auto", guide=crops, state=state)


def test_degradation_adaptive_dr2_picks_settings_per_face(dr2_prior, aligned_faces):
    from diffusion_face_restore.diffusion.dr2 import settings_for_severity
    from diffusion_face_restore.models.degradation import Degradation

    # the mapping is monotone: more severe never means a weaker low-pass or an earlier tau
    settings = [settings_for_severity(s) for s in np.linspace(0, 1, 101)]
    assert settings == sorted(settings) and settings[0] == (4, 22) and settings[-1] == (16, 35)

    crops = torch.from_numpy(np.stack(list(aligned_faces.values())[:2]).astype(np.float32) / 255)
    # a mildly and a heavily degraded face (severity: blur, scale, noise, jpeg); 25 steps keep it quick
    severity = torch.tensor([[0.9, 0.9, 0.8, 0.5], [0.1, 0.1, 0.0, 0.2]])
    degradation = Degradation(torch.zeros(2, 8), severity, None, None, "measured")
    adaptive = DR2GuidedSampler().sample(dr2_prior, 7, 2, 10, 0, 0.5, "25", guide=crops, degradation=degradation)[1]
    severe = DR2GuidedSampler().sample(dr2_prior, 7, 16, 35, 0, 0.5, "25", guide=crops[[0]])[1]
    mild = DR2GuidedSampler().sample(dr2_prior, 7, 4, 22, 0, 0.5, "25", guide=crops[[1]])[1]
    assert torch.equal(adaptive[[0]], severe) and torch.equal(adaptive[[1]], mild)
    with pytest.raises(ValueError, match="encode the same crops"):
        DR2GuidedSampler().sample(dr2_prior, 7, 4, 22, 0, 0.5, "auto", guide=crops[:1], degradation=degradation)


def test_every_tensor_reaches_the_unet_in_the_official_memory_format(dr2_prior, aligned_faces, monkeypatch):
    """Channels-last inputs change the convolutions' rounding (~1e-5 against the official NCHW run)."""
    from diffusion_face_restore.models.degradation import Degradation
    UNET_MEMORY_FORMAT = torch.contiguous_format  # FaceDiffusionLoader's default, convolutions "exact"
    assert dr2_prior.memory_format == UNET_MEMORY_FORMAT
    crops = torch.from_numpy(np.stack(list(aligned_faces.values())[:2]).astype(np.float32) / 255)
    for guide in (crops, crops[:, ::2, ::2]):  # crops resized to the prior's size, and crops at it (a view)
        assert prepare_guide(guide.contiguous(), 256).is_contiguous(), "the guide must be NCHW, as the official one"
    seen = []
    module = dr2_prior.managed.module
    forward = module.forward
    monkeypatch.setattr(module, "forward", lambda x, t: seen.append(x.is_contiguous(memory_format=UNET_MEMORY_FORMAT)) or forward(x, t))
    at_prior_size = crops[:, ::2, ::2].contiguous()
    sampler = DR2GuidedSampler()
    sampler.sample(dr2_prior, 1, 4, 22, 24, 0.5, "auto", guide=at_prior_size)                      # DR2
    state, _ = DifFaceInit().init(dr2_prior, at_prior_size, 5, 3, "25")
    sampler.sample(dr2_prior, 0, 4, 0, 0, 0.5, "auto", guide=at_prior_size, state=state)           # hybrid
    sampler.sample(dr2_prior, 0, 4, 0, 0, 0.5, "auto", state=state)                                # DifFace
    degradation = Degradation(torch.zeros(2, 8), torch.tensor([[0.9] * 4, [0.1] * 4]), None, None, "measured")
    sampler.sample(dr2_prior, 7, 4, 22, 0, 0.5, "25", guide=at_prior_size, degradation=degradation)  # adaptive
    assert seen and all(seen), f"{seen.count(False)} of {len(seen)} UNet calls got another memory format"
