"""Few-step samplers against an exact reference, and what they cost with the full-size DifFace UNet.

A random-weight UNet cannot judge a solver, so the accuracy is measured on a face prior whose
denoiser and posterior are known in closed form (diffusion/exact_prior.py): a Gaussian mixture with
one component per real aligned face, on DifFace's real schedule (linear betas, 1000 steps), started
where DifFace starts (K = 100 of ddim250: t = 400) from real degraded faces, none of them in the
mixture.

- deterministic (eta = 0): each sampler's end point against the probability-flow ODE solved to
  convergence (DPM-Solver++(2M) with 8192 steps; 16384 agree to 1e-7), RMS on the [-1, 1] scale,
  and the observed order of convergence;
- stochastic: the end points of many noise seeds against the exact posterior p(x0 | x_400): the
  Frechet distance of their projections on the mixture's principal directions, and the total
  variation between the components they land on and the posterior's component weights; the bar is
  the official 100-step DDIM(0.5);
- DR2's guided loop on coarser respacings against its official 100-step one;
- time per face with the full-size DifFace UNet (512 px, batch 1, random weights), measured per UNet
  call (median of several) in both convolution modes; with --official-code PATH (a DifFace
  checkout) also DifFace's own UNet code.

All samplers run without clipping here: the exact prior's denoiser needs none (clipping is a guard
for imperfect networks), and the official DDIM is run on the same footing.

    python benchmarks/sampler_accuracy.py [--samples 1000] [--size 64] [--no-timing] [--official-code DIR]
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pack_import import import_pack, shared_dir  # noqa: E402

import_pack()
from diffusion_face_restore.diffusion.difface import randn_like_from  # noqa: E402
from diffusion_face_restore.diffusion.exact_prior import (  # noqa: E402
    face_reference_problem, frechet_distance, official_ddim_schedule, sample_moments,
)
from diffusion_face_restore.diffusion.lowpass import LowPass  # noqa: E402
from diffusion_face_restore.diffusion.samplers import sample_ddim, sample_dpmpp_2m, sample_dr2, sample_fast  # noqa: E402
from diffusion_face_restore.diffusion.schedule import NoiseLevels, Schedule  # noqa: E402
from diffusion_face_restore.training.evaluation import real_faces  # noqa: E402

CALLS = (5, 8, 10, 15, 20, 25, 50, 100)
T_START = 400


def table(title: str, header: list[str], rows: list[list[str]]):
    print(f"\n{title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


def deterministic(problem) -> dict:
    levels, den, x = problem.levels, problem.denoiser, problem.x_start.double()
    reference = sample_dpmpp_2m(den, x, levels, levels.timesteps(T_START, 8192, "log-SNR", integer=False), clip=False)

    def error(out):
        return float((out - reference).pow(2).mean().sqrt())

    results = {"DDIM, eta 0 (official: x_400 stepped as x_396)": [
        error(sample_ddim(den, x, official_ddim_schedule(T_START, n), n - 1, 0.0, torch.zeros_like, clip=False)) for n in CALLS]}
    for spacing in ("log-SNR", "karras", "uniform t"):
        results[f"DPM-Solver++(2M), {spacing}"] = [
            error(sample_dpmpp_2m(den, x, levels, levels.timesteps(T_START, n, spacing), clip=False)) for n in CALLS]
    rows = [[name] + [f"{e:.1e}" for e in errors] for name, errors in results.items()]
    table("Deterministic: RMS distance to the probability-flow ODE's exact end point ([-1, 1] scale)",
          ["sampler \\ UNet calls"] + [str(n) for n in CALLS], rows)
    fine = [160, 320, 640, 1280]
    errors = [error(sample_dpmpp_2m(den, x, levels, levels.timesteps(T_START, n, "karras", integer=False), clip=False)) for n in fine]
    orders = [math.log(errors[i] / errors[i + 1]) / math.log(fine[i + 1] / fine[i]) for i in range(len(fine) - 1)]
    print(f"\nDPM-Solver++(2M), karras, fractional timesteps: error {', '.join(f'{e:.1e}' for e in errors)} at "
          f"{', '.join(map(str, fine))} calls; observed order {', '.join(f'{o:.2f}' for o in orders)} (theory: 2)")
    return results


def stochastic(problem, samples: int) -> dict:
    levels, prior, den = problem.levels, problem.prior, problem.denoiser
    alpha, sigma, _ = levels.alpha_sigma_lambda(T_START)
    face = problem.x_start[:1].float()
    x = face.expand(samples, -1, -1, -1).contiguous()
    exact_mean, exact_cov = prior.posterior_moments_in_basis(face.reshape(-1).double(), alpha, sigma)
    exact_weights = prior.responsibilities(face.reshape(1, -1).double(), alpha, sigma)[0]

    def distances(out):
        flat = out.reshape(samples, -1).double()
        mean, cov = sample_moments(flat @ prior.basis)
        landed = torch.bincount(prior.nearest_component(flat), minlength=exact_weights.shape[0]).double() / samples
        return frechet_distance(mean, cov, exact_mean, exact_cov), 0.5 * float((landed - exact_weights).abs().sum())

    floor = distances(prior.sample_posterior(face.reshape(-1).double(), alpha, sigma, samples, torch.Generator().manual_seed(3)))
    print(f"\nStochastic reference: {samples} exact posterior samples score Frechet {floor[0]:.2f}, TV {floor[1]:.3f} "
          f"(the sampling noise floor); posterior covariance trace {float(torch.trace(exact_cov)):.1f}")
    configs = {"DDIM, eta 0.5 (official)": lambda n: sample_ddim(
        den, x, official_ddim_schedule(T_START, n), n - 1, 0.5, randn_like_from(torch.Generator().manual_seed(7)), clip=False)}
    for spacing in ("uniform t", "karras", "log-SNR"):
        configs[f"DPM-Solver++(2M) SDE, eta 1, {spacing}"] = lambda n, spacing=spacing: sample_fast(
            "dpm++ 2m sde", den, x, levels, levels.timesteps(T_START, n, spacing), 1.0,
            randn_like_from(torch.Generator().manual_seed(7)), clip=False)
    configs["DPM-Solver++(2M) SDE, eta 0.5, uniform t"] = lambda n: sample_fast(
        "dpm++ 2m sde", den, x, levels, levels.timesteps(T_START, n, "uniform t"), 0.5,
        randn_like_from(torch.Generator().manual_seed(7)), clip=False)
    results = {name: [distances(run(n)) for n in CALLS] for name, run in configs.items()}
    bar = results["DDIM, eta 0.5 (official)"][-1][0]
    rows = [[name] + [f"{d:.2f} / {tv:.2f}" for d, tv in values] for name, values in results.items()]
    table(f"Stochastic: Frechet distance / component TV to the exact posterior (bar: official 100-step DDIM(0.5) = {bar:.2f})",
          ["sampler \\ UNet calls"] + [str(n) for n in CALLS], rows)
    return results


def dr2_fewer_steps(problem, samples: int) -> dict:
    """DR2's loop on the exact prior (variance channel at its lower bound, v = -1) from the degraded
    face, N = 4, tau = 22, omega = 42 on DR2's scale: coarser respacings against the official 100."""
    prior, size = problem.prior, problem.x_start.shape[-1]
    den = problem.denoiser

    def with_variance(x, t):
        eps = den(x, t)
        return torch.cat([eps, -torch.ones_like(eps)], 1)

    y = problem.estimate[:1].float().expand(samples, -1, -1, -1).contiguous()

    def run(respacing, seed):
        schedule = Schedule(respacing)
        tau, omega = schedule.index_for_fraction(22), schedule.index_for_fraction(42)
        out = sample_dr2(with_variance, y, schedule, omega, tau, LowPass(size, 4), randn_like_from(torch.Generator().manual_seed(seed)))
        return sample_moments(out.reshape(samples, -1).double() @ prior.basis)

    official = run("100", 11)
    rows, results = [], {}
    for respacing in ("100", "50", "25", "10"):
        mean, cov = run(respacing, 12)
        results[respacing] = frechet_distance(mean, cov, *official)
        calls = Schedule(respacing).index_for_fraction(42) - Schedule(respacing).index_for_fraction(22) + 1
        rows.append([respacing, str(calls), f"{results[respacing]:.2f}"])
    table("DR2's guided loop: Frechet distance of its outputs to the official 100-step loop's (100: another seed)",
          ["respacing", "UNet calls", "Frechet distance"], rows)
    return results


def official_unet_class(checkout: str):
    """DifFace's own UNetModel (models/unet.py of a DifFace checkout), imported under a private name
    (the pack has a models/ folder too)."""
    import importlib.util
    import types

    package = types.ModuleType("difface_official_models")
    package.__path__ = [os.path.join(checkout, "models")]
    sys.modules[package.__name__] = package
    spec = importlib.util.spec_from_file_location(f"{package.__name__}.unet", os.path.join(checkout, "models", "unet.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.UNetModel


def unet_call_seconds(official_code: str | None, repeats: int = 5) -> dict:
    from diffusion_face_restore.models.unet import UNet, UNetConfig

    torch.manual_seed(0)
    model = UNet(UNetConfig()).eval()
    for parameter in model.parameters():
        torch.nn.init.normal_(parameter, std=0.02)
    x, t = torch.randn(1, 3, 512, 512), torch.tensor([396])

    def median(module, inp):
        with torch.no_grad():
            module(inp, t)
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                module(inp, t)
                times.append(time.perf_counter() - start)
        return statistics.median(times)

    seconds = {"exact (NCHW)": median(model, x)}
    channels_last = UNet(UNetConfig()).eval()
    channels_last.load_state_dict(model.state_dict())
    seconds["channels-last"] = median(channels_last.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last))
    if official_code:
        UNetModel = official_unet_class(official_code)
        official = UNetModel(image_size=512, in_channels=3, model_channels=32, out_channels=6, num_res_blocks=[1, 2, 2, 2, 2, 3, 4],
                             attention_resolutions=[32, 16, 8], dropout=0, channel_mult=[1, 2, 4, 8, 8, 16, 16], conv_resample=True,
                             dims=2, use_fp16=False, num_head_channels=64, use_scale_shift_norm=True, resblock_updown=False,
                             use_new_attention_order=False).eval()
        official.load_state_dict(model.state_dict())
        seconds["official code"] = median(official, x)
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000, help="noise seeds per stochastic setting")
    parser.add_argument("--size", type=int, default=64, help="the exact prior's resolution")
    parser.add_argument("--no-timing", action="store_true", help="skip the full-size UNet timing")
    parser.add_argument("--official-code", help="a DifFace checkout: also time its own UNet code")
    parser.add_argument("--timing-only", action="store_true", help="only the full-size UNet timing")
    args = parser.parse_args()
    if not args.timing_only:
        faces = real_faces(shared_dir(), args.size)
        problem = face_reference_problem(faces, T_START)
        print(f"exact prior: {problem.prior.means.shape[0]} real faces at {args.size} px, {problem.prior.basis.shape[1]} principal "
              f"directions; {problem.x_start.shape[0]} held-out degraded faces diffused to t = {T_START}")
        deterministic(problem)
        stochastic_results = stochastic(problem, args.samples)
        print("\nbar (official 100-step DDIM(0.5)) Frechet distance: %.2f" % stochastic_results["DDIM, eta 0.5 (official)"][-1][0])
        dr2_fewer_steps(problem, max(200, args.samples // 4))
    if not args.no_timing:
        seconds = unet_call_seconds(args.official_code)
        # the solvers' own arithmetic at 512 px, per step (a network that costs nothing)
        start = time.perf_counter()
        sample_fast("dpm++ 2m sde", lambda x, t: torch.zeros(1, 6, 512, 512), torch.randn(1, 3, 512, 512), NoiseLevels(),
                    NoiseLevels().timesteps(400, 50, "uniform t"), 1.0, randn_like_from(torch.Generator().manual_seed(0)))
        overhead = (time.perf_counter() - start) / 50
        base = seconds.get("official code", seconds["exact (NCHW)"])
        print("\nFull-size DifFace UNet (512 px, batch 1, this CPU), per call: " + ", ".join(f"{k} {v:.2f} s" for k, v in seconds.items())
              + f"; solver arithmetic {overhead * 1000:.0f} ms per step")
        if "official code" in seconds:
            print("per-call speed-up over the official code: " + ", ".join(
                f"{k} x{seconds['official code'] / v:.2f}" for k, v in seconds.items() if k != "official code"))
        official_face = 100 * (base + overhead)
        rows = []
        for name, calls, mode in [("DDIM(0.5), official", 100, "exact (NCHW)"), ("DPM-Solver++(2M) SDE, eta 1", 20, "channels-last"),
                                  ("DPM-Solver++(2M) SDE, eta 1", 15, "channels-last"), ("DPM-Solver++(2M) SDE, eta 1", 10, "channels-last"),
                                  ("DPM-Solver++(2M), karras (deterministic)", 15, "channels-last")]:
            face = calls * (seconds[mode] + overhead)
            rows.append([name, str(calls), mode, f"{face:.0f} s", f"x{official_face / face:.1f}"])
        table("Time per face, DifFace 512 px (UNet calls x measured time per call; ratio to the official 100-step DDIM)",
              ["sampler", "UNet calls", "convolutions", "time per face", "speed-up"], rows)


if __name__ == "__main__":
    main()
