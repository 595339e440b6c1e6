"""Video stability: landmark jitter of per-frame detection against FaceTrack, on real clips and on a
clip made from a real photo along a known camera path; flicker of the pasted result; memory over a
long clip.

- landmark jitter: the RMS of the landmarks' second difference over time (their acceleration, which
  a smooth head motion keeps small), and their mean frame-to-frame displacement, both in eye
  distances; on the synthetic path also the RMS error to the true landmarks and the lag (the frame
  shift that best aligns the track with the truth);
- flicker: the mean absolute frame-to-frame change of the pasted result inside the face region,
  divided by the input's (1 = as steady as the input), with an identity restorer (crops pasted back
  unchanged) and with DR2's sampler (the reduced official-layout test network of ../shared/golden,
  respacing 25) drawing independent noise per frame or the same noise per person, with and without
  FaceTemporalBlend; and, since a random-weight network is no denoiser, the same on the exact
  reference prior (a Gaussian mixture fitted to real faces) for DR2 and DifFace's fast sampler, on
  a moving real clip and on a still face with fresh noise per frame, also in aligned space (each
  person's restored crop against the input crop, frame to frame: the motion taken out);
- FaceTemporalBlend's cost: with the identity restorer on a real clip, how far it moves the face
  region from the input (after a low-pass that ignores grain);
- memory: peak resident memory of `dfr.py batch`'s video path (identity restorer) on 60 and 300
  frames (each in a fresh process).

    python benchmarks/video_stability.py [--frames 90] [--skip-memory] [--only-exact | --only-blend-cost]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

import cv2
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))  # testdata
from pack_import import import_pack, shared_dir  # noqa: E402

import_pack()
from diffusion_face_restore.degradations.camera_path import camera_path, moved_points, render_clip  # noqa: E402
from diffusion_face_restore.face.detection.haar import HaarDetector  # noqa: E402
from diffusion_face_restore.face.find import detect_frames, faces_from_tracks, find_faces  # noqa: E402
from diffusion_face_restore.face.tracking import link_tracks, smooth_tracks  # noqa: E402
# PasteBack's defaults throughout (the function's defaults are the node's): no parsing, facexlib's
# erosion and feather
from diffusion_face_restore.restore.faces import blend_over_time, paste_back  # noqa: E402


def read_video(path: str, limit: int | None = None) -> torch.Tensor:
    capture, frames = cv2.VideoCapture(path), []
    while limit is None or len(frames) < limit:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame[..., ::-1].astype(np.float32) / 255)
    capture.release()
    return torch.from_numpy(np.stack(frames))


def jitter(points: np.ndarray, eye: float) -> tuple[float, float]:
    """(RMS second difference, mean displacement) of [T, 5, 2] points with NaN gaps, in eye distances."""
    acceleration = points[2:] - 2 * points[1:-1] + points[:-2]
    velocity = points[1:] - points[:-1]
    return (float(np.sqrt(np.nanmean((acceleration ** 2).sum(-1)))) / eye, float(np.nanmean(np.sqrt((velocity ** 2).sum(-1)))) / eye)


def per_track_landmarks(frames_faces, count: int) -> dict[int, np.ndarray]:
    tracks = {}
    for t, faces in enumerate(frames_faces):
        for track, landmarks in faces:
            tracks.setdefault(track, np.full((count, 5, 2), np.nan))[t] = landmarks
    return tracks


def real_clips(detector, smoothing: float):
    rows = []
    folder = os.path.join(shared_dir() or "", "videos")
    for name in ("real_1.mp4", "real_2.mp4"):
        path = os.path.join(folder, name)
        if not os.path.exists(path):
            continue
        clip = read_video(path)
        detections = detect_frames(clip, detector, min_score=0.8, min_size=16)
        tracks = link_tracks(detections)
        raw = per_track_landmarks([[(t.id, t.observations[f].landmarks) for t in tracks if f in t.observations and len(t.observations) >= 3]
                                   for f in range(len(clip))], len(clip))
        smooth = per_track_landmarks([[(f.track, f.landmarks) for f in frame] for frame in smooth_tracks(tracks, len(clip), smoothing, 3)], len(clip))
        for track in sorted(raw):
            if np.isfinite(raw[track][:, 0, 0]).sum() < 20:
                continue
            eye = float(np.nanmedian(np.linalg.norm(raw[track][:, 1] - raw[track][:, 0], axis=-1)))
            (raw_acc, raw_vel), (smooth_acc, smooth_vel) = jitter(raw[track], eye), jitter(smooth[track], eye)
            frames = int(np.isfinite(raw[track][:, 0, 0]).sum())
            rows.append([name, str(track), str(frames), f"{raw_acc:.4f} / {raw_vel:.4f}", f"{smooth_acc:.4f} / {smooth_vel:.4f}",
                         f"{raw_acc / smooth_acc:.1f}x"])
    return rows


def synthetic_path(photo: np.ndarray, detector, frames: int):
    affines = camera_path(frames, photo.shape[:2])
    clip = render_clip(photo, affines, noise=6, jpeg=70, seed=0)
    still = detect_frames(torch.from_numpy(photo.astype(np.float32) / 255)[None], detector, min_score=0.8, min_size=16)[0][0]
    truth = moved_points(still.landmarks, affines)
    eye = float(np.linalg.norm(still.landmarks[1] - still.landmarks[0]))
    detections = detect_frames(clip, detector, min_score=0.8, min_size=16)

    def measure(points):
        error = float(np.sqrt(np.nanmean(((points - truth) ** 2).sum(-1)))) / eye
        lags = {s: np.nanmean((points[max(0, s):frames + min(0, s)] - truth[max(0, -s):frames - max(0, s)]) ** 2) for s in range(-3, 4)}
        return error, jitter(points, eye)[0], min(lags, key=lags.get)

    rows = []
    raw = np.full((frames, 5, 2), np.nan)
    for t, found in enumerate(detections):
        if found:
            raw[t] = found[0].landmarks
    error, acc, lag = measure(raw)
    rows.append(["per-frame detection", f"{error:.3f}", f"{acc:.4f}", str(lag)])
    for smoothing in (0.25, 0.5, 0.75):
        tracked = smooth_tracks(link_tracks(detections), frames, smoothing)
        points = np.full((frames, 5, 2), np.nan)
        for t, faces in enumerate(tracked):
            if faces:
                points[t] = faces[0].landmarks
        error, acc, lag = measure(points)
        rows.append([f"FaceTrack, smoothing {smoothing}", f"{error:.3f}", f"{acc:.4f}", str(lag)])
    rows.append(["(the true path itself)", "0", f"{jitter(truth, eye)[0]:.4f}", "0"])
    return rows, clip, detections


def flicker(clip: torch.Tensor, pasted: torch.Tensor, mask: torch.Tensor) -> float:
    """Frame-to-frame change of the result inside the faces, relative to the input's."""
    region = (mask[1:] * mask[:-1])[..., None]
    change = ((pasted[1:] - pasted[:-1]).abs() * region).sum()
    reference = ((clip[1:] - clip[:-1]).abs() * region).sum()
    return float(change / reference)


def flicker_table(clip: torch.Tensor, detections, detector):
    from diffusion_face_restore.restore.sampling import sample_faces

    per_frame = find_faces(clip, detector, 512, min_score=0.8, min_size=16)
    tracked = faces_from_tracks(clip, smooth_tracks(link_tracks(detections), clip.shape[0], 0.5), 512)
    rows = []
    for label, faces in (("per-frame FaceDetect", per_frame), ("FaceTrack", tracked)):
        pasted, mask = paste_back(clip, faces, faces.crops)
        rows.append([label, "identity (crops as they are)", f"{flicker(clip, pasted, mask):.3f}"])
    prior = reduced_dr2_prior()
    if prior is None:
        return rows
    for label, faces in (("per-frame FaceDetect", per_frame), ("FaceTrack", tracked)):
        for same in ((False, True) if label == "FaceTrack" else (False,)):
            restored = sample_faces(prior, 3, 4, 22, 0, 0.5, "25", guide=faces.crops, faces=faces, same_noise_per_person=same)[0]
            pasted, mask = paste_back(clip, faces, restored)
            noise = "same noise per person" if same else "independent noise"
            rows.append([label, f"DR2 (reduced test network), {noise}", f"{flicker(clip, pasted, mask):.3f}"])
            if label == "FaceTrack":
                for strength in (0.3, 0.6):
                    blended = blend_over_time(restored, faces, strength)
                    pasted, mask = paste_back(clip, faces, blended)
                    rows.append([label, f"DR2, {noise}, FaceTemporalBlend {strength}", f"{flicker(clip, pasted, mask):.3f}"])
    return rows


def blend_cost(detector, frames: int = 120):
    """What FaceTemporalBlend costs on a real clip: with the identity restorer the right output is the
    input itself, so any change is the blend's doing. Reported: flicker (as above) and the RMS
    change of the face region after a Gaussian low-pass (sigma 2 px, which ignores the grain the
    blend also removes): smearing of real motion (speech, expressions, head turns)."""
    path = os.path.join(shared_dir() or "", "videos", "real_2.mp4")
    if not os.path.exists(path):
        return []
    clip = read_video(path, frames)
    tracked = smooth_tracks(link_tracks(detect_frames(clip, detector, min_score=0.8, min_size=16)), clip.shape[0], 0.5, 3)
    faces = faces_from_tracks(clip, tracked, 512)
    rows = []
    for strength in (0.0, 0.3, 0.6):
        crops = blend_over_time(faces.crops, faces, strength)
        pasted, mask = paste_back(clip, faces, crops)
        low = [np.stack([cv2.GaussianBlur(np.ascontiguousarray(frame), (0, 0), 2.0) for frame in x.numpy()]) for x in (pasted, clip)]
        region = mask.numpy()[..., None] > 0.5
        smear = float(np.sqrt(((low[0] - low[1]) ** 2 * region).sum() / (region.sum() * 3))) * 255
        rows.append([f"{strength}", f"{flicker(clip, pasted, mask):.3f}", f"{smear:.2f}"])
    return rows


def exact_prior_flicker(clip: torch.Tensor, detector, size: int = 64):
    """Flicker on a prior whose denoiser is exact (diffusion/exact_prior.py: a Gaussian mixture fitted
    to the real test faces, DifFace's schedule), where a random-weight UNet says nothing: FaceTrack's
    crops of the clip at `size` px, restored by DR2's guided loop (N 4, tau 22, omega 42, respacing
    25) and by DifFace's few-step sampler (the crop diffused to t = 400, DPM-Solver++(2M) SDE, eta 1, 15 calls),
    with independent noise per frame or the same noise per person; the restored crops are pasted back
    and measured as in the table above, and against the identity restorer's flicker (what the
    restorer adds)."""
    from diffusion_face_restore.diffusion.difface import crops_to_tensor, seeded_noise, x0_to_crops
    from diffusion_face_restore.diffusion.exact_prior import GaussianMixturePrior
    from diffusion_face_restore.diffusion.lowpass import LowPass
    from diffusion_face_restore.diffusion.fast_solvers import sample_fast
    from diffusion_face_restore.diffusion.samplers import sample_dr2
    from diffusion_face_restore.diffusion.schedule import NoiseLevels, Schedule
    from diffusion_face_restore.training.evaluation import real_faces

    tracked = smooth_tracks(link_tracks(detect_frames(clip, detector, min_score=0.8, min_size=16)), clip.shape[0], 0.5, 3)
    faces = faces_from_tracks(clip, tracked, 512)
    prior = GaussianMixturePrior.fit(real_faces(shared_dir(), size).to(torch.float64) / 127.5 - 1)
    levels = NoiseLevels()
    epsilon = prior.epsilon_model(levels)

    def with_variance(x, t):  # DR2's network also predicts its variance: at the posterior's lower bound
        eps = epsilon(x, t)
        return torch.cat([eps, -torch.ones_like(eps)], 1)

    def measured(crops):
        pasted, mask = paste_back(clip, faces, crops)
        return flicker(clip, pasted, mask)

    y = crops_to_tensor(faces.crops, size) * 2 - 1
    identity = measured(x0_to_crops(y, 512))
    schedule = Schedule("25")
    alpha, sigma, _ = levels.alpha_sigma_lambda(400)
    rows = [["identity (the crops at 64 px, pasted)", "-", f"{identity:.3f}", "0", "1"]]
    for same in (False, True):
        tracks = faces.tracks if same else None
        dr2 = sample_dr2(with_variance, y, schedule, schedule.index_for_fraction(42), schedule.index_for_fraction(22), LowPass(size, 4),
                         seeded_noise(7, tracks))
        draw = seeded_noise(7, tracks)
        difface = sample_fast("dpm++ 2m sde", epsilon, alpha * y + sigma * draw(y), levels, levels.timesteps(400, 15, "uniform t"), 1.0,
                              draw, clip=False)
        label = "same noise per person" if same else "independent noise"
        for name, x0 in (("DR2 (N 4, tau 22)", dr2), ("DifFace, dpm++ 2m sde eta 1, 15 calls", difface)):
            value = measured(x0_to_crops(x0.clamp(-1, 1), 512))
            rows.append([name, label, f"{value:.3f}", f"{value - identity:+.3f}", f"{aligned_flicker(x0.clamp(-1, 1), y, faces):.3f}"])
    return rows


def aligned_flicker(restored: torch.Tensor, degraded: torch.Tensor, faces) -> float:
    """Flicker in aligned space, where the tracked crop follows the head, so the motion itself is
    taken out: the mean change of each person's restored crop from one frame to the next, divided by
    the same for the input crops (1 = as steady as the input crops)."""
    where = {(face.image_index, face.track): i for i, face in enumerate(faces.faces) if face.track >= 0}
    pairs = [(i, where[(frame + 1, track)]) for (frame, track), i in where.items() if (frame + 1, track) in where]
    now, after = torch.tensor([p[0] for p in pairs]), torch.tensor([p[1] for p in pairs])
    return float((restored[after] - restored[now]).abs().sum() / (degraded[after] - degraded[now]).abs().sum())


def reduced_dr2_prior():
    """DR2's reduced official-layout test network (../shared/golden), or None without it."""
    source = os.path.join(shared_dir() or "", "golden", "checkpoints", "dr2", "reduced", "DR2_reduced.pkl")
    if not os.path.exists(source):
        return None
    from testdata import load_reduced_dr2_prior

    return load_reduced_dr2_prior(source, tempfile.mkdtemp())


def memory_run(frames: int) -> float:
    """Peak RSS (MiB) of the headless video path on a synthetic clip, identity restorer, fresh process."""
    code = f"""
import os, sys, resource, tempfile, cv2, numpy as np, skimage.data
sys.path.insert(0, {os.path.dirname(os.path.dirname(os.path.abspath(__file__)))!r})
from pack_import import import_pack; import_pack()
from diffusion_face_restore.degradations.camera_path import camera_path, render_clip
from diffusion_face_restore.restore import pipelines, video
from diffusion_face_restore.restore.faces import HAAR, paste_back
photo = skimage.data.astronaut()
work = tempfile.mkdtemp(); source = os.path.join(work, 'clip.mp4')
writer = cv2.VideoWriter(source, cv2.VideoWriter_fourcc(*'mp4v'), 20.0, (512, 512))
for start in range(0, {frames}, 30):
    for frame in render_clip(photo, camera_path({frames}, (512, 512))[start:start + 30]):
        writer.write((frame.numpy() * 255).round().astype(np.uint8)[..., ::-1])
writer.release()
pipelines.PIPELINES['identity'] = {{**pipelines.PIPELINES['dr2'], 'detect': {{**pipelines.PIPELINES['dr2']['detect'], 'detector': HAAR}}}}
pipelines.missing_weights = lambda settings: []
pipelines.load_prior = lambda *a, **k: None
pipelines.load_face_enhancer = lambda *a, **k: None
pipelines.Pipeline.restore = lambda self, photo, faces, crops, seed, same_noise_per_person=False: paste_back(photo, faces, crops)[0]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
video.restore_video('identity', source, os.path.join(work, 'out.mp4'), chunk_frames=24, report=lambda *a: None)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, before / 1024)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    return float(out[0])


def table(title, header, rows):
    print(f"\n{title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


def print_exact_flicker(detector):
    path = os.path.join(shared_dir() or "", "videos", "real_2.mp4")
    if not os.path.exists(path):
        return
    moving = read_video(path, 60)
    first = (moving[0].numpy() * 255).round().astype(np.uint8)
    still = render_clip(first, np.repeat(np.array([[[1.0, 0, 0], [0, 1.0, 0]]]), 30, 0), noise=4, jpeg=80, seed=1)
    header = ["restorer", "noise", "flicker", "added by the restorer", "flicker in aligned space"]
    table("Flicker on the exact reference prior: real_2.mp4, 60 frames (fast head motion), FaceTrack",
          header, exact_prior_flicker(moving, detector))
    table("Flicker on the exact reference prior: real_2.mp4's first frame held still for 30 frames (fresh noise 4 and JPEG 80 per frame)",
          header, exact_prior_flicker(still, detector))


def print_blend_cost(detector):
    table("FaceTemporalBlend on a real clip (real_2.mp4, 120 frames, FaceTrack, identity restorer: the right output is the input)",
          ["strength", "flicker", "low-pass change of the face region (grey levels)"], blend_cost(detector))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=90, help="frames of the synthetic camera-path clip")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--only-exact", action="store_true", help="print only the exact-prior flicker table")
    parser.add_argument("--only-blend-cost", action="store_true", help="print only FaceTemporalBlend's cost table")
    args = parser.parse_args()
    import skimage.data

    detector = HaarDetector()
    if args.only_exact:
        return print_exact_flicker(detector)
    if args.only_blend_cost:
        return print_blend_cost(detector)
    table("Real clips (../shared/videos, built-in detector): landmark jitter, RMS second difference / mean displacement per frame, in eye distances",
          ["clip", "track", "frames detected", "per-frame detection", "FaceTrack (smoothing 0.5)", "jitter reduced"],
          real_clips(detector, 0.5))
    rows, clip, detections = synthetic_path(skimage.data.astronaut(), detector, args.frames)
    table(f"Synthetic camera path ({args.frames} frames of skimage's astronaut: pan, rotation, zoom; noise 6, JPEG 70)",
          ["landmarks", "RMS error to the truth (eye distances)", "jitter (RMS 2nd difference)", "lag (frames)"], rows)
    table("Flicker of the pasted result in the face region (frame-to-frame change / the input's; 1 = as steady as the input)",
          ["faces", "restorer", "flicker"], flicker_table(clip[:60], detections[:60], detector))
    print_exact_flicker(detector)
    print_blend_cost(detector)
    if not args.skip_memory:
        table("Memory of the headless video path (identity restorer, 512 x 512 frames, chunks of 24)",
              ["frames", "peak resident memory"], [[str(n), f"{memory_run(n):.0f} MiB"] for n in (60, 300)])


if __name__ == "__main__":
    main()
