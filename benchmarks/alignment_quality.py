"""Are our crops the crops the priors were trained on? Every detector's aligned crop against the crop
FFHQ's own procedure cuts from dlib's 68 landmarks.

FFHQ (the data DifFace's and DR2's priors learnt faces from) was aligned by the FFHQ dataset's script
(`recreate_aligned_images` in NVlabs/ffhq-dataset): dlib's 68 points give the eye centres and the
mouth corners, and those an oriented square (the quad) that becomes the 1024 px image. That quad is
the reference here. For every detector the pack offers (Haar, MTCNN, the built-in RetinaFace, and the
downloaded RetinaFace files when --models-dir holds them), FaceDetect's crop of the same face
(`estimate_alignment` from its five landmarks) is a square in the photo too; measured per face:

- corner displacement: the mean distance of the crop's four corners from the quad's, as % of the
  quad's side (0 = the same pixels);
- rotation error (degrees) and scale error (% of the side) of the crop against the quad;
- faces found: reference faces that have a detection (its box holds the reference's eye midpoint);
- time per photo (median, this machine).

Photos: the shared whole photos, skimage's astronaut, matplotlib's Grace Hopper, and every
--frame-step-th frame of the four shared clips (each frame a photo); the reference faces are those
dlib's HOG detector finds there. dlib and its 68-point model are a measuring instrument only (the
model's licence excludes commercial use): they are never a requirement of the pack.

    pip install --no-deps dlib-bin==20.0.1.post1 face-recognition-models==0.3.0
    python benchmarks/alignment_quality.py [--frame-step 10] [--models-dir DIR] [--per-photo]
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import importlib.util
import os
import statistics
import sys
import time

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pack_import import import_pack, shared_dir  # noqa: E402

import_pack()
from diffusion_face_restore import runtime  # noqa: E402
from diffusion_face_restore.face import alignment  # noqa: E402
from diffusion_face_restore.restore.faces import HAAR, MTCNN, RETINAFACE_BUILTIN, detector_check, make_detector  # noqa: E402

DETECTORS = (HAAR, MTCNN, RETINAFACE_BUILTIN, "retinaface_mobile0.25", "retinaface_resnet50")
MIN_SCORE = 0.8  # FaceDetect's default min_confidence
CROP_SIZE = 512
INSTALL = "pip install --no-deps dlib-bin==20.0.1.post1 face-recognition-models==0.3.0"
PREDICTOR_SHA256 = "fbdc2cb80eb9aa7a758672cbfdda32ba6300efe9b6e6c7a299ff7e736b11b92f"


def ffhq_quad(points: np.ndarray) -> np.ndarray:
    """FFHQ's crop square from dlib's 68 landmarks (pixel centres on integers), as in
    ffhq-dataset's recreate_aligned_images: corners top-left, bottom-left, bottom-right, top-right,
    on the crop's outer pixel edges."""
    eye_left, eye_right = points[36:42].mean(0), points[42:48].mean(0)
    eye_avg, eye_to_eye = (eye_left + eye_right) * 0.5, eye_right - eye_left
    mouth_avg = (points[48] + points[54]) * 0.5
    eye_to_mouth = mouth_avg - eye_avg
    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
    x /= np.hypot(*x)
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.flipud(x) * [-1, 1]
    c = eye_avg + eye_to_mouth * 0.1
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


def crop_quad(landmarks: np.ndarray) -> np.ndarray:
    """FaceDetect's crop as a square in the photo, corners in ffhq_quad's order and convention."""
    inverse = alignment.invert_affine(alignment.estimate_alignment(landmarks, CROP_SIZE))
    edge = CROP_SIZE - 0.5
    corners = np.array([[-0.5, -0.5], [-0.5, edge], [edge, edge], [edge, -0.5]])
    return corners @ inverse[:, :2].T + inverse[:, 2]


def quad_errors(ours: np.ndarray, reference: np.ndarray) -> tuple[float, float, float]:
    """(corner displacement % of the side, rotation error in degrees, scale error % of the side)."""
    side = np.linalg.norm(reference[3] - reference[0])
    displacement = np.linalg.norm(ours - reference, axis=1).mean() / side * 100
    top_ours, top_reference = ours[3] - ours[0], reference[3] - reference[0]
    angle = np.degrees(np.arctan2(top_ours[1], top_ours[0]) - np.arctan2(top_reference[1], top_reference[0]))
    angle = (angle + 180) % 360 - 180
    scale = (np.linalg.norm(top_ours) / side - 1) * 100
    return float(displacement), float(abs(angle)), float(abs(scale))


class Reference:
    """dlib's HOG face detector and 68-point predictor (face-recognition-models' file)."""

    def __init__(self):
        try:
            import dlib
        except ImportError:
            sys.exit(f"needs dlib: {INSTALL}")
        # the model's path without importing face_recognition_models (which needs pkg_resources)
        spec = importlib.util.find_spec("face_recognition_models")
        if spec is None or not spec.submodule_search_locations:
            sys.exit(f"needs dlib's 68-point model: {INSTALL}")
        path = os.path.join(list(spec.submodule_search_locations)[0], "models", "shape_predictor_68_face_landmarks.dat")
        with open(path, "rb") as file:
            if hashlib.sha256(file.read()).hexdigest() != PREDICTOR_SHA256:
                sys.exit(f"{path} is not face-recognition-models 0.3.0's 68-point model (sha256 differs)")
        self.detector, self.predictor = dlib.get_frontal_face_detector(), dlib.shape_predictor(path)
        self.dlib = dlib

    def quads(self, photo: np.ndarray) -> list[np.ndarray]:
        quads = []
        for rectangle in self.detector(photo, 1):
            shape = self.predictor(photo, rectangle)
            quads.append(ffhq_quad(np.array([[p.x, p.y] for p in shape.parts()], np.float64)))
        return quads


def load_photos(shared: str, frame_step: int) -> dict[str, np.ndarray]:
    import skimage.data
    from matplotlib import cbook

    photos = {os.path.basename(p): np.array(Image.open(p).convert("RGB")) for p in sorted(glob.glob(os.path.join(shared, "images", "whole", "*")))}
    photos["astronaut"] = skimage.data.astronaut()
    with cbook.get_sample_data("grace_hopper.jpg") as handle:
        photos["grace_hopper"] = np.array(Image.open(handle).convert("RGB"))
    for clip in sorted(glob.glob(os.path.join(shared, "videos", "*.mp4"))):
        capture, index = cv2.VideoCapture(clip), 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if index % frame_step == 0:
                photos[f"{os.path.basename(clip)}#{index}"] = np.ascontiguousarray(frame[..., ::-1])
            index += 1
        capture.release()
    return photos


def measure(detector, photos: dict[str, np.ndarray], references: dict[str, list[np.ndarray]]):
    """Per photo: the errors of each reference face found (None where missed), and the detection time."""
    per_photo, times = {}, []
    for name, photo in photos.items():
        start = time.perf_counter()
        detections = [d for d in detector.detect([photo])[0] if d.score >= MIN_SCORE]
        times.append(time.perf_counter() - start)
        errors = []
        for quad in references[name]:
            centre = quad.mean(0)
            holding = [d for d in detections if d.box[0] <= centre[0] <= d.box[2] and d.box[1] <= centre[1] <= d.box[3]]
            if not holding:
                errors.append(None)
                continue
            nearest = min(holding, key=lambda d: np.linalg.norm(d.landmarks.mean(0) - centre))
            errors.append(quad_errors(crop_quad(nearest.landmarks), quad))
        per_photo[name] = errors
    return per_photo, times


def summary_row(name: str, per_photo: dict, times: list[float]) -> list[str]:
    errors = [e for photo in per_photo.values() for e in photo if e is not None]
    total = sum(len(photo) for photo in per_photo.values())
    if not errors:
        return [name, "-", "-", "-", "-", f"0/{total}", f"{statistics.median(times):.3f}"]
    displacement, rotation, scale = (np.array(values) for values in zip(*errors))
    standard_error = displacement.std(ddof=1) / np.sqrt(len(displacement)) if len(displacement) > 1 else float("nan")
    return [name, f"{displacement.mean():.2f} ± {standard_error:.2f}", f"{np.median(displacement):.2f}", f"{np.percentile(displacement, 90):.2f}",
            f"{rotation.mean():.2f} / {scale.mean():.2f}", f"{len(errors)}/{total} ({100 * len(errors) / total:.0f}%)",
            f"{statistics.median(times):.3f}"]


def print_table(header: list[str], rows: list[list[str]]):
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frame-step", type=int, default=10, help="every how many frames of each clip a frame is measured")
    parser.add_argument("--models-dir", help="a models folder whose facedetection/ holds facexlib's RetinaFace files")
    parser.add_argument("--per-photo", action="store_true", help="also print each photo's corner displacement per detector")
    args = parser.parse_args()
    shared = shared_dir()
    if shared is None:
        sys.exit("needs ../shared (or $DFR_SHARED_DIR) for the real photos and clips")
    if args.models_dir:
        runtime.set_models_dir(args.models_dir)
    reference = Reference()
    photos = load_photos(shared, args.frame_step)
    references = {name: reference.quads(photo) for name, photo in photos.items()}
    print(f"{len(photos)} photos and frames, {sum(map(len, references.values()))} reference faces (dlib 68 points, FFHQ's procedure)")
    results = {}
    for name in DETECTORS:
        if detector_check(name) is not True:
            print(f"{name}: skipped ({detector_check(name)})")
            continue
        results[name] = measure(make_detector(name, MIN_SCORE), photos, references)
    groups = {"whole photos": lambda p: "#" not in p, "clip frames": lambda p: "#" in p, "all": lambda p: True}
    for group, member in groups.items():
        print(f"\n{group}: crop corner displacement from FFHQ's crop, % of its side\n")
        rows = [summary_row(name, {p: e for p, e in per_photo.items() if member(p)}, times)
                for name, (per_photo, times) in results.items()]
        print_table(["detector", "corner displacement (mean ± s.e.)", "median", "90th pct.", "rotation (deg) / scale (%) error",
                     "faces found", "s per photo (median)"], rows)
    if args.per_photo:
        print("\nper photo: mean corner displacement % (faces found / reference faces)\n")
        rows = []
        for photo in photos:
            row = [photo]
            for per_photo, _ in results.values():
                found = [e[0] for e in per_photo[photo] if e is not None]
                row.append(f"{np.mean(found):.2f} ({len(found)}/{len(per_photo[photo])})" if found else f"- (0/{len(per_photo[photo])})")
            rows.append(row)
        print_table(["photo", *results], rows)


if __name__ == "__main__":
    main()
