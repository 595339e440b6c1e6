"""Few-step samplers, judged on a face prior whose answer is known in closed form
(diffusion/exact_prior.py) against the official sampler's own limit at the same eta, and wired into
DR2GuidedSampler without touching the official default."""
import math

import numpy as np
import pytest
import torch

from testdata import SHARED, shared_path
from diffusion_face_restore.diffusion.difface import randn_like_from
from diffusion_face_restore.diffusion.exact_prior import face_reference_problem, frechet_distance, official_ddim_schedule, sample_moments
from diffusion_face_restore.diffusion.samplers import (
    best_spacing, ddim_step, sample_ddim, sample_dpmpp_2m, sample_dpmpp_2m_sde, sample_fast, sde_noise_fraction,
)
from diffusion_face_restore.diffusion.schedule import NoiseLevels
from diffusion_face_restore.training.evaluation import real_faces


@pytest.fixture(scope="module")
def problem():
    shared_path("images", "aligned")
    return face_reference_problem(real_faces(SHARED, 32), 400)


def test_timesteps_run_from_the_start_to_zero_by_each_spacing():
    levels = NoiseLevels()
    for spacing in ("log-SNR", "uniform t", "karras"):
        ts = levels.timesteps(400, 15, spacing)
        assert ts[0] == 400 and ts[-1] == 0 and len(ts) == 15 and ts == sorted(ts, reverse=True), (spacing, ts)
    assert levels.timesteps(400, 1) == [400]
    assert len(levels.timesteps(400, 300, "log-SNR")) < 300, "integer timesteps that coincide are merged"
    with pytest.raises(ValueError, match="unknown spacing"):
        levels.timesteps(400, 10, "cosine")


def test_the_exact_denoiser_is_the_mean_of_the_exact_posterior(problem):
    prior, levels = problem.prior, problem.levels
    alpha, sigma, _ = levels.alpha_sigma_lambda(400)
    x = problem.x_start[0].reshape(-1)
    samples = prior.sample_posterior(x, alpha, sigma, 4000, torch.Generator().manual_seed(0))
    mean = prior.denoise(x[None], alpha, sigma)[0]
    spread = samples.std(0).mean()
    assert float((samples.mean(0) - mean).abs().max()) < 6 * float(spread) / math.sqrt(4000)
    # and its noise estimate is consistent: x = alpha E[x0] + sigma eps
    eps = problem.denoiser(problem.x_start[:1], 400).reshape(-1)
    torch.testing.assert_close(alpha * mean + sigma * eps, x)


def test_dpm_solver_2m_converges_to_the_exact_ode_at_second_order(problem):
    levels, den, x = problem.levels, problem.denoiser, problem.x_start[:1]
    reference = sample_dpmpp_2m(den, x, levels, levels.timesteps(400, 4096, "karras", integer=False), clip=False)
    errors = [float((sample_dpmpp_2m(den, x, levels, levels.timesteps(400, n, "karras", integer=False), clip=False) - reference)
                    .pow(2).mean().sqrt()) for n in (160, 320, 640)]
    orders = [math.log2(errors[i] / errors[i + 1]) for i in range(2)]
    assert errors[0] > errors[1] > errors[2] and orders[-1] > 1.8, (errors, orders)  # a first-order update gives ~1
    # eta = 0 turns the SDE solver into the same ODE solver
    ts = levels.timesteps(400, 12, "karras")
    torch.testing.assert_close(sample_dpmpp_2m_sde(den, x, levels, ts, torch.zeros_like, 0.0, clip=False),
                               sample_dpmpp_2m(den, x, levels, ts, clip=False), atol=1e-12, rtol=0)


def test_one_ddim_step_is_the_first_order_sde_step_with_the_same_added_variance(problem):
    """The algebra behind sde_noise_fraction: DDIM(eta)'s step from t to s adds eta^2 of DDPM's variance;
    the SDE solver's first (uncorrected) step with the noise fraction nu that adds as much, 1 - e^{-2 nu h}
    = eta^2 (1 - e^{-2h}), is the same update. As h -> 0, nu -> eta^2."""
    levels, den = problem.levels, problem.denoiser
    x = problem.x_start[:2].float()
    schedule = official_ddim_schedule(400, 4)  # t = 0, 100, 200, 300, 400
    k = 3
    t, s = int(schedule.timestep_map[k]), int(schedule.timestep_map[k - 1])
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(5))
    h = levels.alpha_sigma_lambda(s)[2] - levels.alpha_sigma_lambda(t)[2]

    def same_added_variance(eta, h):  # nu with 1 - e^{-2 nu h} = eta^2 (1 - e^{-2h})
        return -math.log1p(-eta ** 2 * -math.expm1(-2 * h)) / (2 * h)

    for eta in (0.3, 0.5, 1.0):
        ddim, _ = ddim_step(schedule, x, k, den(x, t), eta, z, clip=False)
        nu = same_added_variance(eta, h)
        steps = []
        sample_dpmpp_2m_sde(den, x, levels, [t, s], lambda like: z, nu, clip=False,
                            callback=lambda info: steps.append(info["x"]))
        torch.testing.assert_close(steps[1], ddim, atol=2e-5, rtol=0)
        assert 0 < nu <= sde_noise_fraction(eta) + 1e-12  # a coarse step adds less than the limit's rate
    # a short step: DDIM's variance per step is the SDE's with nu = eta^2
    assert abs(same_added_variance(0.5, 1e-4) - sde_noise_fraction(0.5)) < 1e-4
    with pytest.raises(ValueError, match="outside 0..1"):
        sde_noise_fraction(1.5)


def test_eta_means_ddims_eta_on_the_fast_sampler_and_1_samples_the_posterior(problem):
    """The fast sampler at DDIM's eta 0.5 samples what DDIM(0.5) samples with many steps (its own limit,
    not the posterior), and at eta 1 the exact posterior. 32 px, 400 seeds: uniform t needs 15 calls
    here (the 64 px benchmark: 8). Measured: 0.44 from DDIM(0.5)'s limit (another seed of the limit:
    0.31; the official 100 steps: 0.36), 3.3 with eta used as the noise fraction (the old meaning);
    eta 1: 0.60 from the posterior, as far as exact posterior samples are (0.60)."""
    levels, prior, den = problem.levels, problem.prior, problem.denoiser
    alpha, sigma, _ = levels.alpha_sigma_lambda(400)
    samples = 400
    face = problem.x_start[:1].float()
    x = face.expand(samples, -1, -1, -1).contiguous()

    def moments(out):
        return sample_moments(out.reshape(samples, -1).double() @ prior.basis)

    def draws(seed):
        return randn_like_from(torch.Generator().manual_seed(seed))

    def fast(eta):
        ts = levels.timesteps(400, 15, best_spacing("dpm++ 2m sde", eta))
        return moments(sample_fast("dpm++ 2m sde", den, x, levels, ts, eta, draws(2), clip=False))

    limit = moments(sample_ddim(den, x, official_ddim_schedule(400, 200), 199, 0.5, draws(1), clip=False))
    at_half = frechet_distance(*fast(0.5), *limit)
    ts = levels.timesteps(400, 15, best_spacing("dpm++ 2m sde", 0.5))
    old_meaning = frechet_distance(*moments(sample_dpmpp_2m_sde(den, x, levels, ts, draws(2), 0.5, clip=False)), *limit)
    assert at_half < 0.8 and old_meaning > 2.0, (at_half, old_meaning)
    exact = prior.posterior_moments_in_basis(face.reshape(-1).double(), alpha, sigma)
    at_one = frechet_distance(*fast(1.0), *exact)
    assert at_one < 1.2, at_one
    assert frechet_distance(*limit, *exact) > 5.0, "DDIM(0.5)'s distribution is not the posterior"


@pytest.fixture(scope="module")
def difface_prior(tmp_path_factory):
    from testdata import golden_path
    from diffusion_face_restore.models.convert import convert_to_safetensors
    from diffusion_face_restore import runtime
    from diffusion_face_restore.nodes.diffusion_nodes import FaceDiffusionLoader

    root = tmp_path_factory.mktemp("models")
    (root / "face_diffusion").mkdir()
    convert_to_safetensors(golden_path("checkpoints", "difface", "reduced", "iddpm_reduced128_ema.pth"),
                           str(root / "face_diffusion" / "difface_reduced.safetensors"), {"num_head_channels": 32})
    runtime.set_models_dir(str(root))
    yield lambda convolutions="exact": FaceDiffusionLoader().load("difface_reduced.safetensors", "fp32", convolutions)[0]
    runtime.set_models_dir(None)


def test_fast_samplers_in_the_node_repeat_with_the_seed_and_cost_steps_calls(difface_prior, aligned_faces, monkeypatch):
    from diffusion_face_restore.nodes.diffusion_nodes import DifFaceInit, DR2GuidedSampler

    prior = difface_prior()
    crops = torch.from_numpy(np.stack(list(aligned_faces.values())[:2]).astype(np.float32) / 255)
    calls = []
    module = prior.managed.module
    forward = module.forward
    monkeypatch.setattr(module, "forward", lambda x, t: calls.append(int(t[0])) or forward(x, t))
    sampler = DR2GuidedSampler()
    state, _ = DifFaceInit().init(prior, crops, 9, 100, "ddim250")
    first = sampler.sample(prior, 0, 4, 22, 0, 1.0, "auto", "dpm++ 2m sde", 6, "auto", state=state)[1]
    assert calls == [400, 320, 240, 160, 80, 0], "6 calls, from x's own timestep (no off-by-one) to 0"
    again = sampler.sample(prior, 0, 4, 22, 0, 1.0, "auto", "dpm++ 2m sde", 6, "auto", state=state)[1]
    assert torch.equal(first, again), "the state's seed fixes every draw"
    other, _ = DifFaceInit().init(prior, crops, 10, 100, "ddim250")
    assert not torch.allclose(first, sampler.sample(prior, 0, 4, 22, 0, 1.0, "auto", "dpm++ 2m sde", 6, "auto", state=other)[1])
    ode = sampler.sample(prior, 0, 4, 22, 0, 0.7, "auto", "dpm++ 2m", 6, "auto", state=state)[1]
    assert torch.equal(ode, sampler.sample(prior, 0, 4, 22, 0, 0.0, "auto", "dpm++ 2m", 6, "auto", state=state)[1]), "the ODE ignores eta"
    with pytest.raises(ValueError, match="DR2's guided loop"):
        sampler.sample(prior, 0, 4, 22, 0, 1.0, "auto", "dpm++ 2m", 6, "auto", guide=crops)
    # the channels-last prior computes the same sampler to rounding
    fast_prior = difface_prior("channels-last (faster)")
    assert fast_prior.memory_format == torch.channels_last
    close = sampler.sample(fast_prior, 0, 4, 22, 0, 1.0, "auto", "dpm++ 2m sde", 6, "auto", state=state)[1]
    assert float((close - first).abs().max()) < 1e-3
