"""Time grids for few network calls, tuned on the exact prior (in the spirit of Align Your Steps, Sabour
et al. 2024): for each (sampler, calls), the integer timesteps between DifFace's start t = 400 and 0 that
minimise the fast DifFace protocol's distance to DDIM(eta)'s many-step limit, averaged over the
SELECTION half of the start faces only (benchmarks/fast_difface_protocol.py: real_1's and synthetic_1's
faces) and over tuning seeds the protocol never reports (5000, 5001, ...). The report half is left for
the protocol to judge the grids on (`--spacings auto`).

The search: start from the better of the fixed spacings (uniform t, Karras), then coordinate descent on
the interior timesteps (each moved by +-step while the order holds, kept when the mean distance drops),
the step halving from 32 to 1. With common random numbers (the same seeds for every candidate) the
objective is a deterministic function of the grid.

    python benchmarks/tune_time_grids.py [--samplers sa-solver,dpm++ 2m sde] [--calls 5,6,8,10] [--size 32]
        [--samples 400] [--seeds 2] [--eta 0.5] [--write]

--write stores the grids (fractions of the start timestep) in diffusion/tuned_grids.py, where spacing
auto finds them.
"""
from __future__ import annotations

import argparse
import os
import pprint
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fast_difface_protocol import SELECTION, T_START, Protocol, clip_faces, start_points  # noqa: E402
from pack_import import shared_dir  # noqa: E402

from diffusion_face_restore.diffusion import tuned_grids  # noqa: E402
from diffusion_face_restore.diffusion.exact_prior import GaussianMixturePrior, frechet_distance  # noqa: E402
from diffusion_face_restore.diffusion.fast_solvers import grid_points  # noqa: E402
from diffusion_face_restore.diffusion.schedule import NoiseLevels  # noqa: E402
from diffusion_face_restore.training.evaluation import real_faces  # noqa: E402

TUNING_SEED = 5000
STEPS = (32, 16, 8, 4, 2, 1)


class Objective:
    """Mean distance over the selection faces and tuning seeds for a grid; remembers what it computed."""

    def __init__(self, protocol: Protocol, starts, targets, seeds: int):
        self.protocol, self.starts, self.targets, self.seeds = protocol, starts, targets, seeds
        self.cache: dict[tuple, float] = {}

    def __call__(self, sampler: str, calls: int, ts: tuple) -> float:
        key = (sampler, calls, ts)
        if key not in self.cache:
            distances = [frechet_distance(*self.protocol.fast(start, sampler, calls, "", TUNING_SEED + s, list(ts)), *target)
                         for start, target in zip(self.starts, self.targets) for s in range(self.seeds)]
            self.cache[key] = float(np.mean(distances))
        return self.cache[key]


def tune(objective: Objective, levels: NoiseLevels, sampler: str, calls: int) -> tuple[tuple, float, dict]:
    points = grid_points(sampler, calls)
    fixed = {spacing: tuple(levels.timesteps(T_START, points, spacing)) for spacing in ("uniform t", "karras")}
    fixed = {spacing: ts for spacing, ts in fixed.items() if len(ts) == points}
    scores = {spacing: objective(sampler, calls, ts) for spacing, ts in fixed.items()}
    best = min(scores, key=scores.get)
    grid, score = list(fixed[best]), scores[best]
    for step in STEPS:
        improved = True
        while improved:
            improved = False
            for i in range(1, len(grid) - 1):
                for move in (step, -step):
                    candidate = grid.copy()
                    candidate[i] += move
                    if not grid[i + 1] < candidate[i] < grid[i - 1]:
                        continue
                    value = objective(sampler, calls, tuple(candidate))
                    if value < score - 1e-9:
                        grid, score, improved = candidate, value, True
    return tuple(grid), score, scores


def write(grids: dict):
    path = tuned_grids.__file__
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    head = text[:text.index("TUNED_GRIDS")]
    body = pprint.pformat(grids, width=110, sort_dicts=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(head + f"TUNED_GRIDS: dict[str, dict[int, tuple[float, ...]]] = {body}\n")
    print(f"wrote {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samplers", default="sa-solver")
    parser.add_argument("--calls", default="5,6,8,10")
    parser.add_argument("--size", type=int, default=tuned_grids.TUNED_SIZE)
    parser.add_argument("--samples", type=int, default=400)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--eta", type=float, default=tuned_grids.TUNED_ETA)
    parser.add_argument("--faces-per-clip", type=int, default=3)
    parser.add_argument("--dtype", default="float32", choices=("float64", "float32"))
    parser.add_argument("--write", action="store_true", help="store the grids in diffusion/tuned_grids.py (merged with those there)")
    args = parser.parse_args()
    shared = shared_dir()
    if shared is None:
        sys.exit("needs ../shared (or $DFR_SHARED_DIR) for the real faces and clips")
    levels = NoiseLevels()
    prior = GaussianMixturePrior.fit(real_faces(shared, args.size).double() / 127.5 - 1).to(getattr(torch, args.dtype))
    faces, names = clip_faces(shared, args.size, args.faces_per_clip)
    starts = [start for start, name in zip(start_points(faces, levels), names) if name in SELECTION]
    protocol = Protocol(prior, levels, args.samples, args.eta, torch.device("cpu"))
    targets = [protocol.target_and_floor(start)[0] for start in starts]
    objective = Objective(protocol, starts, targets, args.seeds)
    grids = {sampler: dict(tuned_grids.TUNED_GRIDS.get(sampler, {})) for sampler in args.samplers.split(",")}
    for sampler in grids:
        for calls in (int(n) for n in args.calls.split(",")):
            began = time.time()
            ts, score, fixed = tune(objective, levels, sampler, calls)
            print(f"{sampler}, {calls} calls: {', '.join(f'{k} {v:.3f}' for k, v in fixed.items())} -> tuned {score:.3f} "
                  f"at t = {list(ts)} ({time.time() - began:.0f} s)", flush=True)
            grids[sampler][calls] = tuple(round(t / T_START, 4) for t in ts)
    if args.write:
        write({**tuned_grids.TUNED_GRIDS, **grids})


if __name__ == "__main__":
    main()
