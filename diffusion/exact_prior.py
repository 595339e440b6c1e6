"""A face prior whose denoiser is known in closed form: the exact reference for samplers.

A trained UNet with random weights is not a score function, so it cannot tell a good solver from a
bad one. This prior can: a Gaussian mixture in pixel space, one component per real face (its mean),
all sharing the covariance Sigma = U diag(lambda) U^T + floor^2 I (U: the faces' principal
directions, orthonormal). Diffused to a noise level (alpha, sigma), x_t = alpha x0 + sigma z is
again a mixture with means alpha mu_j and covariance C = alpha^2 Sigma + sigma^2 I, so

    responsibilities  r_j(x_t) = softmax_j(log w_j - 1/2 (x_t - alpha mu_j)^T C^-1 (x_t - alpha mu_j))
    E[x0 | x_t]       = mu_r + alpha Sigma C^-1 (x_t - alpha mu_r),    mu_r = sum_j r_j mu_j
    p(x0 | x_t)       = sum_j r_j N(mu_j + alpha Sigma C^-1 (x_t - alpha mu_j), Sigma - alpha^2 Sigma C^-1 Sigma)

and epsilon = (x_t - alpha E[x0 | x_t]) / sigma. Every matrix is diagonal in the basis [U, U-perp],
so a call costs a few matrix products of the batch with the means and with U.

Computations run in the dtype of their inputs (float64 for reference solutions).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class GaussianMixturePrior:
    means: torch.Tensor  # [J, D] component means (faces in [-1, 1], flattened)
    basis: torch.Tensor  # [D, r] orthonormal principal directions U
    variances: torch.Tensor  # [r] lambda: the covariance's extra variance along U
    floor: float  # the isotropic standard deviation every direction has
    weights: torch.Tensor  # [J] mixture weights, summing to 1
    shape: tuple  # (C, H, W) of one image

    @classmethod
    def fit(cls, faces: torch.Tensor, rank: int = 16, spread: float = 0.25, floor: float = 0.05) -> "GaussianMixturePrior":
        """faces [J, C, H, W] in [-1, 1]: one component per face; Sigma from the faces' principal
        components (their variances times `spread`) plus `floor`^2 in every direction."""
        flat = faces.reshape(faces.shape[0], -1).to(torch.float64)
        centred = flat - flat.mean(0)
        _, singular, vh = torch.linalg.svd(centred, full_matrices=False)
        rank = min(rank, faces.shape[0] - 1)
        variances = spread * singular[:rank] ** 2 / (faces.shape[0] - 1)
        weights = torch.full((faces.shape[0],), 1.0 / faces.shape[0], dtype=torch.float64)
        return cls(flat, vh[:rank].T.contiguous(), variances, floor, weights, tuple(faces.shape[1:]))

    def to(self, *args, **kwargs) -> "GaussianMixturePrior":
        """The prior with its tensors moved or cast as Tensor.to(*args, **kwargs) does (a dtype, a device, both)."""
        return GaussianMixturePrior(self.means.to(*args, **kwargs), self.basis.to(*args, **kwargs), self.variances.to(*args, **kwargs),
                                    self.floor, self.weights.to(*args, **kwargs), self.shape)

    # --- at a noise level: alpha, sigma -----------------------------------------------------------
    def _apply(self, v: torch.Tensor, along_basis: torch.Tensor, elsewhere: float) -> torch.Tensor:
        """M v for M = elsewhere I + U diag(along_basis - elsewhere) U^T, v [B, D]."""
        return elsewhere * v + ((v @ self.basis) * (along_basis - elsewhere)) @ self.basis.T

    def _inverse_covariance(self, alpha: float, sigma: float):
        """C^-1 as (values along U, value elsewhere)."""
        floor2 = self.floor ** 2
        return 1.0 / (alpha ** 2 * (self.variances + floor2) + sigma ** 2), 1.0 / (alpha ** 2 * floor2 + sigma ** 2)

    def responsibilities(self, x: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
        """[B, J] posterior component probabilities for x [B, D] at (alpha, sigma)."""
        along, elsewhere = self._inverse_covariance(alpha, sigma)
        inv_x = self._apply(x, along, elsewhere)
        inv_mu = self._apply(self.means, along, elsewhere)
        # (x - a mu)^T C^-1 (x - a mu) = x^T C^-1 x - 2 a mu^T C^-1 x + a^2 mu^T C^-1 mu
        distance = (x * inv_x).sum(1, keepdim=True) - 2 * alpha * inv_x @ self.means.T + alpha ** 2 * (self.means * inv_mu).sum(1)
        return torch.softmax(torch.log(self.weights) - 0.5 * distance, dim=1)

    def _gain(self, alpha: float, sigma: float):
        """Sigma C^-1 as (values along U, value elsewhere)."""
        along, elsewhere = self._inverse_covariance(alpha, sigma)
        return (self.variances + self.floor ** 2) * along, self.floor ** 2 * elsewhere

    def denoise(self, x: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
        """E[x0 | x_t = x], x [B, D]."""
        mu = self.responsibilities(x, alpha, sigma) @ self.means
        along, elsewhere = self._gain(alpha, sigma)
        return mu + alpha * self._apply(x - alpha * mu, along, elsewhere)

    def posterior_variances(self, alpha: float, sigma: float):
        """Each component's posterior covariance Sigma - a^2 Sigma C^-1 Sigma: (along U, elsewhere)."""
        total = self.variances + self.floor ** 2
        return total * sigma ** 2 / (alpha ** 2 * total + sigma ** 2), self.floor ** 2 * sigma ** 2 / (alpha ** 2 * self.floor ** 2 + sigma ** 2)

    def component_means(self, x: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
        """[B, J, D] the posterior mean of each component given x [B, D] (memory: B J D)."""
        along, elsewhere = self._gain(alpha, sigma)
        residual = x[:, None, :] - alpha * self.means[None]
        flat = self._apply(residual.reshape(-1, residual.shape[-1]), along, elsewhere).reshape(residual.shape)
        return self.means[None] + alpha * flat

    def sample_posterior(self, x: torch.Tensor, alpha: float, sigma: float, count: int, generator: torch.Generator) -> torch.Tensor:
        """[count, D] exact samples of p(x0 | x_t = x) for one x [D]."""
        r = self.responsibilities(x[None], alpha, sigma)[0]
        components = torch.multinomial(r, count, replacement=True, generator=generator)
        means = self.component_means(x[None], alpha, sigma)[0][components]
        along, elsewhere = self.posterior_variances(alpha, sigma)
        z = torch.randn(means.shape, generator=generator, dtype=means.dtype)
        z_basis = z @ self.basis
        # sqrt of the covariance: sqrt(elsewhere) everywhere, sqrt(along) along U
        return means + elsewhere ** 0.5 * (z - z_basis @ self.basis.T) + (z_basis * along.sqrt()) @ self.basis.T

    def posterior_moments_in_basis(self, x: torch.Tensor, alpha: float, sigma: float):
        """Mean [r] and covariance [r, r] of U^T x0 under p(x0 | x_t = x), x [D]: what a sampler's
        end points, projected on the faces' principal directions, should have."""
        r = self.responsibilities(x[None], alpha, sigma)[0]
        projected = self.component_means(x[None], alpha, sigma)[0] @ self.basis  # [J, r]
        mean = r @ projected
        spread = projected - mean
        along, _ = self.posterior_variances(alpha, sigma)
        return mean, torch.diag(along) + (spread * r[:, None]).T @ spread

    def nearest_component(self, x0: torch.Tensor) -> torch.Tensor:
        """[B] the component each clean image x0 [B, D] most likely came from."""
        return self.responsibilities(x0, 1.0, 0.0).argmax(1)

    # --- as a network -------------------------------------------------------------------------------
    def epsilon_model(self, levels):
        """denoise(x, t) -> [B, 3, H, W] epsilon, the interface of the trained priors (NoiseLevels gives
        alpha and sigma at any, also fractional, t)."""

        def denoise(x: torch.Tensor, t) -> torch.Tensor:
            alpha, sigma, _ = levels.alpha_sigma_lambda(t)
            flat = x.reshape(x.shape[0], -1).to(self.means.dtype)
            eps = (flat - alpha * self.denoise(flat, alpha, sigma)) / sigma
            return eps.reshape(x.shape).to(x.dtype)

        return denoise


def frechet_distance(mean_a: torch.Tensor, cov_a: torch.Tensor, mean_b: torch.Tensor, cov_b: torch.Tensor) -> float:
    """||m_a - m_b||^2 + tr(C_a + C_b - 2 (C_a^1/2 C_b C_a^1/2)^1/2) between two Gaussians."""
    values, vectors = torch.linalg.eigh(cov_a.to(torch.float64))
    root_a = vectors @ torch.diag(values.clamp(min=0).sqrt()) @ vectors.T
    middle = torch.linalg.eigvalsh(root_a @ cov_b.to(torch.float64) @ root_a).clamp(min=0).sqrt().sum()
    return float(((mean_a - mean_b) ** 2).sum() + torch.trace(cov_a) + torch.trace(cov_b) - 2 * middle)


def sample_moments(points: torch.Tensor):
    """Mean and covariance of points [N, r]."""
    mean = points.mean(0)
    centred = points - mean
    return mean, centred.T @ centred / (points.shape[0] - 1)


@dataclass
class ReferenceProblem:
    """Where a DifFace-like sampler starts on the exact prior: degraded real faces (the 'estimate',
    held out of the mixture) diffused to t_start, in float64."""

    prior: GaussianMixturePrior
    levels: object  # schedule.NoiseLevels
    estimate: torch.Tensor  # [F, 3, S, S] in [-1, 1]
    x_start: torch.Tensor  # [F, 3, S, S] at t_start
    t_start: int

    @property
    def denoiser(self):
        return self.prior.epsilon_model(self.levels)


def face_reference_problem(faces: torch.Tensor, t_start: int = 400, held_out_every: int = 7, seed: int = 0) -> ReferenceProblem:
    """faces: uint8 [N, 3, S, S] real aligned faces. Every `held_out_every`-th face is left out of the
    mixture, degraded (blur 1.5, x2 down, noise 5/255, JPEG 70: an imperfect restorer's estimate) and
    diffused to t_start with a fixed draw."""
    from ..degradations.synthetic import DegradationParams, degrade_batch
    from .schedule import NoiseLevels

    images = faces.to(torch.float64) / 127.5 - 1
    held_out = torch.arange(images.shape[0]) % held_out_every == held_out_every // 2
    prior = GaussianMixturePrior.fit(images[~held_out])
    test = ((images[held_out] + 1) / 2).float()
    degraded = degrade_batch(test, [DegradationParams(1.5, 1.5, 0.0, 2.0, 5.0, 70)] * test.shape[0], torch.Generator().manual_seed(seed))
    estimate = degraded.double() * 2 - 1
    levels = NoiseLevels()
    alpha, sigma, _ = levels.alpha_sigma_lambda(t_start)
    x_start = alpha * estimate + sigma * torch.randn(estimate.shape, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    return ReferenceProblem(prior, levels, estimate, x_start, t_start)


def official_ddim_schedule(t_start: int, calls: int):
    """DifFace's DDIM grid for `calls` UNet calls from t_start: x sits at index `calls`
    (t_start) and the calls run at indices calls - 1 .. 0 (the official off-by-one), as ddim250
    with K = 100 does for t_start = 400."""
    from .schedule import Schedule

    return Schedule(f"{calls} calls from t = {t_start}", timesteps=[int(round(t)) for t in np.linspace(0, t_start, calls + 1)])
