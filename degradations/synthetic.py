"""The standard synthetic blind-face-restoration degradation (GFPGAN, CodeFormer, DifFace, DAEFR):

    y = { [ (x * k_sigma) down_r + n_delta ]_JPEG(q) } up_r          (bfr-research.md C.3)

1. blur: a 41 x 41 Gaussian kernel, isotropic or anisotropic (probability 1/2 each), sigmas
   uniform in the preset's range, rotation uniform in [-pi, pi];
2. down-sampling by r (bilinear); 3. Gaussian colour noise sigma / 255, clipped;
4. JPEG at quality q (OpenCV); 5. up-sampling back (bilinear), rounded to 8 bits.

Batched: the blur (the costly part) is one FFT convolution over the whole batch; the parameters
come from a seeded numpy Generator and are returned, so they are ground truth for training and
probing a degradation encoder. A "clean" variant skips the noise (the DRM's reconstruction target:
noise cannot be reproduced pixel for pixel).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

KERNEL_SIZE = 41


@dataclass(frozen=True)
class Preset:
    blur: tuple[float, float]
    scale: tuple[float, float]
    noise: tuple[float, float]  # on the 0..255 scale
    jpeg: tuple[int, int]
    # each of blur, down-sampling, noise and JPEG is applied with this probability (the published
    # presets always apply all four); below 1, single kinds and clean faces appear too
    component_probability: float = 1.0


PRESETS = {
    "gfpgan": Preset((0.1, 10.0), (0.8, 8.0), (0.0, 20.0), (60, 100)),
    "codeformer": Preset((1.0, 15.0), (4.0, 30.0), (0.0, 20.0), (30, 80)),
    "difface": Preset((0.1, 15.0), (0.8, 32.0), (0.0, 20.0), (30, 100)),
    "daefr": Preset((0.1, 15.0), (0.8, 30.0), (0.0, 20.0), (30, 100)),
    # for degradation representations: GFPGAN's ranges, each kind on its own half of the time
    "drm": Preset((0.1, 10.0), (0.8, 8.0), (0.0, 20.0), (30, 100), component_probability=0.5),
}
# what an unapplied component is: no blur, no down-sampling, no noise, no JPEG loss
IDENTITY = {"sigma": 0.1, "scale": 1.0, "noise": 0.0, "jpeg": 100}


@dataclass(frozen=True)
class DegradationParams:
    sigma_x: float
    sigma_y: float
    angle: float
    scale: float
    noise: float  # 0..255 scale
    jpeg: int

    @property
    def blur(self) -> float:
        return (self.sigma_x + self.sigma_y) / 2

    def as_dict(self) -> dict:
        return asdict(self)


def sample_params(rng: np.random.Generator, preset: Preset | str = "difface") -> DegradationParams:
    preset = PRESETS[preset] if isinstance(preset, str) else preset
    sigma_x = rng.uniform(*preset.blur)
    sigma_y = rng.uniform(*preset.blur) if rng.random() < 0.5 else sigma_x
    params = dict(
        sigma_x=float(sigma_x),
        sigma_y=float(sigma_y),
        angle=float(rng.uniform(-np.pi, np.pi)),
        scale=float(rng.uniform(*preset.scale)),
        noise=float(rng.uniform(*preset.noise)),
        jpeg=int(rng.integers(preset.jpeg[0], preset.jpeg[1] + 1)),
    )
    if preset.component_probability < 1:
        applied = rng.random(4) < preset.component_probability
        if not applied[0]:
            params.update(sigma_x=IDENTITY["sigma"], sigma_y=IDENTITY["sigma"])
        if not applied[1]:
            params["scale"] = IDENTITY["scale"]
        if not applied[2]:
            params["noise"] = IDENTITY["noise"]
        if not applied[3]:
            params["jpeg"] = IDENTITY["jpeg"]
    return DegradationParams(**params)


def gaussian_kernel(params: DegradationParams, size: int = KERNEL_SIZE) -> np.ndarray:
    """A normalised (rotated, possibly anisotropic) Gaussian kernel."""
    half = size // 2
    ys, xs = np.mgrid[-half:half + 1, -half:half + 1].astype(np.float64)
    c, s = np.cos(params.angle), np.sin(params.angle)
    u, v = c * xs + s * ys, -s * xs + c * ys
    kernel = np.exp(-0.5 * ((u / params.sigma_x) ** 2 + (v / params.sigma_y) ** 2))
    return kernel / kernel.sum()


def blur_batch(images: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Per-image 2-D convolution of [B, C, H, W] with [B, k, k] kernels, as one FFT product.

    Reflect padding by half a kernel (as cv2.filter2D's default border) keeps the borders clean.
    """
    b, c, h, w = images.shape
    k = kernels.shape[-1]
    pad = k // 2
    padded = F.pad(images, (pad, pad, pad, pad), mode="reflect")
    ph, pw = padded.shape[-2:]
    kernel_image = torch.zeros((b, 1, ph, pw), dtype=images.dtype, device=images.device)
    kernel_image[:, 0, :k, :k] = kernels.to(images.dtype)
    # centre the kernel at the origin (circular shift), so the product is a centred convolution
    kernel_image = torch.roll(kernel_image, shifts=(-pad, -pad), dims=(-2, -1))
    spectrum = torch.fft.rfft2(padded) * torch.fft.rfft2(kernel_image)
    blurred = torch.fft.irfft2(spectrum, s=(ph, pw))
    return blurred[..., pad:pad + h, pad:pad + w]


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """uint8 HxWx3 RGB through OpenCV's JPEG encoder and decoder."""
    ok, encoded = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("OpenCV could not encode a JPEG")
    return cv2.imdecode(encoded, cv2.IMREAD_COLOR)[..., ::-1]


def degrade_batch(
    images: torch.Tensor,
    params: list[DegradationParams],
    generator: torch.Generator | None = None,
    clean: bool = False,
    with_clean: bool = False,
):
    """Degrade [B, 3, H, W] RGB 0..1 images; returns [B, 3, H, W] 0..1 (8-bit values).

    clean=True leaves out the noise (everything else identical), for reconstruction targets;
    with_clean=True returns (degraded, degraded without noise) from one blur.
    """
    if images.shape[0] != len(params):
        raise ValueError(f"{images.shape[0]} images but {len(params)} parameter sets")
    device = images.device
    kernels = torch.from_numpy(np.stack([gaussian_kernel(p) for p in params])).to(device)
    blurred = blur_batch(images.float(), kernels)
    height, width = images.shape[-2:]

    def finish(small: torch.Tensor, quality: int) -> torch.Tensor:
        small8 = (small.clamp(0, 1) * 255).round().to(torch.uint8)[0].permute(1, 2, 0).cpu().numpy()
        compressed = torch.from_numpy(jpeg(np.ascontiguousarray(small8), quality).copy()).to(device)
        up = F.interpolate(compressed.permute(2, 0, 1)[None].float() / 255.0, size=(height, width), mode="bilinear", align_corners=False)
        return (up.clamp(0, 1) * 255).round()[0] / 255.0

    out = torch.empty_like(images, dtype=torch.float32)
    noiseless = torch.empty_like(out) if with_clean else None
    for i, p in enumerate(params):
        small_size = (max(1, int(round(height / p.scale))), max(1, int(round(width / p.scale))))
        small = F.interpolate(blurred[i:i + 1], size=small_size, mode="bilinear", align_corners=False)
        if with_clean:
            noiseless[i] = finish(small, p.jpeg)
        if not clean and p.noise > 0:
            noise = torch.randn(small.shape, generator=generator, dtype=torch.float32).to(device)
            small = small + noise * (p.noise / 255.0)
        out[i] = finish(small, p.jpeg)
    return (out, noiseless) if with_clean else out


def degrade(
    images: torch.Tensor, rng: np.random.Generator, preset: Preset | str = "difface", generator: torch.Generator | None = None
) -> tuple[torch.Tensor, list[DegradationParams]]:
    """Sample one parameter set per image and degrade; returns (degraded, parameters)."""
    params = [sample_params(rng, preset) for _ in range(images.shape[0])]
    return degrade_batch(images, params, generator), params
