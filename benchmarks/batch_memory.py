"""Memory a batch needs per pixel of a photo: the figure behind `dfr batch`'s default pixel limit
(restore/photos.py, BATCH_BYTES_PER_PIXEL: the machine's memory / bytes per pixel).

Each run is a fresh process running `dfr.py batch` on one photo: a real face photo (a shared whole
photo) placed on a canvas of N megapixels (the rest a copy of the photo's blurred edges, so the
detector scans real texture). Measured: the process's peak resident memory (ru_maxrss) minus that of
the same batch on a 0.25 MP photo, divided by the added pixels. Workflows: the face template (MTCNN,
no weights) and the DR2 fast template (MTCNN, the reduced DR2 and SPARNetHD networks of
../shared/golden under the official names), both through `--workflow`.

    python benchmarks/batch_memory.py [--megapixels 4 16 36]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

from PIL import Image, ImageFilter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))  # testdata
from pack_import import import_pack, shared_dir  # noqa: E402

import_pack()
from testdata import template_with_reduced_models  # noqa: E402

FACE_CROP = os.path.join(ROOT, "workflows", "Face crop and paste - no weights needed.json")
MEASURE = """
import resource, runpy, sys
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit:
    pass
print("PEAK", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, file=sys.stderr)
"""


def canvas(photo: Image.Image, megapixels: float) -> Image.Image:
    side = int((megapixels * 1e6) ** 0.5)
    background = photo.resize((side, side), Image.BILINEAR).filter(ImageFilter.GaussianBlur(8))
    background.paste(photo, ((side - photo.width) // 2, (side - photo.height) // 2))
    return background


def peak_bytes(workflow: str, photo: str, work: str, models: str | None) -> int:
    folder, out = os.path.join(work, "in"), os.path.join(work, "out")
    for path in (folder, out):
        if os.path.isdir(path):
            for name in os.listdir(path):
                os.remove(os.path.join(path, name))
    os.makedirs(folder, exist_ok=True)
    os.link(photo, os.path.join(folder, os.path.basename(photo)))
    command = [sys.executable, "-c", MEASURE, os.path.join(ROOT, "dfr.py"), "batch", "--workflow", workflow, folder, out,
               "--max-megapixels", "1000"] + (["--models-dir", models] if models else [])
    run = subprocess.run(command, capture_output=True, text=True)
    with open(os.path.join(out, "manifest.jsonl"), encoding="utf-8") as handle:
        record = json.loads(handle.readline())
    assert record["status"] == "done", record
    return int(run.stderr.strip().splitlines()[-1].split()[1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megapixels", type=float, nargs="+", default=[4, 16, 36])
    args = parser.parse_args()
    source = Image.open(os.path.join(shared_dir(), "images", "whole", "difface_whole_00.jpg")).convert("RGB")
    with tempfile.TemporaryDirectory() as work:
        dr2, models = template_with_reduced_models(work, "DR2 fast restoration - 6 UNet calls")
        print("| workflow | photo | peak memory | bytes per added pixel |\n|---|---|---|---|")
        for name, workflow, folder in (("face template", FACE_CROP, None), ("DR2 fast (reduced networks)", dr2, models)):
            photos = {}
            for megapixels in [0.25, *args.megapixels]:
                path = os.path.join(work, f"photo_{megapixels:g}mp.png")
                canvas(source, megapixels).save(path, compress_level=1)
                photos[megapixels] = path
            base = peak_bytes(workflow, photos[0.25], os.path.join(work, "run"), folder)
            for megapixels in args.megapixels:
                peak = peak_bytes(workflow, photos[megapixels], os.path.join(work, "run"), folder)
                pixels = Image.open(photos[megapixels]).size
                added = pixels[0] * pixels[1] - Image.open(photos[0.25]).size[0] * Image.open(photos[0.25]).size[1]
                print(f"| {name} | {megapixels:g} MP | {peak / 2 ** 30:.2f} GiB | {(peak - base) / added:.0f} |")


if __name__ == "__main__":
    main()
