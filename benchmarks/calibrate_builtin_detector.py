"""Calibrate and measure the built-in (Haar) detector's landmark model on real faces.

The FFHQ-aligned real faces in ../shared/images/aligned have their five landmarks at the FFHQ
template, so random similarity transforms of them (and of their mirror images) give photos with
known landmarks. This script fits the constants of face/detection/haar.py on half of the faces,
reports the landmark error on the other half, then prints the constants fitted on all faces.

    python benchmarks/calibrate_builtin_detector.py [--per-image 10] [--seed 0]
"""
from __future__ import annotations

import argparse
import glob
import os
import sys

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pack_import import import_pack, shared_dir  # noqa: E402

import_pack()
from diffusion_face_restore.face import alignment  # noqa: E402
from diffusion_face_restore.face.detection import haar  # noqa: E402

MIRROR = [1, 0, 2, 4, 3]  # landmark order after a horizontal flip


def make_samples(paths, per_image, rng, canvas=600):
    samples = []
    for path in paths:
        image = np.array(Image.open(path).convert("RGB"))
        size = image.shape[0]
        template = alignment.ffhq_template(size)
        for flip in (False, True):
            photo, truth = image, template
            if flip:
                photo = image[:, ::-1].copy()
                truth = template.copy()
                truth[:, 0] = size - 1 - truth[:, 0]
                truth = truth[MIRROR]
            for _ in range(per_image):
                angle, scale = rng.uniform(-10, 10), rng.uniform(0.25, 1.2)
                matrix = cv2.getRotationMatrix2D((size / 2, size / 2), angle, scale)
                matrix[:, 2] += canvas / 2 - size / 2 + rng.uniform(-40, 40, 2)
                warped = cv2.warpAffine(photo, matrix, (canvas, canvas), borderMode=cv2.BORDER_REFLECT101)
                samples.append((warped, truth @ matrix[:, :2].T + matrix[:, 2]))
    return samples


def measure(samples):
    """Raw observations: the matching Haar box and eye boxes for each sample with a found face."""
    observations = []
    for photo, truth in samples:
        gray = cv2.equalizeHist(cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY))
        boxes, _ = haar._cascade(haar.FACE_CASCADE).detectMultiScale2(gray, 1.1, 3, minSize=(24, 24))
        centre = truth.mean(0)
        inside = [b for b in np.asarray(boxes).reshape(-1, 4) if b[0] < centre[0] < b[0] + b[2] and b[1] < centre[1] < b[1] + b[3]]
        if inside:
            box = max(inside, key=lambda b: b[2])
            observations.append((gray, box, truth, haar.detect_eyes(gray, box)))
    return observations


def fit(observations):
    relative = np.array([[(t[:, 0] - b[0]) / b[2], (t[:, 1] - b[1]) / b[3]] for _, b, t, _ in observations])
    box_landmarks = relative.mean(0).T
    offsets = []
    for _, _, truth, eyes in observations:
        for centre, width in eyes:
            distances = np.linalg.norm(truth[:2] - centre, axis=1)
            if distances.min() < 0.6 * width:
                offsets.append((truth[distances.argmin()] - centre) / width)
    return box_landmarks, np.mean(offsets, axis=0)


def errors(observations, use_eyes=True):
    """Mean landmark error of each observation, as a fraction of the true eye distance."""
    result, with_pair = [], 0
    for gray, box, truth, _ in observations:
        landmarks = haar.box_landmarks(box)
        if use_eyes:
            pair = haar.pick_eye_pair(haar.eye_centre_candidates(gray, box), landmarks, box[2])
            if pair is not None:
                with_pair += 1
                landmarks = haar.refine_with_eyes(landmarks, *pair)
        result.append(np.linalg.norm(landmarks - truth, axis=1).mean() / np.linalg.norm(truth[1] - truth[0]))
    return np.array(result), with_pair


def apply(constants):
    box_landmarks, offset, position_weight, scale_weight = constants
    haar.BOX_LANDMARKS, haar.EYE_BOX_CENTER_OFFSET = box_landmarks, offset
    haar.EYE_POSITION_WEIGHT, haar.EYE_SCALE_WEIGHT = position_weight, scale_weight


def fit_all(observations):
    box_landmarks, offset = fit(observations)
    best = None
    for position_weight in (0.0, 0.25, 0.5, 0.75):
        for scale_weight in (0.0, 0.25, 0.5):
            apply((box_landmarks, offset, position_weight, scale_weight))
            score = errors(observations)[0].mean()
            if best is None or score < best[0]:
                best = (score, position_weight, scale_weight)
    return box_landmarks, offset, best[1], best[2]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-image", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    shared = shared_dir()
    if shared is None:
        sys.exit("needs ../shared/images/aligned (or DFR_SHARED_DIR)")
    paths = sorted(glob.glob(os.path.join(shared, "images", "aligned", "*.png")))
    rng = np.random.default_rng(args.seed)
    fit_paths, test_paths = paths[0::2], paths[1::2]
    fit_obs = measure(make_samples(fit_paths, args.per_image, rng))
    test_samples = make_samples(test_paths, args.per_image, rng)
    test_obs = measure(test_samples)

    apply(fit_all(fit_obs))
    box_only, _ = errors(test_obs, use_eyes=False)
    refined, pairs = errors(test_obs)
    print(f"held-out: faces found {len(test_obs)}/{len(test_samples)}, eye pair found in {pairs}")
    print("| landmark model | mean error / eye distance | 90th percentile |")
    print("|---|---|---|")
    print(f"| box only | {box_only.mean():.4f} | {np.percentile(box_only, 90):.4f} |")
    print(f"| box + eye pair (shipped) | {refined.mean():.4f} | {np.percentile(refined, 90):.4f} |")

    box_landmarks, offset, position_weight, scale_weight = fit_all(fit_obs + test_obs)
    print("\nconstants fitted on all faces (face/detection/haar.py):")
    print("BOX_LANDMARKS =", np.array2string(np.round(box_landmarks, 4), separator=", "))
    print("EYE_BOX_CENTER_OFFSET =", np.array2string(np.round(offset, 4), separator=", "))
    print("EYE_POSITION_WEIGHT =", position_weight, " EYE_SCALE_WEIGHT =", scale_weight)


if __name__ == "__main__":
    main()
