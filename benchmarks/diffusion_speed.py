"""Speed and memory of the face diffusion priors at their real sizes (random weights).

DifFace: the 512 px iDDPM UNet (159.8 M parameters), one DDIM step and a whole default run
(K = 100 of ddim250: 100 UNet calls). DR2: the 256 px ADM UNet (93.6 M), one guided step and
whole runs at the paper's (N, tau) = (4, 22), (8, 35), (16, 35). For batch 1, 4 and 8, float32
and bfloat16, on the CPU and, when there is one, the GPU. Each figure is the median of --repeats
timed runs after a warm-up; a whole run is timed by its steps (per-step median x UNet calls,
plus the low-pass for DR2), which is what it costs since every step is the same work. Peak memory:
the process's peak RSS growth on the CPU (each configuration runs in a fresh process),
torch.cuda.max_memory_allocated on the GPU.

    python benchmarks/diffusion_speed.py [--device cpu|cuda|all] [--batches 1,4,8]
                                         [--dtypes fp32,bf16] [--repeats 3] [--models difface,dr2]
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


def build(model: str, dtype: torch.dtype, device: str):
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
    if dtype != torch.float32:
        unet.set_torso_dtype(dtype)
    return unet.to(device), config.image_size


def synchronize(device: str):
    if device == "cuda":
        torch.cuda.synchronize()


def measure_one(model: str, device: str, dtype_name: str, batch: int, repeats: int) -> dict:
    import_pack()
    from diffusion_face_restore.diffusion.lowpass import LowPass
    from diffusion_face_restore.diffusion.samplers import p_mean_log_variance, predict_x0
    from diffusion_face_restore.diffusion.schedule import Schedule

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    unet, size = build(model, dtype, device)
    x = torch.randn(batch, 3, size, size, device=device)
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
        "model": model, "device": device, "dtype": dtype_name, "batch": batch,
        "step_s": statistics.median(times), "lowpass_s": statistics.median(lowpass_times), "peak_mb": peak,
    }


def table(results: list[dict]):
    print("| model | device | dtype | batch | s / step | s / step / face | s / face, whole run | peak memory MB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
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
        print(f"| {r['model']} | {r['device']} | {r['dtype']} | {r['batch']} | {r['step_s']:.3f} | {per_face_step:.3f} | {runs} | {r['peak_mb']:.0f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="all", choices=["cpu", "cuda", "all"])
    parser.add_argument("--batches", default="1,4,8")
    parser.add_argument("--dtypes", default="fp32,bf16")
    parser.add_argument("--models", default="difface,dr2")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: one configuration, JSON out
    args = parser.parse_args()
    if args.one:
        model, device, dtype, batch = args.one.split(":")
        print(json.dumps(measure_one(model, device, dtype, int(batch), args.repeats)))
        return
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    devices = [d for d in devices if d == "cpu" or torch.cuda.is_available()]
    results = []
    for device in devices:
        for model in args.models.split(","):
            for dtype in args.dtypes.split(","):
                for batch in (int(b) for b in args.batches.split(",")):
                    spec = f"{model}:{device}:{dtype}:{batch}"
                    output = subprocess.run(
                        [sys.executable, __file__, "--one", spec, "--repeats", str(args.repeats)],
                        capture_output=True, text=True, check=True,
                    ).stdout
                    results.append(json.loads(output.strip().splitlines()[-1]))
                    print("measured", spec, file=sys.stderr)
    import_pack()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads" + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""))
    table(results)


if __name__ == "__main__":
    main()
