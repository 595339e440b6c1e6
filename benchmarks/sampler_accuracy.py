"""Few-step samplers against the official sampler's own limit, on an exact reference, and what they
cost with the full-size DifFace UNet.

A random-weight UNet cannot judge a solver, so the accuracy is measured on a face prior whose
denoiser and posterior are known in closed form (diffusion/exact_prior.py): a Gaussian mixture with
one component per real aligned face, on DifFace's real schedule (linear betas, 1000 steps), started
where DifFace starts (K = 100 of ddim250: t = 400) from real degraded faces, none of them in the
mixture.

The bar of a fast setting is what the official sampler converges to at the same eta, not another
target: DDIM(eta) with many calls (LIMIT_CALLS, every integer timestep; the official off-by-one
shrinks to one step). The few-step SDE solver is given the noise fraction eta^2, the SDE that
DDIM(eta) converges to (diffusion/samplers.py, sde_noise_fraction).

- eta 0 (deterministic): each sampler's end point against the probability-flow ODE solved to
  convergence (DPM-Solver++(2M) with 8192 steps; 16384 agree to 1e-7), RMS on the [-1, 1] scale,
  and the observed order of convergence;
- eta 0.5 (DifFace's) and eta 1 (DDPM: the limit is the exact posterior p(x0 | x_400), known in
  closed form): the end points of many noise seeds against the limit's, as the Frechet distance of
  their projections on the mixture's principal directions; the seed-to-seed floor is another seed of
  the limit (eta 1: exact posterior samples); the SDE solver with as many fractional steps checks that
  DDIM(eta)'s limit is the SDE with noise fraction eta^2;
- DR2's guided loop, and the hybrid (DR2's loop from DifFace's start), on coarser respacings against
  their official 100-step ones;
- time per face with the full-size DifFace UNet (512 px, batch 1, random weights), measured per UNet
  call (median of several) in both convolution modes; with --official-code PATH (a DifFace
  checkout) also DifFace's own UNet code.

All samplers run without clipping here: the exact prior's denoiser needs none (clipping is a guard
for imperfect networks), and the official DDIM is run on the same footing.

    python benchmarks/sampler_accuracy.py [--samples 600] [--size 64] [--no-timing] [--official-code DIR]
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
from diffusion_face_restore.diffusion.fast_solvers import best_spacing, sample_fast  # noqa: E402
from diffusion_face_restore.diffusion.samplers import (  # noqa: E402
    q_sample, sample_ddim, sample_dpmpp_2m, sample_dpmpp_2m_sde, sample_dr2, sde_noise_fraction,
)
from diffusion_face_restore.diffusion.schedule import SPACINGS, NoiseLevels, Schedule  # noqa: E402
from diffusion_face_restore.restore.pipelines import FAST_DIFFACE_SAMPLER  # noqa: E402
from diffusion_face_restore.training.evaluation import real_faces  # noqa: E402

DDIM_CALLS = (10, 20, 25, 50, 100)
SOLVER_CALLS = (5, 6, 8, 10, 15, 20, 25)
DETERMINISTIC_CALLS = (5, 6, 8, 10, 15, 20, 25, 50, 100)
LIMIT_CALLS = 400  # DDIM at every integer timestep from t = 400
T_START = 400
OFFICIAL_CALLS = 100  # DifFace's K = 100 of ddim250


def table(title: str, header: list[str], rows: list[list[str]]):
    print(f"\n{title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


def fewest_calls(distances: dict, bar: float):
    """The fewest calls whose distance is within `bar` (None: none)."""
    return min((n for n, d in distances.items() if d <= bar), default=None)


def deterministic(problem) -> dict:
    levels, den, x = problem.levels, problem.denoiser, problem.x_start.double()
    reference = sample_dpmpp_2m(den, x, levels, levels.timesteps(T_START, 8192, "log-SNR", integer=False), clip=False)

    def error(out):
        return float((out - reference).pow(2).mean().sqrt())

    results = {"DDIM, eta 0 (official)": {
        n: error(sample_ddim(den, x, official_ddim_schedule(T_START, n), n - 1, 0.0, torch.zeros_like, clip=False)) for n in DETERMINISTIC_CALLS}}
    for spacing in SPACINGS:
        results[f"DPM-Solver++(2M), {spacing}"] = {
            n: error(sample_dpmpp_2m(den, x, levels, levels.timesteps(T_START, n, spacing), clip=False)) for n in DETERMINISTIC_CALLS}
    bar = results["DDIM, eta 0 (official)"][OFFICIAL_CALLS]
    rows = [[name] + [f"{e:.1e}" for e in errors.values()] + [str(fewest_calls(errors, bar) or "-")] for name, errors in results.items()]
    table(f"eta 0: RMS distance to the probability-flow ODE's exact end point (DDIM(0)'s limit; [-1, 1] scale; "
          f"bar: official {OFFICIAL_CALLS} calls = {bar:.1e})",
          ["sampler \\ UNet calls"] + [str(n) for n in DETERMINISTIC_CALLS] + ["fewest calls within the bar"], rows)
    fine = [160, 320, 640, 1280]
    errors = [error(sample_dpmpp_2m(den, x, levels, levels.timesteps(T_START, n, "karras", integer=False), clip=False)) for n in fine]
    orders = [math.log(errors[i] / errors[i + 1]) / math.log(fine[i + 1] / fine[i]) for i in range(len(fine) - 1)]
    print(f"\nDPM-Solver++(2M), karras, fractional timesteps: error {', '.join(f'{e:.1e}' for e in errors)} at "
          f"{', '.join(map(str, fine))} calls; observed order {', '.join(f'{o:.2f}' for o in orders)} (theory: 2)")
    return results


def stochastic(problem, samples: int, eta: float) -> dict:
    """Frechet distances to DDIM(eta)'s own limit (eta 1: to the exact posterior, which is that limit),
    {setting: {calls: distance}}."""
    levels, prior, den = problem.levels, problem.prior, problem.denoiser
    alpha, sigma, _ = levels.alpha_sigma_lambda(T_START)
    face = problem.x_start[:1].float()
    x = face.expand(samples, -1, -1, -1).contiguous()

    def draws(seed):
        return randn_like_from(torch.Generator().manual_seed(seed))

    def moments(out):
        return sample_moments(out.reshape(samples, -1).double() @ prior.basis)

    def ddim(calls, seed=7):
        return moments(sample_ddim(den, x, official_ddim_schedule(T_START, calls), calls - 1, eta, draws(seed), clip=False))

    def solver(calls, spacing, noise_fraction, seed=7, integer=True):
        ts = levels.timesteps(T_START, calls, spacing, integer=integer)
        return moments(sample_dpmpp_2m_sde(den, x, levels, ts, draws(seed), noise_fraction, clip=False))

    limit = ddim(LIMIT_CALLS, seed=101)
    exact = prior.posterior_moments_in_basis(face.reshape(-1).double(), alpha, sigma)
    if eta == 1.0:  # DDPM's limit is the posterior: the closed form is the bar, exact samples the floor
        check = f"DDIM(1) with {LIMIT_CALLS} calls scores {frechet_distance(*limit, *exact):.2f} against it"
        limit = exact
        floor = frechet_distance(*moments(prior.sample_posterior(face.reshape(-1).double(), alpha, sigma, samples,
                                                                 torch.Generator().manual_seed(3))), *limit)
        target = "the exact posterior p(x0 | x_400)"
    else:
        floor = frechet_distance(*ddim(LIMIT_CALLS, seed=102), *limit)
        check = f"another seed of it scores {floor:.2f}, the exact posterior {frechet_distance(*limit, *exact):.2f}"
        target = f"DDIM({eta})'s limit ({LIMIT_CALLS} calls)"
    nu = sde_noise_fraction(eta)
    converged = frechet_distance(*solver(LIMIT_CALLS, "log-SNR", nu, seed=103, integer=False), *limit)
    print(f"\neta {eta}: the bar is {target}; {check}. The SDE solver with noise fraction eta^2 = {nu:g} and {LIMIT_CALLS} "
          f"fractional log-SNR steps scores {converged:.2f} (the same distribution); seed-to-seed floor {floor:.2f}")
    results = {f"DDIM, eta {eta} (official)": {n: frechet_distance(*ddim(n), *limit) for n in DDIM_CALLS}}
    for spacing in SPACINGS:
        results[f"DPM-Solver++(2M) SDE, noise fraction {nu:g}, {spacing}"] = {
            n: frechet_distance(*solver(n, spacing, nu), *limit) for n in SOLVER_CALLS}
    if 0 < eta < 1:  # what the widget meant before: eta as the SDE's own noise fraction
        spacing = best_spacing("dpm++ 2m sde", eta)
        results[f"(before: noise fraction {eta:g}, {spacing})"] = {n: frechet_distance(*solver(n, spacing, eta), *limit) for n in (8, 25)}
    bar = results[f"DDIM, eta {eta} (official)"][OFFICIAL_CALLS]
    columns = sorted(set(DDIM_CALLS) | set(SOLVER_CALLS))
    rows = [[name] + [f"{values[n]:.2f}" if n in values else "" for n in columns]
            + [str(fewest_calls(values, bar) or "-"), str(fewest_calls(values, 2 * bar) or "-")] for name, values in results.items()]
    table(f"eta {eta}: Frechet distance to {target} ({samples} seeds; floor {floor:.2f}; bar: official {OFFICIAL_CALLS} calls = {bar:.2f})",
          ["sampler \\ UNet calls"] + [str(n) for n in columns] + ["fewest calls within the bar", "within 2x the bar"], rows)
    return results


def dr2_fewer_steps(problem, samples: int) -> dict:
    """DR2's loop on the exact prior (variance channel at its lower bound, v = -1), N = 4, tau = 22 on
    DR2's scale: from the degraded face diffused to omega = 42 (DR2), or from DifFace's start, the
    estimate diffused to K = 40 (the hybrid; here the degraded face is its own estimate, as
    DifFaceInit without a restorer). Coarser respacings against the official 100."""
    prior, size = problem.prior, problem.x_start.shape[-1]
    den = problem.denoiser

    def with_variance(x, t):
        eps = den(x, t)
        return torch.cat([eps, -torch.ones_like(eps)], 1)

    y = problem.estimate[:1].float().expand(samples, -1, -1, -1).contiguous()

    def run(respacing, seed, hybrid):
        schedule = Schedule(respacing)
        tau, start = schedule.index_for_fraction(22), schedule.index_for_fraction(40 if hybrid else 42)
        noise = randn_like_from(torch.Generator().manual_seed(seed))
        x = q_sample(schedule, y, start, noise(y)) if hybrid else None
        out = sample_dr2(with_variance, y, schedule, start, tau, LowPass(size, 4), noise, x)
        return sample_moments(out.reshape(samples, -1).double() @ prior.basis), start - tau + 1, int(schedule.timestep_map[start])

    rows, results = [], {}
    for name, hybrid in (("DR2", False), ("hybrid", True)):
        official = run("100", 11, hybrid)[0]
        for respacing in ("100", "50", "25", "10"):
            moments, calls, t = run(respacing, 12, hybrid)
            results[(name, respacing)] = frechet_distance(*moments, *official)
            rows.append([name, respacing, f"{'K' if hybrid else 'omega'} at t = {t}", str(calls), f"{results[(name, respacing)]:.2f}"])
    table("DR2's guided loop: Frechet distance of its outputs to the official 100-step loop's (100: another seed)",
          ["loop", "respacing", "start", "UNet calls", "Frechet distance"], rows)
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
    parser.add_argument("--samples", type=int, default=600, help="noise seeds per stochastic setting")
    parser.add_argument("--size", type=int, default=64, help="the exact prior's resolution")
    parser.add_argument("--no-timing", action="store_true", help="skip the full-size UNet timing")
    parser.add_argument("--official-code", help="a DifFace checkout: also time its own UNet code")
    parser.add_argument("--timing-only", action="store_true", help="only the full-size UNet timing")
    args = parser.parse_args()
    fast = FAST_DIFFACE_SAMPLER
    distances = {}
    if not args.timing_only:
        faces = real_faces(shared_dir(), args.size)
        problem = face_reference_problem(faces, T_START)
        print(f"exact prior: {problem.prior.means.shape[0]} real faces at {args.size} px, {problem.prior.basis.shape[1]} principal "
              f"directions; {problem.x_start.shape[0]} held-out degraded faces diffused to t = {T_START}")
        deterministic(problem)
        for eta in (0.5, 1.0):
            distances[eta] = stochastic(problem, args.samples, eta)
        dr2_fewer_steps(problem, args.samples)
    if not args.no_timing:
        seconds = unet_call_seconds(args.official_code)
        # the solvers' own arithmetic at 512 px, per step (a network that costs nothing)
        start = time.perf_counter()
        sample_fast("dpm++ 2m sde", lambda x, t: torch.zeros(1, 6, 512, 512), torch.randn(1, 3, 512, 512), NoiseLevels(),
                    NoiseLevels().timesteps(400, 50, "uniform t"), fast["eta"], randn_like_from(torch.Generator().manual_seed(0)))
        overhead = (time.perf_counter() - start) / 50
        base = seconds.get("official code", seconds["exact (NCHW)"])
        print("\nFull-size DifFace UNet (512 px, batch 1, this CPU), per call: " + ", ".join(f"{k} {v:.2f} s" for k, v in seconds.items())
              + f"; solver arithmetic {overhead * 1000:.0f} ms per step")
        if "official code" in seconds:
            print("per-call speed-up over the official code: " + ", ".join(
                f"{k} x{seconds['official code'] / v:.2f}" for k, v in seconds.items() if k != "official code"))
        official_face = OFFICIAL_CALLS * (base + overhead)
        spacing = best_spacing("dpm++ 2m sde", fast["eta"])
        sde = f"DPM-Solver++(2M) SDE, noise fraction {sde_noise_fraction(fast['eta']):g}, {spacing}"
        rows = []
        for name, calls, mode, row in [(f"DDIM({fast['eta']}), official", OFFICIAL_CALLS, "exact (NCHW)", f"DDIM, eta {fast['eta']} (official)"),
                                       *[(f"dpm++ 2m sde, eta {fast['eta']}, {spacing}{' (the fast workflow)' if n == fast['steps'] else ''}",
                                          n, "channels-last", sde) for n in sorted({fast["steps"], 6, 10, 15})]]:
            face = calls * (seconds[mode] + overhead)
            distance = distances.get(fast["eta"], {}).get(row, {}).get(calls)
            rows.append([name, str(calls), mode, f"{face:.0f} s", f"x{official_face / face:.1f}", "" if distance is None else f"{distance:.2f}"])
        table(f"Time per face, DifFace 512 px (UNet calls x measured time per call; ratio to the official {OFFICIAL_CALLS}-step DDIM)",
              ["sampler", "UNet calls", "convolutions", "time per face", "speed-up", f"distance to DDIM({fast['eta']})'s limit"], rows)


if __name__ == "__main__":
    main()
