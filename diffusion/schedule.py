"""The linear noise schedule, its respacings, and every coefficient the samplers use.

Built once, in float64, exactly as the official GaussianDiffusion/SpacedDiffusion classes of
DifFace and DR2 build them. The samplers read a coefficient at a respaced index as a float32
scalar, which is what the official `_extract_into_tensor` casts it to. Host arithmetic on float32
scalars (+, -, *, /) rounds exactly as the official float32 tensors do and needs no transfer to
the device. Square roots taken at run time (DDIM's) are correctly rounded (numpy), which is what
the golden vectors' run computed: its per-step updates are reproduced bit for bit. torch's own
float32 sqrt is not correctly rounded on every CPU build (1 ulp off on this machine's torch for
some coefficients), so the official code run on such a machine drifts from the golden vectors too
(reference-algorithms.md A.5, B.3).
"""
from __future__ import annotations

import numpy as np

NUM_TIMESTEPS = 1000


def linear_betas(num_timesteps: int = NUM_TIMESTEPS) -> np.ndarray:
    scale = 1000 / num_timesteps
    return np.linspace(scale * 1e-4, scale * 0.02, num_timesteps, dtype=np.float64)


def space_timesteps(num_timesteps: int, respacing: str) -> list[int]:
    """The original timesteps a respacing keeps, with the official semantics.

    "ddimN": the first integer stride giving exactly N steps (ddim250 -> 0, 4, ..., 996).
    "N" or "N1,N2,...": N steps per equal section at fractional stride, rounded
    ("250" -> round(k * 999 / 249); "100" -> round(k * 999 / 99), DR2's).
    """
    respacing = str(respacing).strip()
    if respacing.startswith("ddim"):
        count = _positive_int(respacing[4:], respacing)
        for stride in range(1, num_timesteps):
            if len(range(0, num_timesteps, stride)) == count:
                return list(range(0, num_timesteps, stride))
        raise ValueError(f"respacing '{respacing}': no integer stride gives exactly {count} of {num_timesteps} steps")
    counts = [_positive_int(part, respacing) for part in respacing.split(",")]
    size_per, extra = divmod(num_timesteps, len(counts))
    start, steps = 0, []
    for index, count in enumerate(counts):
        size = size_per + (1 if index < extra else 0)
        if size < count:
            raise ValueError(f"respacing '{respacing}': cannot take {count} steps from a section of {size}")
        stride = 1 if count <= 1 else (size - 1) / (count - 1)
        position = 0.0
        for _ in range(count):
            steps.append(start + round(position))
            position += stride
        start += size
    return sorted(set(steps))


def _positive_int(text: str, respacing: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"respacing '{respacing}' is not 'ddimN', 'N' or 'N1,N2,...'") from None
    if value < 1:
        raise ValueError(f"respacing '{respacing}' asks for {value} steps")
    return value


class Schedule:
    """A respaced linear schedule. Index k is respaced; `timestep_map[k]` is the original t."""

    def __init__(self, respacing: str = "ddim250", num_timesteps: int = NUM_TIMESTEPS, timesteps: list[int] | None = None):
        """timesteps: keep exactly these original timesteps instead of a respacing's (benchmarks)."""
        self.respacing = str(respacing)
        base_alphas_cumprod = np.cumprod(1.0 - linear_betas(num_timesteps))
        kept = sorted(set(int(t) for t in timesteps)) if timesteps is not None else space_timesteps(num_timesteps, respacing)
        self.timestep_map = np.array(kept, dtype=np.int64)
        betas, last = [], 1.0
        for t in self.timestep_map:
            betas.append(1.0 - base_alphas_cumprod[t] / last)
            last = base_alphas_cumprod[t]
        self.betas = np.array(betas, dtype=np.float64)
        alphas = 1.0 - self.betas
        self.alphas_cumprod = np.cumprod(alphas)
        self.alphas_cumprod_prev = np.append(1.0, self.alphas_cumprod[:-1])
        self.sqrt_alphas_cumprod = np.sqrt(self.alphas_cumprod)
        self.sqrt_one_minus_alphas_cumprod = np.sqrt(1.0 - self.alphas_cumprod)
        self.sqrt_recip_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod)
        self.sqrt_recipm1_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod - 1.0)
        # posterior q(x_{k-1} | x_k, x_0)
        self.posterior_variance = self.betas * (1.0 - self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        # log clipped: the posterior variance is 0 at k = 0, so k = 0 borrows k = 1's value
        self.posterior_log_variance_clipped = np.log(np.append(self.posterior_variance[1], self.posterior_variance[1:]))
        self.posterior_mean_coef1 = self.betas * np.sqrt(self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        self.posterior_mean_coef2 = (1.0 - self.alphas_cumprod_prev) * np.sqrt(alphas) / (1.0 - self.alphas_cumprod)
        self.log_betas = np.log(self.betas)

    @property
    def num_steps(self) -> int:
        return len(self.timestep_map)

    def at(self, name: str, k: int) -> np.float32:
        """Coefficient `name` at respaced index k, cast float64 -> float32."""
        return np.float32(getattr(self, name)[k])

    def index_for_fraction(self, fraction_of_100: float) -> int:
        """The respaced index for a step given on DR2's 0..100 scale (tau, omega), i.e. the
        index of the same relative position in this respacing (identity for respacing "100")."""
        return int(round(fraction_of_100 * (self.num_steps - 1) / 99))

    def describe(self, k: int) -> str:
        return f"step {k} of {self.respacing} (t = {int(self.timestep_map[k])})"


# How a few-step solver spreads its network calls between the start and t = 0.
SPACINGS = ("log-SNR", "uniform t", "karras")
KARRAS_RHO = 7.0


class NoiseLevels:
    """The 1000-step linear schedule as the few-step solvers see it: at an original timestep t,
    alpha_t = sqrt(abar_t), sigma_t = sqrt(1 - abar_t) and the log-SNR lambda_t = log(alpha_t / sigma_t).

    Fractional t interpolates log abar linearly between the integer steps (only the exact reference
    priors of the benchmarks use that; a trained network is called at integer t).
    """

    def __init__(self, num_timesteps: int = NUM_TIMESTEPS):
        alphas_cumprod = np.cumprod(1.0 - linear_betas(num_timesteps))
        self.timesteps_all = np.arange(num_timesteps, dtype=np.float64)
        self.log_alphas_cumprod = np.log(alphas_cumprod)
        self.lambdas = 0.5 * (np.log(alphas_cumprod) - np.log1p(-alphas_cumprod))  # decreasing in t

    def alpha_bar(self, t: float) -> float:
        return float(np.exp(np.interp(t, self.timesteps_all, self.log_alphas_cumprod)))

    def alpha_sigma_lambda(self, t: float) -> tuple[float, float, float]:
        abar = self.alpha_bar(t)
        return float(np.sqrt(abar)), float(np.sqrt(1.0 - abar)), float(0.5 * (np.log(abar) - np.log1p(-abar)))

    def t_for_lambda(self, lam):
        """The t whose lambda is lam: the exact inverse of alpha_sigma_lambda (abar = sigmoid(2 lambda),
        log abar interpolated linearly in t)."""
        log_alpha_bar = -np.log1p(np.exp(-2.0 * np.asarray(lam, dtype=np.float64)))
        return np.interp(log_alpha_bar, self.log_alphas_cumprod[::-1], self.timesteps_all[::-1])

    def timesteps(self, t_start: float, calls: int, spacing: str = "log-SNR", integer: bool = True) -> list:
        """`calls` timesteps from t_start down to 0 (both included), spread by `spacing`: evenly in
        log-SNR, evenly in t, or Karras et al. (2022)'s rho = 7 spacing of sigma/alpha. Integer
        timesteps that round together are merged, so a dense end may cost fewer calls."""
        if calls < 1:
            raise ValueError(f"a solver needs at least 1 network call, got {calls}")
        if spacing not in SPACINGS:
            raise ValueError(f"unknown spacing '{spacing}' (choose one of {', '.join(SPACINGS)})")
        if calls == 1:
            return [int(round(t_start)) if integer else float(t_start)]
        fraction = np.linspace(0.0, 1.0, calls)
        lam_start, lam_end = self.alpha_sigma_lambda(t_start)[2], float(self.lambdas[0])
        if spacing == "uniform t":
            ts = t_start * (1.0 - fraction)
        elif spacing == "log-SNR":
            ts = self.t_for_lambda(lam_start + fraction * (lam_end - lam_start))
        else:  # karras: sigma/alpha = exp(-lambda), evenly in its 1/rho-th power
            high, low = np.exp(-lam_start) ** (1 / KARRAS_RHO), np.exp(-lam_end) ** (1 / KARRAS_RHO)
            ts = self.t_for_lambda(-KARRAS_RHO * np.log(high + fraction * (low - high)))
        ts[0], ts[-1] = t_start, 0.0
        if not integer:
            return [float(t) for t in ts]
        merged = []
        for t in np.rint(ts).astype(int):
            if not merged or t < merged[-1]:
                merged.append(int(t))
        return merged
