"""Throughput of `dfr.py batch --workflow` in one process against a local Ray cluster, and what the
distribution costs per photo.

The workflow: the DR2 fast template (6 UNet calls per face) with the built-in MTCNN detector and
the reduced official-layout DR2 and SPARNetHD networks of ../shared/golden under the official file
names (the real graph, small networks); the photos: the shared whole photos, copied to `--photos`.
Reported: wall time (Ray: including starting the cluster and its workers), photos per second, the
median seconds a photo takes inside its process (from the manifest), and the overhead per photo
(wall x processes / photos - that median).

    python benchmarks/ray_throughput.py [--photos 24] [--workers 2]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))  # testdata
from pack_import import import_pack, shared_dir  # noqa: E402

import_pack()
from diffusion_face_restore import runtime  # noqa: E402
from diffusion_face_restore.headless.batch import run_workflow_batch  # noqa: E402
from diffusion_face_restore.restore.outcomes import read_manifest  # noqa: E402
from diffusion_face_restore.headless.distributed import run_workflow_batch_on_ray  # noqa: E402
from testdata import template_with_reduced_models  # noqa: E402

TEMPLATE = "DR2 fast restoration - 6 UNet calls"  # run on MTCNN with the reduced networks


def prepare(work: str, shared: str, count: int) -> tuple[str, str, str]:
    workflow, models = template_with_reduced_models(work, TEMPLATE)
    photos = os.path.join(work, "photos")
    os.makedirs(photos)
    whole = os.path.join(shared, "images", "whole")
    names = sorted(os.listdir(whole))
    for index in range(count):
        name = names[index % len(names)]
        stem, ext = os.path.splitext(name)
        shutil.copy(os.path.join(whole, name), os.path.join(photos, f"{stem}_{index:03d}{ext}"))
    return models, workflow, photos


def row(label: str, processes: int, wall: float, out: str, count: int) -> str:
    inside = statistics.median(r["seconds"] for r in read_manifest(out).values())
    overhead = wall * processes / count - inside
    return f"| {label} | {processes} | {wall:.1f} | {count / wall:.2f} | {inside:.2f} | {overhead:.2f} |"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=24)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    shared = shared_dir()
    if shared is None:
        sys.exit("needs ../shared (or $DFR_SHARED_DIR) for the photos and the reduced networks")
    with tempfile.TemporaryDirectory() as work:
        models, workflow, photos = prepare(work, shared, args.photos)
        runtime.set_models_dir(models)
        quiet = lambda *_: None  # noqa: E731
        start = time.perf_counter()
        run_workflow_batch(workflow, photos, os.path.join(work, "one"), report=quiet)
        one = time.perf_counter() - start
        start = time.perf_counter()
        result = run_workflow_batch_on_ray(workflow, photos, os.path.join(work, "ray"), "local", args.workers, report=quiet)
        distributed = time.perf_counter() - start
        assert len(result["done"]) == args.photos, result
        print(f"{args.photos} photos, {os.cpu_count()} CPUs; DR2 fast template, MTCNN, reduced networks\n")
        print("| run | processes | wall s | photos/s | s per photo inside its process (median) | overhead s per photo |")
        print("|---|---|---|---|---|---|")
        print(row("one process", 1, one, os.path.join(work, "one"), args.photos))
        print(row(f"local Ray, {args.workers} workers", args.workers, distributed, os.path.join(work, "ray"), args.photos))
        print(f"\nRay / one process: x{one / distributed:.2f} throughput")


if __name__ == "__main__":
    main()
