"""Few-step solvers of DifFace's reverse process, the lineage ComfyUI's sampler list offers (k-diffusion's
DPM-Solver++ family, SA-Solver, ER-SDE, SEEDS), and the registry DR2GuidedSampler picks them from.

Every stochastic solver here solves the same reverse SDE, the one DDIM(eta) samples in its many-step
limit: noise fraction nu = eta^2 of the reverse SDE's noise (samplers.sde_noise_fraction). In data
prediction D over the log-SNR lambda, from x at timestep t to timestep s (lambda_s = lambda_t + h) its
solution is (Lu et al. 2022, DPM-Solver++ Sec. 4; Xue et al. 2023, SA-Solver eq. 13 with tau^2 = nu)

    x_s = (sigma_s / sigma_t) e^{-nu h} x_t + alpha_s (1+nu) int_0^h e^{-(1+nu)(h-u)} D(lambda_t + u) du
          + sigma_s sqrt(1 - e^{-2 nu h}) z.

The solvers differ in how they approximate D inside the integral: polynomials through earlier network
calls (multistep: DPM-Solver++(3M) SDE, SA-Solver's predictor and corrector), a Taylor expansion in
sigma/alpha with finite differences (ER-SDE), or an extra network call inside the step (SEEDS-2). With a
D that does not change along the path all of them take the exact first-order step, which is DDIM(eta)'s
step with the same added variance. Each returns the last call's clean prediction (the output at t = 0).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .samplers import Denoiser, NoiseSource, reported_prediction, sample_dpmpp_2m, sample_dpmpp_2m_sde, sde_noise_fraction
from .schedule import SPACINGS, NoiseLevels
from .tuned_grids import TUNED_GRIDS

_GAUSS_NODES, _GAUSS_WEIGHTS = np.polynomial.legendre.leggauss(24)


@dataclass(frozen=True)
class SdeStep:
    """The reverse SDE's step from timestep t to s < t at noise fraction nu: x_s = decay x_t +
    alpha (data term) + spread z."""
    alpha: float  # alpha_s
    decay: float  # (sigma_s / sigma_t) e^{-nu h}
    spread: float  # sigma_s sqrt(1 - e^{-2 nu h})
    h: float  # lambda_s - lambda_t
    kappa: float  # 1 + nu, the rate of the data term

    @classmethod
    def between(cls, levels: NoiseLevels, t, s, nu: float) -> "SdeStep":
        _, sigma_t, lam_t = levels.alpha_sigma_lambda(t)
        alpha_s, sigma_s, lam_s = levels.alpha_sigma_lambda(s)
        h = lam_s - lam_t
        return cls(alpha_s, sigma_s / sigma_t * math.exp(-nu * h), sigma_s * math.sqrt(-math.expm1(-2 * nu * h)), h, 1.0 + nu)

    def weights(self, offsets) -> np.ndarray:
        """b_j such that sum_j b_j D_j = (1+nu) int_0^h e^{-(1+nu)(h-u)} P(u) du for the polynomial P
        through the points (u_j, D_j), u_j = lambda_j - lambda_t (the integral's weight on each call).
        Solved from exactness on 1, u, u^2, ...: sum_j b_j (u_j/h)^k = kappa h int_0^1 e^{-kappa h (1-w)} w^k dw."""
        scaled = np.asarray(offsets, dtype=np.float64) / self.h
        w = (_GAUSS_NODES + 1) / 2
        x = self.kappa * self.h
        moments = [float(np.sum(_GAUSS_WEIGHTS / 2 * x * np.exp(-x * (1 - w)) * w ** k)) for k in range(len(scaled))]
        return np.linalg.solve(np.vander(scaled, increasing=True).T, np.asarray(moments))

    def take(self, x: torch.Tensor, offsets, predictions, z: torch.Tensor | None) -> torch.Tensor:
        """x_s with D the polynomial through (offsets, predictions) and the draw z (None: nu = 0)."""
        out = self.decay * x
        for weight, prediction in zip(self.weights(offsets), predictions):
            out = out + (self.alpha * float(weight)) * prediction
        return out if z is None else out + self.spread * z


def sample_sa_solver(
    denoise: Denoiser, x: torch.Tensor, levels: NoiseLevels, ts: list, noise: NoiseSource, noise_fraction: float = 1.0,
    predictor_order: int = 3, corrector_order: int = 4, clip: bool = True, callback=None,
) -> torch.Tensor:
    """SA-Solver, Xue et al. (2023), Alg. 1 (stochastic Adams, predictor-corrector, tau^2 = nu): from x_i,
        predictor   x~_{i+1} = decay x_i + alpha_{i+1} sum_j b_j D_{i-j}            (j < predictor_order)
        evaluate    D_{i+1} = D(x~_{i+1}, t_{i+1})
        corrector   x_{i+1}  = decay x_i + alpha_{i+1} sum_j c_j D_{i+1-j} + spread z_i  (j < corrector_order)
    where b (c) integrate the Lagrange polynomial through the last calls (including the new one) exactly
    against the SDE's weight, and the corrector reuses the predictor's draw z_i. One network call per
    timestep: D_{i+1}, evaluated at the predicted point, is the next step's. ComfyUI's defaults: orders 3
    and 4. corrector_order 0 is the predictor alone: the exponential Adams-Bashforth method, of which
    DPM-Solver++(3M) SDE is order 3.
    """
    nu = noise_fraction
    history = []  # (lambda, D), newest first
    previous = None  # the step just taken: (SdeStep, x before it, lambda before it, its draw)
    for i, t in enumerate(ts):
        denoised = reported_prediction(denoise, x, i, t, levels, clip, callback)
        lam = levels.alpha_sigma_lambda(t)[2]
        history = [(lam, denoised)] + history[:max(predictor_order, corrector_order) - 1]
        if i == len(ts) - 1:
            return denoised
        if previous is not None and corrector_order > 0:
            step, x_before, lam_before, z = previous
            used = history[:corrector_order]
            x = step.take(x_before, [h_lam - lam_before for h_lam, _ in used], [d for _, d in used], z)
        step = SdeStep.between(levels, t, ts[i + 1], nu)
        z = noise(x) if nu else None
        used = history[:predictor_order]
        previous = (step, x, lam, z)
        x = step.take(x, [h_lam - lam for h_lam, _ in used], [d for _, d in used], z)
    raise ValueError("a solver needs at least one timestep")


def sample_dpmpp_3m_sde(
    denoise: Denoiser, x: torch.Tensor, levels: NoiseLevels, ts: list, noise: NoiseSource, noise_fraction: float = 1.0,
    clip: bool = True, callback=None,
) -> torch.Tensor:
    """DPM-Solver++(3M) SDE (k-diffusion's dpmpp_3m_sde; DPM-Solver++'s third-order multistep update in
    the SDE's exponential form):
        x_{i+1} = decay x_i + alpha_{i+1} [(1 - e^{-kappa h}) D_i + h phi_2 D'_i + h^2 (1 - 2 phi_2 / (kappa h)) D''_i / 2]
    with phi_2 = 1 - (1 - e^{-kappa h}) / (kappa h) and D'_i, D''_i the slope and curvature of the quadratic
    through the last three calls: the quadratic integrated exactly, which is SA-Solver's predictor of
    order 3 with no corrector. k-diffusion (and ComfyUI) weight the curvature term by half of that,
    (1/2 - phi_2 / (kappa h)): its deterministic limit then converges at second order, not third (measured
    on the exact prior, tests/test_fast_samplers.py).
    """
    return sample_sa_solver(denoise, x, levels, ts, noise, noise_fraction, 3, 0, clip, callback)


def sample_er_sde(
    denoise: Denoiser, x: torch.Tensor, levels: NoiseLevels, ts: list, noise: NoiseSource, noise_fraction: float = 1.0,
    stages: int = 3, clip: bool = True, callback=None,
) -> torch.Tensor:
    """ER-SDE-Solver-3, Cui et al. (2023), Alg. 1-3, on the extended reverse SDE whose noise scale
    function phi(s) = s^{1+nu} (s = sigma/alpha = e^{-lambda}) makes it the reverse SDE with noise fraction nu:
        r = phi(s_{i+1}) / phi(s_i) = e^{-(1+nu) h},   ds = s_{i+1} - s_i
        x_{i+1} = (alpha_{i+1}/alpha_i) r x_i + alpha_{i+1} (1 - r) D_i
                  + alpha_{i+1} (ds + phi(s_{i+1}) int_{s_{i+1}}^{s_i} 1/phi) D'_i                 (stage 2)
                  + alpha_{i+1} (ds^2/2 + phi(s_{i+1}) int_{s_{i+1}}^{s_i} (s - s_i)/phi) D''_i     (stage 3)
                  + alpha_{i+1} sqrt(s_{i+1}^2 - s_i^2 r^2) z
    with the paper's backward differences in s: D'_i = (D_i - D_{i-1}) / (s_i - s_{i-1}) and D''_i =
    (D'_i - D'_{i-1}) / ((s_i - s_{i-2}) / 2). The integrals are in closed form for this phi (ComfyUI sums
    200 points). The backward differences make its deterministic limit second order.
    """
    nu = noise_fraction
    previous = None  # (s, D) of the last call
    previous_slope = None  # (s_{i-1} - s_{i-2}, D'_{i-1})
    for i, t in enumerate(ts):
        denoised = reported_prediction(denoise, x, i, t, levels, clip, callback)
        if i == len(ts) - 1:
            return denoised
        lam = levels.alpha_sigma_lambda(t)[2]
        step = SdeStep.between(levels, t, ts[i + 1], nu)
        s, s_next, h = math.exp(-lam), math.exp(-lam - step.h), step.h
        x = step.decay * x - step.alpha * math.expm1(-step.kappa * h) * denoised
        slope = None
        if stages >= 2 and previous is not None:
            ds = s_next - s
            e0 = h if nu == 0 else -math.expm1(-nu * h) / nu  # int_0^h e^{-nu u} du
            slope = (denoised - previous[1]) / (s - previous[0])
            x = x + step.alpha * (ds + s_next * e0) * slope
            if stages >= 3 and previous_slope is not None:
                e1 = h if nu == 1 else math.expm1((1 - nu) * h) / (1 - nu)  # int_0^h e^{(1-nu) u} du
                curvature = (slope - previous_slope[1]) / ((s - previous[0] + previous_slope[0]) / 2)
                x = x + step.alpha * (ds * ds / 2 + s_next * s_next * (e1 - math.exp(h) * e0)) * curvature
            previous_slope = (s - previous[0], slope)
        if nu:
            x = x + step.spread * noise(x)
        previous = (s, denoised)
    raise ValueError("a solver needs at least one timestep")


def sample_seeds_2(
    denoise: Denoiser, x: torch.Tensor, levels: NoiseLevels, ts: list, noise: NoiseSource, noise_fraction: float = 1.0,
    r: float = 0.5, single_stage_last: bool = False, clip: bool = True, callback=None,
) -> torch.Tensor:
    """SEEDS-2, Gonzalez et al. (2023), Alg. 3 in data prediction (ComfyUI's seeds_2, its phi_1 form):
    a two-stage exponential step whose stages share one Brownian path. From x_i at lambda_i, the stage
    at lambda_i + r h (an integer timestep when the grid is one, r then what it is there):
        u   = (sigma_u / sigma_i) e^{-nu r h} x_i + alpha_u (1 - e^{-kappa r h}) D_i + sigma_u sqrt(1 - e^{-2 nu r h}) z_1
        x_{i+1} = decay x_i + alpha_{i+1} (1 - e^{-kappa h}) ((1 - 1/(2r)) D_i + 1/(2r) D(u))
                  + sigma_{i+1} (e^{-nu (1-r) h} sqrt(1 - e^{-2 nu r h}) z_1 + sqrt(1 - e^{-2 nu (1-r) h}) z_2)
    (the step's noise is z_1's increment carried on plus the rest of the path: sigma_{i+1} sqrt(1 - e^{-2 nu h})
    in all). Two network calls per interval and one at the end; single_stage_last takes the last interval
    as the first-order step (one call), for an even budget of calls, as is an interval between adjacent
    integer timesteps.
    """
    nu = noise_fraction
    calls = 0

    def predict(x, t):
        nonlocal calls
        calls += 1
        return reported_prediction(denoise, x, calls - 1, t, levels, clip, callback)

    for i, t in enumerate(ts):
        denoised = predict(x, t)
        if i == len(ts) - 1:
            return denoised
        step = SdeStep.between(levels, t, ts[i + 1], nu)
        z_1 = noise(x) if nu else None
        if single_stage_last and i == len(ts) - 2:
            x = step.take(x, [0.0], [denoised], z_1)
            continue
        lam = levels.alpha_sigma_lambda(t)[2]
        t_stage = levels.t_for_lambda(lam + r * step.h)
        t_stage = int(round(float(t_stage))) if isinstance(t, (int, np.integer)) else float(t_stage)
        if not ts[i + 1] < t_stage < t:  # adjacent integer timesteps: no stage between them
            x = step.take(x, [0.0], [denoised], z_1)
            continue
        stage = SdeStep.between(levels, t, t_stage, nu)
        r_used = stage.h / step.h
        u = stage.take(x, [0.0], [denoised], z_1)
        correction = 1 / (2 * r_used)
        blended = (1 - correction) * denoised + correction * predict(u, t_stage)
        x = step.take(x, [0.0], [blended], None)
        if nu:
            rest = (1 - r_used) * step.h
            _, sigma_next, _ = levels.alpha_sigma_lambda(ts[i + 1])
            carried = math.exp(-nu * rest) * math.sqrt(-math.expm1(-2 * nu * r_used * step.h))
            x = x + sigma_next * (carried * z_1 + math.sqrt(-math.expm1(-2 * nu * rest)) * noise(x))
    raise ValueError("a solver needs at least one timestep")


@dataclass(frozen=True)
class FastSolver:
    run: Callable  # (denoise, x, levels, ts, noise, noise_fraction, clip=, callback=) -> x0
    calls_per_interval: int = 1
    stochastic: bool = True
    # the fixed spacing that measured best with noise (eta > 0): evenly in t, except for the multistep
    # solvers of order 3 and 4, which extrapolate their polynomial over the last interval; evenly in t that
    # interval spans most of the log-SNR range and they diverge (the protocol at 32 px, 5 calls: 276 and 334)
    spacing_with_noise: str = "uniform t"


def _ode(denoise, x, levels, ts, noise, noise_fraction, clip=True, callback=None):
    return sample_dpmpp_2m(denoise, x, levels, ts, clip, callback)


SOLVERS = {
    "dpm++ 2m": FastSolver(_ode, stochastic=False),
    "dpm++ 2m sde": FastSolver(sample_dpmpp_2m_sde),
    "dpm++ 3m sde": FastSolver(sample_dpmpp_3m_sde, spacing_with_noise="karras"),
    "sa-solver": FastSolver(sample_sa_solver, spacing_with_noise="karras"),
    "er-sde": FastSolver(sample_er_sde),
    "seeds-2": FastSolver(sample_seeds_2, calls_per_interval=2),
}
FAST_SAMPLERS = tuple(SOLVERS)


def _solver(sampler: str) -> FastSolver:
    if sampler not in SOLVERS:
        raise ValueError(f"unknown sampler '{sampler}' (choose one of {', '.join(FAST_SAMPLERS)})")
    return SOLVERS[sampler]


def best_spacing(sampler: str, eta: float) -> str:
    """The fixed spacing that measured best on the exact reference at 64 px (benchmarks/sampler_accuracy.py)
    and under the protocol: Karras' for the deterministic solver (dpm++ 2m, or a stochastic one at eta 0),
    the solver's spacing_with_noise for a stochastic one at eta > 0 (evenly in t: more calls at high noise
    than Karras'; at 32 px Karras' won for the 2M SDE on one face, so the choice follows the larger size)."""
    solver = _solver(sampler)
    return solver.spacing_with_noise if solver.stochastic and eta > 0 else "karras"


def grid_points(sampler: str, calls: int) -> int:
    """How many timesteps a grid for `calls` network calls has (SEEDS-2: two calls per interval)."""
    if calls < 1:
        raise ValueError(f"a solver needs at least 1 network call, got {calls}")
    per = _solver(sampler).calls_per_interval
    return 1 + -(-(calls - 1) // per)


def solver_timesteps(sampler: str, levels: NoiseLevels, t_start: int, calls: int, spacing: str, eta: float) -> list[int]:
    """The integer grid `sampler` runs on for a budget of `calls` network calls from t_start. spacing
    "auto": the tuned grid for (sampler, calls) where one is stored (tuned_grids.py; stochastic solvers at
    eta > 0), else best_spacing's; or one of SPACINGS."""
    points = grid_points(sampler, calls)
    if spacing == "auto":
        tuned = TUNED_GRIDS.get(sampler, {}).get(calls) if _solver(sampler).stochastic and eta > 0 else None
        if tuned is not None:
            merged = []
            for t in (int(round(t_start * fraction)) for fraction in tuned):
                if not merged or t < merged[-1]:
                    merged.append(t)
            return merged
        spacing = best_spacing(sampler, eta)
    if spacing not in SPACINGS:
        raise ValueError(f"unknown spacing '{spacing}' (choose auto or one of {', '.join(SPACINGS)})")
    return levels.timesteps(t_start, points, spacing)


def network_calls(sampler: str, ts: list, calls: int) -> int:
    """The network calls sample_fast spends on the grid ts built for `calls` (fewer where integer
    timesteps merged)."""
    per = _solver(sampler).calls_per_interval
    return 1 + per * (len(ts) - 1) - (1 if per > 1 and len(ts) > 1 and (calls - 1) % per else 0)


def sample_fast(
    sampler: str, denoise: Denoiser, x: torch.Tensor, levels: NoiseLevels, ts: list, eta: float, noise: NoiseSource,
    clip: bool = True, callback=None, calls: int | None = None,
) -> torch.Tensor:
    """One of FAST_SAMPLERS from x at ts[0] to the clean image.

    eta is DDIM's (DifFace's 0.5 by default): the stochastic solvers sample what DDIM(eta) samples in its
    many-step limit (noise fraction eta^2); dpm++ 2m is the deterministic solver (DDIM(0)'s limit, eta
    unused). calls: the budget the grid was built for (grid_points); SEEDS-2 spends an even budget with a
    first-order last interval.
    """
    solver = _solver(sampler)
    extra = {}
    if solver.calls_per_interval > 1:
        extra["single_stage_last"] = calls is not None and (calls - 1) % solver.calls_per_interval != 0
    return solver.run(denoise, x, levels, ts, noise, sde_noise_fraction(eta), clip=clip, callback=callback, **extra)
