"""The synthetic degradation: seeded parameters, the batched FFT blur against OpenCV, the clean variant."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from diffusion_face_restore.degradations.synthetic import (
    PRESETS, DegradationParams, blur_batch, degrade, degrade_batch, gaussian_kernel, sample_params,
)


def faces(astronaut, grace_hopper, size=128):
    out = []
    for photo in (astronaut, grace_hopper):
        side = min(photo.shape[:2])
        square = np.ascontiguousarray(photo[:side, :side])
        out.append(cv2.resize(square, (size, size), interpolation=cv2.INTER_AREA))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 255


def test_parameters_are_seeded_and_within_the_preset():
    first = [sample_params(np.random.default_rng(7), "difface") for _ in range(3)]
    again = [sample_params(np.random.default_rng(7), "difface") for _ in range(3)]
    assert first == again
    rng = np.random.default_rng(0)
    preset = PRESETS["codeformer"]
    for _ in range(200):
        p = sample_params(rng, "codeformer")
        assert preset.blur[0] <= p.sigma_x <= preset.blur[1] and preset.blur[0] <= p.sigma_y <= preset.blur[1]
        assert preset.scale[0] <= p.scale <= preset.scale[1]
        assert preset.jpeg[0] <= p.jpeg <= preset.jpeg[1]


def test_drm_preset_applies_each_kind_about_half_the_time():
    rng = np.random.default_rng(1)
    params = [sample_params(rng, "drm") for _ in range(400)]
    no_blur = np.mean([p.sigma_x == 0.1 and p.sigma_y == 0.1 for p in params])
    no_noise = np.mean([p.noise == 0 for p in params])
    assert 0.4 < no_blur < 0.6 and 0.4 < no_noise < 0.6


def test_fft_blur_matches_opencv_filter2d(astronaut, grace_hopper):
    images = faces(astronaut, grace_hopper).double()
    params = [DegradationParams(3.0, 1.2, 0.7, 1, 0, 100), DegradationParams(6.0, 6.0, 0.0, 1, 0, 100)]
    kernels = torch.from_numpy(np.stack([gaussian_kernel(p) for p in params]))
    ours = blur_batch(images, kernels)
    for i, p in enumerate(params):
        image = images[i].permute(1, 2, 0).numpy()
        # filter2D correlates; the kernel is point-symmetric, so correlation = convolution
        reference = cv2.filter2D(image, -1, gaussian_kernel(p), borderType=cv2.BORDER_REFLECT_101)
        assert np.abs(ours[i].permute(1, 2, 0).numpy() - reference).max() < 1e-9


def test_kernel_is_normalised_and_anisotropic_when_asked():
    kernel = gaussian_kernel(DegradationParams(6.0, 1.0, 0.0, 1, 0, 100))
    assert kernel.sum() == pytest.approx(1.0)
    assert kernel[20, :].sum() > 3 * kernel[:, 20].sum()  # wide along x, narrow along y


def test_degradation_is_reproducible_and_returns_its_parameters(astronaut, grace_hopper):
    images = faces(astronaut, grace_hopper)
    a, params_a = degrade(images, np.random.default_rng(3), "gfpgan", torch.Generator().manual_seed(3))
    b, params_b = degrade(images, np.random.default_rng(3), "gfpgan", torch.Generator().manual_seed(3))
    assert params_a == params_b and torch.equal(a, b)
    assert a.shape == images.shape and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a * 255, (a * 255).round())  # 8-bit values, as a saved photo


def test_severity_orders_the_damage(astronaut, grace_hopper):
    images = faces(astronaut, grace_hopper)
    errors = []
    for blur, scale, noise, quality in [(0.1, 1, 0, 100), (2, 2, 5, 80), (5, 4, 10, 50), (10, 8, 20, 30)]:
        lq = degrade_batch(images, [DegradationParams(blur, blur, 0, scale, noise, quality)] * 2, torch.Generator().manual_seed(0))
        errors.append(float((lq - images).abs().mean()))
    assert errors == sorted(errors) and errors[0] < 0.01


def test_clean_variant_is_the_same_degradation_without_noise(astronaut, grace_hopper):
    images = faces(astronaut, grace_hopper)
    params = [DegradationParams(2.0, 2.0, 0.0, 2.0, 15.0, 90)] * 2
    noisy, clean = degrade_batch(images, params, torch.Generator().manual_seed(0), with_clean=True)
    assert torch.equal(clean, degrade_batch(images, params, clean=True))
    residual = (noisy - clean).std().item()
    assert 0.02 < residual < 0.1  # about the noise's 15/255 = 0.059 after JPEG and up-sampling
