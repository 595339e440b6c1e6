"""Speed and memory of the face diffusion priors at their real sizes (random weights).

DifFace: the 512 px iDDPM UNet (159.8 M parameters), one DDIM step and a whole default run
(K = 100 of ddim250: 100 UNet calls). DR2: the 256 px ADM UNet (93.6 M), one guided step and
whole runs at the paper's (N, tau) = (4, 22), (8, 35), (16, 35). For batch 1, 4 and 8, float32
and bfloat16, on the CPU and, when there is one, the GPU. Each figure is the median of --repeats
timed runs after a warm-up; a whole run is timed by its steps (per-step median x UNet calls,
plus the low-pass for DR2), which is what it costs since every step is the same work. Peak memory:
the process's peak RSS growth on the CPU (each configuration runs in a fresh process),
torch.cuda.max_memory_allocated on the GPU.

Implementations (--impls): exact (NCHW, the pack's default: the official results bit for bit),
channels-last (FaceDiffusionLoader's convolutions "channels-last (faster)"), compile (torch.compile
of the exact one; optional, and its minutes of compilation are not counted) and official (the
official UNet code from a DifFace checkout given with --official-code, for the per-step ratio).

    python benchmarks/diffusion_speed.py [--device cpu|cuda|all] [--batches 1,4,8]
                                         [--dtypes fp32,bf16] [--repeats 3] [--models difface,dr2]
                                         [--impls exact,channels-last] [--official-code DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pack_import import import_pack  # noqa: E402

DR2_SETTINGS = [(4, 22), (8, 35), (16, 35)]
DIFFACE_CALLS = 100  # K = 100 of ddim250: the first call at 99, the last at 0


def build(model: str, dtype: torch.dtype, device: str, impl: str = "exact", official_code: str | None = None):
    import_pack()
    from diffusion_face_restore.models.unet import UNet, UNetConfig

    if model == "difface":
        config = UNetConfig()
    else:
        config = UNetConfig(3, 6, 128, [1, 1, 2, 2, 4, 4], [1] * 6, [False, False, False, False, True, False], 64, True, True, 256)
    torch.manual_seed(0)
    unet = UNet(config).eval().requires_grad_(False)
    for parameter in unet.parameters():
        torch.nn.init.normal_(parameter, std=0.02)
    if impl == "official":
        unet = official_unet(model, unet.state_dict(), official_code)  # float32 only (see main)
    elif dtype != torch.float32:
        unet.set_torso_dtype(dtype)
    unet = unet.to(device)
    if impl == "channels-last":
        unet = unet.to(memory_format=torch.channels_last)
    elif impl == "compile":
        unet = torch.compile(unet)
    return unet, config.image_size


def official_unet(model: str, state_dict: dict, official_code: str | None):
    """The official UNet code (DifFace's models/unet.py, which also builds DR2's ADM configuration)."""
    if not official_code:
        raise SystemExit("impl official needs --official-code DIR (a DifFace checkout)")
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from sampler_accuracy import official_unet_class

    UNetModel = official_unet_class(official_code)

    if model == "difface":
        options = dict(image_size=512, model_channels=32, num_res_blocks=[1, 2, 2, 2, 2, 3, 4], attention_resolutions=[32, 16, 8],
                       channel_mult=[1, 2, 4, 8, 8, 16, 16], resblock_updown=False)
    else:  # DR2's ADM: attention at 16 px of 256, one res block per level, res-block up/down
        options = dict(image_size=256, model_channels=128, num_res_blocks=[1] * 6, attention_resolutions=[16],
                       channel_mult=[1, 1, 2, 2, 4, 4], resblock_updown=True)
    unet = UNetModel(in_channels=3, out_channels=6, dropout=0, conv_resample=True, dims=2, use_fp16=False, num_head_channels=64,
                     use_scale_shift_norm=True, use_new_attention_order=False, **options).eval().requires_grad_(False)
    unet.load_state_dict(state_dict)
    return unet


def synchronize(device: str):
    if device == "cuda":
        torch.cuda.synchronize()


def measure_one(model: str, device: str, dtype_name: str, batch: int, repeats: int, impl: str = "exact",
                official_code: str | None = None) -> dict:
    import_pack()
    from diffusion_face_restore.diffusion.lowpass import LowPass
    from diffusion_face_restore.diffusion.samplers import p_mean_log_variance, predict_x0
    from diffusion_face_restore.diffusion.schedule import Schedule

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    unet, size = build(model, dtype, device, impl, official_code)
    x = torch.randn(batch, 3, size, size, device=device)
    if impl == "channels-last":
        x = x.contiguous(memory_format=torch.channels_last)
    schedule = Schedule("ddim250" if model == "difface" else "100")
    k = 99 if model == "difface" else 42
    timesteps = torch.full((batch,), int(schedule.timestep_map[k]), device=device)
    lowpass = LowPass(size, 4)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def step():
        with torch.no_grad():
            out = unet(x, timesteps)
            if model == "difface":
                predict_x0(schedule, x, k, out[:, :3].float())
            else:
                p_mean_log_variance(schedule, x, k, out)

    def guidance():
        lowpass(x) - lowpass(x)

    step()  # warm-up
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        synchronize(device)
        times.append(time.perf_counter() - start)
    lowpass_times = []
    for _ in range(repeats):
        start = time.perf_counter()
        guidance()
        synchronize(device)
        lowpass_times.append(time.perf_counter() - start)
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2 ** 20
    else:
        peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) / 1024
    return {
        "model": model, "device": device, "dtype": dtype_name, "batch": batch, "impl": impl,
        "step_s": statistics.median(times), "lowpass_s": statistics.median(lowpass_times), "peak_mb": peak,
    }


def table(results: list[dict]):
    official = {(r["model"], r["device"], r["dtype"], r["batch"]): r["step_s"] for r in results if r["impl"] == "official"}
    print("| model | device | dtype | batch | convolutions | s / step | x official code | s / step / face | s / face, whole run | peak memory MB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        reference = official.get((r["model"], r["device"], r["dtype"], r["batch"]))
        ratio = f"x{reference / r['step_s']:.2f}" if reference else "-"
        per_face_step = r["step_s"] / r["batch"]
        if r["model"] == "difface":
            runs = f"{DIFFACE_CALLS * per_face_step:.1f} (K=100, ddim250)"
        else:
            from diffusion_face_restore.diffusion.dr2 import automatic_omega

            parts = []
            for factor, tau in DR2_SETTINGS:
                calls = automatic_omega(factor, tau) - tau + 1
                parts.append(f"{calls * (r['step_s'] + r['lowpass_s']) / r['batch']:.1f} ({factor},{tau})")
            runs = ", ".join(parts)
        print(f"| {r['model']} | {r['device']} | {r['dtype']} | {r['batch']} | {r['impl']} | {r['step_s']:.3f} | {ratio} | "
              f"{per_face_step:.3f} | {runs} | {r['peak_mb']:.0f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="all", choices=["cpu", "cuda", "all"])
    parser.add_argument("--batches", default="1,4,8")
    parser.add_argument("--dtypes", default="fp32,bf16")
    parser.add_argument("--models", default="difface,dr2")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--impls", default="exact,channels-last", help="exact, channels-last, compile, official")
    parser.add_argument("--official-code", help="a DifFace checkout, for --impls official")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: one configuration, JSON out
    args = parser.parse_args()
    if args.one:
        model, device, dtype, batch, impl = args.one.split(":")
        print(json.dumps(measure_one(model, device, dtype, int(batch), args.repeats, impl, args.official_code)))
        return
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    devices = [d for d in devices if d == "cpu" or torch.cuda.is_available()]
    results = []
    for device in devices:
        for model in args.models.split(","):
            for dtype in args.dtypes.split(","):
                for batch in (int(b) for b in args.batches.split(",")):
                    for impl in args.impls.split(","):
                        if impl == "official" and dtype != "fp32":
                            continue  # the official code's fp16 mode is its own (convert_to_fp16), not bf16
                        spec = f"{model}:{device}:{dtype}:{batch}:{impl}"
                        command = [sys.executable, __file__, "--one", spec, "--repeats", str(args.repeats)]
                        if args.official_code:
                            command += ["--official-code", args.official_code]
                        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
                        results.append(json.loads(output.strip().splitlines()[-1]))
                        print("measured", spec, file=sys.stderr)
    import_pack()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads" + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""))
    table(results)


if __name__ == "__main__":
    main()
