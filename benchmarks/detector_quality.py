"""Detector quality on real faces: the built-in Haar cascade, MTCNN and RetinaFace MobileNet-0.25, and
the downloaded RetinaFace files (where they are in the models folder), each through the pack's own
detection path.

- landmark error: FFHQ-aligned real faces (../shared/images/aligned, and their mirror images) under
  random similarity transforms, so the true five landmarks are the FFHQ template moved by the known
  transform (as benchmarks/calibrate_builtin_detector.py makes them); the mean distance of the five
  points, as a fraction of the true eye distance, for the detection that holds the true face centre;
- faces found on the whole photos of ../shared/images/whole;
- frames with a face on the four clips of ../shared/videos;
- time per whole photo (median), this machine.

    python benchmarks/detector_quality.py [--per-image 5] [--seed 0] [--frames N] [--models-dir DIR] [--detectors A,B]
"""
from __future__ import annotations

import argparse
import glob
import os
import statistics
import sys
import time

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from calibrate_builtin_detector import make_samples  # noqa: E402
from pack_import import import_pack, shared_dir  # noqa: E402

import_pack()
from diffusion_face_restore import runtime  # noqa: E402
from diffusion_face_restore.restore.faces import HAAR, MTCNN, RETINAFACE_BUILTIN, detector_check, make_detector  # noqa: E402

DETECTORS = (HAAR, MTCNN, RETINAFACE_BUILTIN, "retinaface_mobile0.25", "retinaface_resnet50")
MIN_SCORE = 0.8  # FaceDetect's default min_confidence


def found(detector, photo):
    return [d for d in detector.detect([photo])[0] if d.score >= MIN_SCORE]


def landmark_errors(detector, samples):
    errors = []
    for photo, truth in samples:
        centre = truth.mean(0)
        hits = [d for d in found(detector, photo) if d.box[0] < centre[0] < d.box[2] and d.box[1] < centre[1] < d.box[3]]
        if hits:
            errors.append(np.linalg.norm(hits[0].landmarks - truth, axis=1).mean() / np.linalg.norm(truth[1] - truth[0]))
    return np.array(errors)


def frames_with_a_face(detector, path, limit):
    capture, frames, with_face = cv2.VideoCapture(path), 0, 0
    while limit is None or frames < limit:
        ok, frame = capture.read()
        if not ok:
            break
        frames += 1
        with_face += bool(found(detector, np.ascontiguousarray(frame[..., ::-1])))
    capture.release()
    return with_face, frames


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-image", type=int, default=5, help="transformed copies of each aligned face (and of its mirror)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frames", type=int, default=None, help="at most this many frames of each clip")
    parser.add_argument("--models-dir", help="where RetinaFace's weights are (models/facedetection)")
    parser.add_argument("--detectors", help=f"comma-separated, of: {', '.join(DETECTORS)} (default: all)")
    args = parser.parse_args()
    shared = shared_dir()
    if shared is None:
        sys.exit("needs ../shared (or $DFR_SHARED_DIR) for the real faces and clips")
    if args.models_dir:
        runtime.set_models_dir(args.models_dir)
    samples = make_samples(sorted(glob.glob(os.path.join(shared, "images", "aligned", "*.png"))), args.per_image, np.random.default_rng(args.seed))
    photos = {os.path.basename(p): np.array(Image.open(p).convert("RGB")) for p in sorted(glob.glob(os.path.join(shared, "images", "whole", "*")))}
    clips = sorted(glob.glob(os.path.join(shared, "videos", "*.mp4")))
    rows = []
    for name in args.detectors.split(",") if args.detectors else DETECTORS:
        if detector_check(name) is not True:
            print(f"{name}: skipped ({detector_check(name)})")
            continue
        detector = make_detector(name, MIN_SCORE)
        errors = landmark_errors(detector, samples)
        times, counts = [], []
        for photo in photos.values():
            start = time.perf_counter()
            counts.append(len(found(detector, photo)))
            times.append(time.perf_counter() - start)
        clip_rows = [frames_with_a_face(detector, clip, args.frames) for clip in clips]
        rows.append([name, f"{errors.mean():.4f}" if len(errors) else "-", f"{np.percentile(errors, 90):.4f}" if len(errors) else "-",
                     f"{len(errors)}/{len(samples)}", " / ".join(map(str, counts)),
                     " / ".join(f"{w}/{n}" for w, n in clip_rows), f"{statistics.median(times):.2f}"])
    print(f"\nlandmark error / eye distance on {len(samples)} transformed aligned faces; faces found on "
          f"{', '.join(photos)}; frames with a face on {', '.join(os.path.basename(c) for c in clips)}\n")
    header = ["detector", "landmark error (mean)", "90th percentile", "faces found", "faces per whole photo",
              "frames with a face", "s per whole photo (median)"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
