"""What a face-parsing mask costs in PasteBack: the node on a real 4-face photo, parsing none /
bisenet / parsenet.

The parsers are facexlib's own architectures (facexlib is a test-only install) with random weights,
saved as the released files are laid out: their cost is the network's, whatever the weights. Prints,
per parsing choice, the median time of --repeats PasteBack calls (after one warm-up call), the time
added to `none`, and that per face.

    python benchmarks/paste_speed.py [--repeats 3] [--photo difface_whole_00.jpg]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pack_import import import_pack, shared_dir  # noqa: E402

import_pack()
from diffusion_face_restore import runtime  # noqa: E402
from diffusion_face_restore.restore.faces import HAAR, PARSING_FILES, detect_faces, paste_back  # noqa: E402

# FaceDetect's and PasteBack's defaults (the functions' defaults are the nodes'); the built-in detector
# needs no weights


def write_parsers(folder: str):
    """Random-weight facexlib ParseNet and BiSeNet, saved as the released files are (flat state dicts)."""
    from facexlib.parsing.bisenet import BiSeNet
    from facexlib.parsing.parsenet import ParseNet

    torch.manual_seed(0)
    networks = {"parsenet": ParseNet(in_size=512, out_size=512, parsing_ch=19), "bisenet": BiSeNet(num_class=19)}
    for name, network in networks.items():
        torch.save(network.state_dict(), os.path.join(folder, PARSING_FILES[name]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--photo", default="difface_whole_00.jpg", help="a photo of ../shared/images/whole")
    args = parser.parse_args()
    shared = shared_dir()
    if shared is None:
        sys.exit("needs ../shared (or $DFR_SHARED_DIR) for the photo")
    from PIL import Image

    photo = np.array(Image.open(os.path.join(shared, "images", "whole", args.photo)).convert("RGB"))
    image = torch.from_numpy(photo.astype(np.float32) / 255.0)[None]
    with tempfile.TemporaryDirectory() as models:
        os.mkdir(os.path.join(models, "facedetection"))
        write_parsers(os.path.join(models, "facedetection"))
        runtime.set_models_dir(models)
        faces = detect_faces(image, HAAR)
        crops, count = faces.crops, len(faces)
        print(f"{args.photo}: {photo.shape[1]}x{photo.shape[0]}, {count} faces, torch threads {torch.get_num_threads()}")
        print("| parsing | PasteBack s (median) | added to none s | added per face s |")
        print("|---|---|---|---|")
        baseline = None
        for parsing in ("none", "bisenet", "parsenet"):
            paste_back(image, faces, crops, parsing=parsing)  # warm-up: file read, allocations
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                paste_back(image, faces, crops, parsing=parsing)
                times.append(time.perf_counter() - start)
            median = statistics.median(times)
            baseline = median if baseline is None else baseline
            added = median - baseline
            print(f"| {parsing} | {median:.2f} | {added:.2f} | {added / max(count, 1):.2f} |")
        runtime.set_models_dir(None)


if __name__ == "__main__":
    main()
