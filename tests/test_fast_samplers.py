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
from diffusion_face_restore.diffusion.fast_solvers import best_spacing, grid_points, sample_fast
from diffusion_face_restore.diffusion.samplers import ddim_step, sample_ddim, sample_dpmpp_2m, sample_dpmpp_2m_sde, sde_noise_fraction
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
    from diffusion_face_restore.diffusion.tuned_grids import TUNED_GRIDS
    tuned = [int(round(400 * fraction)) for fraction in TUNED_GRIDS["dpm++ 2m sde"][6]]
    assert calls == tuned and tuned[0] == 400 and tuned[-1] == 0, "6 calls on the tuned grid, from x's own timestep (no off-by-one) to 0"
    calls.clear()
    sampler.sample(prior, 0, 4, 22, 0, 1.0, "auto", "dpm++ 2m sde", 6, "uniform t", state=state)
    assert calls == [400, 320, 240, 160, 80, 0]
    again = sampler.sample(prior, 0, 4, 22, 0, 1.0, "auto", "dpm++ 2m sde", 6, "auto", state=state)[1]
    assert torch.equal(first, again), "the state's seed fixes every draw"
    other, _ = DifFaceInit().init(prior, crops, 10, 100, "ddim250")
    assert not torch.allclose(first, sampler.sample(prior, 0, 4, 22, 0, 1.0, "auto", "dpm++ 2m sde", 6, "auto", state=other)[1])
    for name in ("dpm++ 3m sde", "sa-solver", "er-sde", "seeds-2"):
        for budget in (5, 6):
            calls.clear()
            sampler.sample(prior, 0, 4, 22, 0, 0.5, "auto", name, budget, "uniform t", state=state)
            assert len(calls) == budget and calls[0] == 400 and calls[-1] == 0, (name, budget, calls)
    ode = sampler.sample(prior, 0, 4, 22, 0, 0.7, "auto", "dpm++ 2m", 6, "auto", state=state)[1]
    assert torch.equal(ode, sampler.sample(prior, 0, 4, 22, 0, 0.0, "auto", "dpm++ 2m", 6, "auto", state=state)[1]), "the ODE ignores eta"
    with pytest.raises(ValueError, match="DR2's guided loop"):
        sampler.sample(prior, 0, 4, 22, 0, 1.0, "auto", "dpm++ 2m", 6, "auto", guide=crops)
    # the channels-last prior computes the same sampler to rounding
    fast_prior = difface_prior("channels-last (faster)")
    assert fast_prior.memory_format == torch.channels_last
    close = sampler.sample(fast_prior, 0, 4, 22, 0, 1.0, "auto", "dpm++ 2m sde", 6, "auto", state=state)[1]
    assert float((close - first).abs().max()) < 1e-3


STOCHASTIC_SOLVERS = {"dpm++ 2m sde": 2, "dpm++ 3m sde": 3, "sa-solver": 4, "er-sde": 2, "seeds-2": 2}


def grid_with_gentle_start(levels, intervals: int) -> list:
    """About `intervals` equal steps in log-SNR from t = 400 to 0, the first ones shrunk to h^2/span and
    doubling up to h: a multistep solver starts with lower-order steps, and these keep their error
    below h^3 so that the grid measures the solver's own order. Fractional timesteps."""
    lam_start, lam_end = levels.alpha_sigma_lambda(400)[2], float(levels.lambdas[0])
    span = lam_end - lam_start
    h = span / intervals
    steps, step = [], h * h / span
    while step < h:
        steps.append(step)
        step *= 2
    rest = span - sum(steps)
    steps += [rest / round(rest / h)] * round(rest / h)
    ts = [float(levels.t_for_lambda(lam)) for lam in lam_start + np.concatenate([[0.0], np.cumsum(steps)])]
    ts[0], ts[-1] = 400.0, 0.0
    return ts


def test_every_stochastic_solver_at_eta_0_converges_to_the_exact_ode_at_its_order(problem):
    """The deterministic limit (eta 0) of each solver against the probability-flow ODE solved with 8192
    steps. Measured orders: 2M SDE 2.0, 3M SDE 3.0-3.1, SA-Solver (predictor 3, corrector 4) 3.7-4.2,
    ER-SDE 2.1, SEEDS-2 1.9-2.0 (k-diffusion's 3M weighting of the curvature term measured 2.0)."""
    levels, den, x = problem.levels, problem.denoiser, problem.x_start[:1]
    reference = sample_dpmpp_2m(den, x, levels, levels.timesteps(400, 8192, "karras", integer=False), clip=False)
    for sampler, order in STOCHASTIC_SOLVERS.items():
        errors = [float((sample_fast(sampler, den, x, levels, grid_with_gentle_start(levels, n), 0.0, None, clip=False) - reference)
                        .pow(2).mean().sqrt()) for n in (20, 40, 80)]
        orders = [math.log2(errors[i] / errors[i + 1]) for i in range(2)]
        assert errors[0] > errors[1] > errors[2] and min(orders) > order - 0.35, (sampler, errors, orders)


def test_every_stochastic_solver_at_eta_1_samples_the_exact_posterior(problem):
    """At eta 1 and many calls (61) each solver's end points from one x_400 are samples of p(x0 | x_400):
    their Frechet distance to its closed-form moments is what exact posterior samples score (0.60 here).
    The higher-order multistep solvers need that many at eta 1: their differences of predictions made
    at noisy points are noisy (31 calls: 3M SDE 1.09, SA-Solver 1.82; 61: 0.59, 0.63; 121: 0.55, 0.55)."""
    levels, prior, den = problem.levels, problem.prior, problem.denoiser
    alpha, sigma, _ = levels.alpha_sigma_lambda(400)
    samples = 400
    face = problem.x_start[:1].float()
    x = face.expand(samples, -1, -1, -1).contiguous()
    exact = prior.posterior_moments_in_basis(face.reshape(-1).double(), alpha, sigma)
    far = []
    for sampler in STOCHASTIC_SOLVERS:
        ts = levels.timesteps(400, grid_points(sampler, 61), "uniform t")
        out = sample_fast(sampler, den, x, levels, ts, 1.0, randn_like_from(torch.Generator().manual_seed(4)), clip=False, calls=61)
        far.append(frechet_distance(*sample_moments(out.reshape(samples, -1).double() @ prior.basis), *exact))
    assert max(far) < 1.2, dict(zip(STOCHASTIC_SOLVERS, far))


def point_mass_denoiser(levels, face: torch.Tensor):
    """The exact network of a prior that is one face: epsilon = (x - alpha face) / sigma (and 3 unused
    variance channels). Its data prediction is the face wherever x is."""
    def denoise(x, t):
        alpha, sigma, _ = levels.alpha_sigma_lambda(t)
        eps = (x - alpha * face) / sigma
        return torch.cat([eps, torch.zeros_like(eps)], 1)
    return denoise


@pytest.mark.parametrize("eta", [0.5, 1.0])
def test_where_the_prediction_never_changes_every_solver_takes_the_exact_sde_step(problem, eta):
    """With a prediction that does not move, every higher-order term vanishes and each solver's step
    from t to s must be the reverse SDE's exact transition at nu = eta^2, the first-order step whose
    coefficients are DDIM(eta)'s (test above):
        mean_s = (sigma_s / sigma_t) e^{-nu h} mean_t + alpha_s (1 - e^{-(1+nu) h}) face
        var_s  = (sigma_s / sigma_t)^2 e^{-2 nu h} var_t + sigma_s^2 (1 - e^{-2 nu h})
    The mean comes from a run with zero draws; the variance from one run per draw (that draw 1, the
    others 0), the response at each grid point squared and summed (SEEDS-2 draws twice per interval)."""
    levels = problem.levels
    face = problem.x_start[:1].double().clamp(-1, 1)
    x = problem.x_start[1:2].double()
    ts = [400, 330, 250, 160, 90, 40, 0]
    nu = sde_noise_fraction(eta)
    means, variances = [x], [torch.zeros_like(x)]
    for t, s in zip(ts, ts[1:]):
        _, sigma_t, lam_t = levels.alpha_sigma_lambda(t)
        alpha_s, sigma_s, lam_s = levels.alpha_sigma_lambda(s)
        h = lam_s - lam_t
        decay = sigma_s / sigma_t * math.exp(-nu * h)
        means.append(decay * means[-1] + alpha_s * -math.expm1(-(1 + nu) * h) * face)
        variances.append(decay ** 2 * variances[-1] + sigma_s ** 2 * -math.expm1(-2 * nu * h))

    def path(sampler, draws):
        seen = {}
        sample_fast(sampler, point_mass_denoiser(levels, face), x, levels, ts, eta, draws, clip=False,
                    callback=lambda info: seen.setdefault(info["t"], info["x"]))
        return [seen[t] for t in ts]

    for sampler in STOCHASTIC_SOLVERS:
        mean = path(sampler, torch.zeros_like)
        for got, expected in zip(mean, means):
            torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)  # the prediction passes float32 (data_prediction)
        count = 0

        def one_draw(index):
            def draw(like):
                nonlocal count
                count += 1
                return torch.full_like(like, 1.0 if count - 1 == index else 0.0)
            return draw

        variance = [torch.zeros_like(x) for _ in ts]
        index = 0
        while True:
            count = 0
            response = path(sampler, one_draw(index))
            if index >= count:
                break
            for i, (got, centre) in enumerate(zip(response, mean)):
                variance[i] += (got - centre) ** 2
            index += 1
        assert index == (len(ts) - 1) * (2 if sampler == "seeds-2" else 1), (sampler, index)
        for got, expected in zip(variance, variances):
            torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_spacing_auto_runs_the_tuned_grids_and_every_stored_grid_fits_its_budget():
    """Every stored grid (diffusion/tuned_grids.py) runs from the start to 0, strictly down, with the
    points its budget of calls needs; spacing auto takes it at eta > 0 for that (sampler, calls), scaled
    to another start, and falls back to the fixed spacings elsewhere."""
    from diffusion_face_restore.diffusion.fast_solvers import FAST_SAMPLERS, solver_timesteps
    from diffusion_face_restore.diffusion.tuned_grids import TUNED_GRIDS

    levels = NoiseLevels()
    assert TUNED_GRIDS, "no tuned grids stored"
    for sampler, grids in TUNED_GRIDS.items():
        assert sampler in FAST_SAMPLERS
        for calls, fractions in grids.items():
            assert fractions[0] == 1.0 and fractions[-1] == 0.0 and list(fractions) == sorted(set(fractions), reverse=True)
            assert len(fractions) == grid_points(sampler, calls), (sampler, calls)
            ts = solver_timesteps(sampler, levels, 400, calls, "auto", 0.5)
            assert ts == [int(round(400 * f)) for f in fractions], (sampler, calls, ts)
            assert solver_timesteps(sampler, levels, 400, calls, "uniform t", 0.5) == levels.timesteps(400, len(ts), "uniform t")
            scaled = solver_timesteps(sampler, levels, 200, calls, "auto", 1.0)
            assert scaled[0] == 200 and scaled[-1] == 0 and len(scaled) == len(ts)
    assert solver_timesteps("dpm++ 2m", levels, 400, 8, "auto", 0.5) == levels.timesteps(400, 8, "karras")
    assert solver_timesteps("dpm++ 2m sde", levels, 400, 37, "auto", 0.5) == levels.timesteps(400, 37, "uniform t")
    assert solver_timesteps("sa-solver", levels, 400, 37, "auto", 0.5) == levels.timesteps(400, 37, "karras")
    with pytest.raises(ValueError, match="unknown spacing"):
        solver_timesteps("sa-solver", levels, 400, 8, "cosine", 0.5)
