"""Samplers over "a model that predicts epsilon" (and variance logits), a schedule and a noise source.

Each sampler is one function that reads like its equations in reference-algorithms.md; official
quirks are kept (and named) so that the same weights, input and noise give the official output.

`denoise(x, t)` returns the raw network output [B, 6, H, W] (epsilon, variance logits) for x at
original timestep t. `noise(like)` returns a standard normal tensor shaped like `like`, drawn in
the official order (see each sampler). `callback(info)` receives {"i", "k", "x", "denoised"}.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from .schedule import NoiseLevels, Schedule

Denoiser = Callable[[torch.Tensor, int], torch.Tensor]
NoiseSource = Callable[[torch.Tensor], torch.Tensor]


def q_sample(schedule: Schedule, x0: torch.Tensor, k: int, noise: torch.Tensor) -> torch.Tensor:
    """x_k = sqrt(abar_k) x0 + sqrt(1 - abar_k) z."""
    return float(schedule.at("sqrt_alphas_cumprod", k)) * x0 + float(schedule.at("sqrt_one_minus_alphas_cumprod", k)) * noise


def predict_x0(schedule: Schedule, x: torch.Tensor, k: int, eps: torch.Tensor, clip: bool = True) -> torch.Tensor:
    """Clipped x0 = clamp(sqrt(1/abar_k) x - sqrt(1/abar_k - 1) eps, -1, 1) (clip=False: unclipped)."""
    x0 = float(schedule.at("sqrt_recip_alphas_cumprod", k)) * x - float(schedule.at("sqrt_recipm1_alphas_cumprod", k)) * eps
    return x0.clamp(-1.0, 1.0) if clip else x0


def sample_ddim(
    denoise: Denoiser,
    x: torch.Tensor,
    schedule: Schedule,
    first_step: int,
    eta: float,
    noise: NoiseSource,
    callback=None,
    clip: bool = True,
) -> torch.Tensor:
    """DDIM(eta) from respaced index `first_step` down to 0, as DifFace's official code does it
    (clip=False only for exact reference priors, whose x0 needs no clipping).

    DifFace passes the raw network epsilon (not one re-derived from the clipped x0) into the
    direction term, and draws z after every network call, k = 0 included (reference A.5):
        x0     = clip(sqrt(1/abar_k) x - sqrt(1/abar_k - 1) eps)
        sigma  = eta sqrt((1 - abar_{k-1}) / (1 - abar_k)) sqrt(1 - abar_k / abar_{k-1})
        x      = sqrt(abar_{k-1}) x0 + sqrt(1 - abar_{k-1} - sigma^2) eps + [k != 0] sigma z
    At k = 0 abar_{-1} = 1, so the result is the clipped x0 of the last call.
    """
    for i, k in enumerate(range(first_step, -1, -1)):
        eps = denoise(x, int(schedule.timestep_map[k]))[:, :3].float()
        x, x0 = ddim_step(schedule, x, k, eps, eta, noise(x), clip)
        if callback is not None:
            callback({"i": i, "k": k, "x": x, "denoised": x0})
    return x


def ddim_step(schedule: Schedule, x: torch.Tensor, k: int, eps: torch.Tensor, eta: float, z: torch.Tensor, clip: bool = True):
    """One official DDIM step from respaced index k: (x at k - 1, clipped x0).

    Coefficients are float32 scalars with float32 arithmetic on the host, square roots correctly
    rounded: the golden run's per-step updates are reproduced bit for bit (tests/test_difface.py).
    """
    x0 = predict_x0(schedule, x, k, eps, clip)
    alpha_bar = schedule.at("alphas_cumprod", k)  # float32 scalars, float32 arithmetic
    alpha_bar_prev = schedule.at("alphas_cumprod_prev", k)
    one = np.float32(1)
    sigma = np.float32(eta) * np.sqrt((one - alpha_bar_prev) / (one - alpha_bar)) * np.sqrt(one - alpha_bar / alpha_bar_prev)
    direction = np.sqrt(one - alpha_bar_prev - sigma ** 2)
    nonzero = float(k != 0)
    return x0 * float(np.sqrt(alpha_bar_prev)) + float(direction) * eps + nonzero * float(sigma) * z, x0


def p_mean_log_variance(schedule: Schedule, x: torch.Tensor, k: int, output: torch.Tensor):
    """The learned-range posterior of ADM (reference B.4): clipped x0, mean, log variance.

        mean    = c1_k x0 + c2_k x
        log var = f log(beta_k) + (1 - f) log(beta~_k),  f = (v + 1) / 2
    """
    eps, v = output[:, :3].float(), output[:, 3:].float()
    x0 = predict_x0(schedule, x, k, eps)
    mean = float(schedule.at("posterior_mean_coef1", k)) * x0 + float(schedule.at("posterior_mean_coef2", k)) * x
    frac = (v + 1) / 2
    log_variance = frac * float(schedule.at("log_betas", k)) + (1 - frac) * float(schedule.at("posterior_log_variance_clipped", k))
    return x0, mean, log_variance


def sample_dr2(
    denoise: Denoiser,
    y: torch.Tensor,
    schedule: Schedule,
    start_step: int,
    output_step: int,
    lowpass,
    noise: NoiseSource,
    x: torch.Tensor | None = None,
    callback=None,
) -> torch.Tensor:
    """DR2's guided ancestral loop (`dr2_sample_loop`, reference B.4); returns x0 predicted at tau.

        x_omega = q(y, omega)                               (unless a start x is given)
        for k = omega .. tau:
            x'  = mean_k + [k != 0] sigma_k z               (z always drawn)
            if k == tau: return x0_k                         (x' is thrown away)
            y'  = q(y, k - 1)                                (a fresh draw)
            x   = x' - Phi_N(x') + Phi_N(y')   (N > 1)  or  y'   (N = 1: the sample is discarded)
    Draw order: x_omega's noise, then per step the p-sample draw and (unless k = tau) the q draw.
    """
    if x is None:
        x = q_sample(schedule, y, start_step, noise(y))
    for i, k in enumerate(range(start_step, output_step - 1, -1)):
        x0, mean, log_variance = p_mean_log_variance(schedule, x, k, denoise(x, int(schedule.timestep_map[k])))
        z = noise(x)
        sample = mean + float(k != 0) * torch.exp(0.5 * log_variance) * z
        if callback is not None:
            callback({"i": i, "k": k, "x": sample, "denoised": x0})
        if k == output_step:
            return x0
        y_previous = q_sample(schedule, y, k - 1, noise(y))
        x = sample - lowpass(sample) + lowpass(y_previous) if lowpass is not None else y_previous
    raise ValueError(f"DR2 needs start step {start_step} >= output step {output_step}")


# --- few-step solvers ---------------------------------------------------------------------------
# They start from x at timestep ts[0] exactly (DifFace's diffused estimate at K) and make one
# network call per timestep; the last call's clean prediction is the output (the final step to
# sigma = 0 of an exponential integrator is exactly x = D). The network predicts epsilon; D is the
# data prediction x0 = (x - sigma eps) / alpha, clipped to [-1, 1] as DifFace's sampler clips it.

def data_prediction(denoise: Denoiser, x: torch.Tensor, t, levels: NoiseLevels, clip: bool = True) -> torch.Tensor:
    alpha, sigma, _ = levels.alpha_sigma_lambda(t)
    x0 = (x - sigma * denoise(x, t)[:, :3].float()) / alpha
    return x0.clamp(-1.0, 1.0) if clip else x0


def reported_prediction(denoise: Denoiser, x: torch.Tensor, i: int, t, levels: NoiseLevels, clip: bool, callback) -> torch.Tensor:
    """A solver's network call: the data prediction at (x, t), handed to the callback as call i."""
    denoised = data_prediction(denoise, x, t, levels, clip)
    if callback is not None:
        callback({"i": i, "t": t, "x": x, "denoised": denoised})
    return denoised


def sample_dpmpp_2m(denoise: Denoiser, x: torch.Tensor, levels: NoiseLevels, ts: list, clip: bool = True, callback=None) -> torch.Tensor:
    """DPM-Solver++(2M), Lu et al. (2022), Algorithm 2: the multistep second-order solver of the
    probability-flow ODE in data prediction, stepping in log-SNR lambda:
        h_i   = lambda_{i+1} - lambda_i,   r_i = h_{i-1} / h_i
        D'_i  = D_i (first step)   or   (1 + 1/(2 r_i)) D_i - 1/(2 r_i) D_{i-1}
        x_{i+1} = (sigma_{i+1} / sigma_i) x_i - alpha_{i+1} (e^{-h_i} - 1) D'_i
    One network call per timestep; deterministic.
    """
    previous, h_previous = None, None
    for i, t in enumerate(ts):
        denoised = reported_prediction(denoise, x, i, t, levels, clip, callback)
        if i == len(ts) - 1:
            return denoised
        _, sigma, lam = levels.alpha_sigma_lambda(t)
        alpha_next, sigma_next, lam_next = levels.alpha_sigma_lambda(ts[i + 1])
        h = lam_next - lam
        if previous is None:
            corrected = denoised
        else:
            r = h_previous / h
            corrected = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * previous
        x = (sigma_next / sigma) * x - alpha_next * math.expm1(-h) * corrected
        previous, h_previous = denoised, h
    raise ValueError("a solver needs at least one timestep")


def sample_dpmpp_2m_sde(
    denoise: Denoiser, x: torch.Tensor, levels: NoiseLevels, ts: list, noise: NoiseSource, noise_fraction: float = 1.0,
    clip: bool = True, callback=None,
) -> torch.Tensor:
    """DPM-Solver++(2M) SDE, Lu et al. (2022), Sec. 4 (the midpoint form k-diffusion ships, whose `eta`
    is `noise_fraction` here): the second-order multistep solver of the reverse SDE in data prediction
    that injects the fraction nu of the reverse SDE's noise (0: the ODE; 1: the reverse SDE, whose end
    points from a fixed x_t are samples of p(x0 | x_t); DDIM(eta) converges to nu = eta^2, see
    sde_noise_fraction):
        x_{i+1} = (sigma_{i+1} / sigma_i) e^{-nu h} x_i + alpha_{i+1} (1 - e^{-(1+nu) h}) D_i
                  + 1/(2 r) alpha_{i+1} (1 - e^{-(1+nu) h}) (D_i - D_{i-1})
                  + sigma_{i+1} sqrt(1 - e^{-2 nu h}) z
    With nu = 1 and no correction this is DDPM's posterior step q(x_{i+1} | x_i, D_i) on any grid.
    One network call and (but for the last) one normal draw per timestep.
    """
    nu = noise_fraction
    previous, h_previous = None, None
    for i, t in enumerate(ts):
        denoised = reported_prediction(denoise, x, i, t, levels, clip, callback)
        if i == len(ts) - 1:
            return denoised
        _, sigma, lam = levels.alpha_sigma_lambda(t)
        alpha_next, sigma_next, lam_next = levels.alpha_sigma_lambda(ts[i + 1])
        h = lam_next - lam
        weight = -math.expm1(-(1 + nu) * h)  # 1 - e^{-(1 + nu) h}
        x = (sigma_next / sigma) * math.exp(-nu * h) * x + alpha_next * weight * denoised
        if previous is not None:
            x = x + (alpha_next * weight / (2 * (h_previous / h))) * (denoised - previous)
        if nu:
            x = x + sigma_next * math.sqrt(-math.expm1(-2 * nu * h)) * noise(x)
        previous, h_previous = denoised, h
    raise ValueError("a solver needs at least one timestep")


def sde_noise_fraction(eta: float) -> float:
    """The noise fraction nu of the reverse SDE that DDIM(eta) samples in its many-step limit: eta^2.

    One DDIM(eta) step from x_i adds eta^2 times DDPM's posterior variance,
        s^2 = eta^2 sigma_{i+1}^2 (1 - e^{-2h}),
    and keeps sqrt(sigma_{i+1}^2 - s^2) of the network's epsilon. Written as x_{i+1} = a x_i + b D_i + s z,
    a = sqrt(sigma_{i+1}^2 - s^2) / sigma_i and b = alpha_{i+1} - alpha_i a; with s^2 = sigma_{i+1}^2
    (1 - e^{-2 nu h}) these are the SDE solver's first-order coefficients exactly (a = (sigma_{i+1} /
    sigma_i) e^{-nu h}, b = alpha_{i+1} (1 - e^{-(1+nu) h})). As h -> 0 DDIM adds 2 eta^2 sigma^2 h and
    the SDE 2 nu sigma^2 h, so the limit of DDIM(eta) is the SDE with nu = eta^2: eta 1 is DDPM (the
    posterior), eta 0 the ODE, DifFace's eta 0.5 a quarter of the reverse SDE's noise.
    """
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta {eta} is outside 0..1 (0: deterministic, 0.5: DifFace's DDIM, 1: DDPM)")
    return float(eta) ** 2
