"""Train DR-BFR's Degradation Representation Module on the CPU for a few minutes, then measure how
well it tells degradations apart on held-out real faces, and how its severity head scores a ladder
of growing damage (training/evaluation.py).

Faces: ../shared/images (aligned crops and the faces found in the whole photos), scikit-image's
astronaut and matplotlib's Grace Hopper; every third face is held out. The untrained network is
measured too, as the baseline.

    python benchmarks/drm_quality.py [--minutes 4 | --steps N] [--size 256] [--seed 0] [--out runs/drm_quality]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pack_import import import_pack, shared_dir  # noqa: E402

import_pack()
from diffusion_face_restore.models.degradation import DegradationModel, DRMConfig  # noqa: E402
from diffusion_face_restore.training.config import Stage1Config  # noqa: E402
from diffusion_face_restore.training.data import FaceImages  # noqa: E402
from diffusion_face_restore.training.evaluation import CLASSES, evaluate, ladder_true_scores, real_faces, severity_ladder  # noqa: E402
from diffusion_face_restore.training.stage1 import train_stage1  # noqa: E402


def split(faces: torch.Tensor):
    held_out = torch.arange(faces.shape[0]) % 3 == 2
    return faces[~held_out], faces[held_out]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=4.0)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=0, help="a fixed number of steps instead of --minutes")
    parser.add_argument("--out", default=os.path.join("runs", "drm_quality"))
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    faces = real_faces(shared_dir(), args.size)
    train, test = split(faces)
    config = Stage1Config(
        out_dir=args.out, size=args.size, crop=64, preset="drm", groups=4, faces_per_group=4, steps=args.steps or 100000,
        lr=1e-3, widths=[32, 64, 128, 128], dim=128, seed=args.seed, max_minutes=0 if args.steps else args.minutes, checkpoint_every=100000, device="cpu",
    )
    untrained = DegradationModel(DRMConfig(dim=config.dim, widths=list(config.widths)))
    baseline = evaluate(untrained, train, test)
    start = time.monotonic()
    result = train_stage1(config, FaceImages(train), log=lambda message: print(message, file=sys.stderr))
    trained = evaluate(result["model"], train, test)
    print(f"{faces.shape[0]} real faces ({train.shape[0]} for training, {test.shape[0]} held out), {len(CLASSES)} degradation classes, "
          f"{result['step']} steps in {(time.monotonic() - start) / 60:.1f} min on the CPU")
    print("| DRM | pair AUC (chance 0.5) | centroid accuracy (chance 0.125) |")
    print("|---|---|---|")
    print(f"| untrained | {baseline['pair_auc']:.3f} | {baseline['centroid_accuracy']:.3f} |")
    print(f"| trained | {trained['pair_auc']:.3f} | {trained['centroid_accuracy']:.3f} |")
    ladder = severity_ladder(result["model"], test).mean(1)
    print("\nSeverity ladder (held-out faces, all four kinds of damage growing together): score per step")
    print("| step | 1 | 2 | 3 | 4 | 5 |")
    print("|---|---|---|---|---|---|")
    print("| true | " + " | ".join(f"{s:.2f}" for s in ladder_true_scores()) + " |")
    print("| trained head | " + " | ".join(f"{s:.2f}" for s in ladder.tolist()) + " |")


if __name__ == "__main__":
    main()
