"""Video: faces tracked through a clip with stable ids and smoothed landmarks, the same noise per
person in every frame, and the headless video round trip (chunked, resumable)."""
import os

import cv2
import numpy as np
import pytest
import torch

from testdata import to_image_batch
from diffusion_face_restore.degradations.camera_path import camera_path, moved_points, render_clip
from diffusion_face_restore.face.detection import Detection
from diffusion_face_restore.face.detection.haar import HaarDetector
from diffusion_face_restore.face.find import detect_frames
from diffusion_face_restore.face.tracking import link_tracks, smooth_tracks
from diffusion_face_restore.nodes.face_nodes import FaceDetect
from diffusion_face_restore.restore.faces import HAAR
from diffusion_face_restore.nodes.video_nodes import FaceTemporalBlend, FaceTrack

TRACK = dict(detector=HAAR, crop_size="512", min_confidence=0.8, min_face_size=16, max_faces=0, smoothing=0.5, max_gap=5, min_track_length=3)


def face_patch(photo_uint8: np.ndarray, size: int = 150) -> np.ndarray:
    """The photo's first face, as an upright square patch (the face's box grown by half)."""
    face = FaceDetect().detect(to_image_batch(photo_uint8), HAAR, "512", "all", 0, 0.8, 16, 0)[0].faces[0]
    (x1, y1, x2, y2), grow = face.box, 0.5 * (face.box[2] - face.box[0])
    patch = photo_uint8[int(max(0, y1 - grow)):int(y2 + grow), int(max(0, x1 - grow)):int(x2 + grow)]
    return cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)


def test_two_people_crossing_keep_their_ids(astronaut, grace_hopper):
    a, b = face_patch(astronaut), face_patch(grace_hopper)
    frames = []
    for t in range(40):
        frame = np.full((360, 640, 3), 120, np.uint8)
        xa, xb = int(20 + 11 * t), int(470 - 11 * t)  # they pass each other around frame 20
        frame[20:170, xa:xa + 150], frame[190:340, xb:xb + 150] = a, b
        frames.append(frame)
    faces = FaceTrack().track(to_image_batch(*frames), **TRACK)[0]
    ids_by_row = {}  # the upper face is the astronaut, the lower one Grace Hopper, in every frame
    for face in faces.faces:
        row = "upper" if face.box[1] < 180 else "lower"
        ids_by_row.setdefault(row, set()).add(face.track)
    assert ids_by_row["upper"] and ids_by_row["lower"] and len(ids_by_row["upper"]) == len(ids_by_row["lower"]) == 1, ids_by_row
    assert ids_by_row["upper"] != ids_by_row["lower"]
    both = sum(len(faces.faces_of_image(t)) == 2 for t in range(40))
    assert both >= 36, f"both people in only {both} of 40 frames"


def detection_at(x: float, y: float = 100.0) -> Detection:
    landmarks = np.array([[x - 20, y - 10], [x + 20, y - 10], [x, y + 5], [x - 15, y + 25], [x + 15, y + 25]], np.float64)
    return Detection(np.array([x - 50, y - 60, x + 50, y + 60]), landmarks, 0.99)


def test_a_gap_of_a_few_frames_is_bridged():
    frames = [[detection_at(100 + 3 * t)] if t not in (10, 11, 12) else [] for t in range(25)]
    tracks = link_tracks(frames, max_gap=5)
    assert len(tracks) == 1
    tracked = smooth_tracks(tracks, 25, 0.5)
    assert all(len(f) == 1 for f in tracked), "every frame of the span has the face"
    for t in (10, 11, 12):
        face = tracked[t][0]
        assert not face.observed and abs(face.landmarks[2, 0] - (100 + 3 * t)) < 1.0, (t, face.landmarks[2])
    # a longer absence starts a new person
    away = [[detection_at(100)] if t < 5 or t > 15 else [] for t in range(20)]
    assert len(link_tracks(away, max_gap=5)) == 2


def test_smoothing_never_moves_a_face_that_stands_still():
    still = detection_at(123.4, 87.6)
    tracked = smooth_tracks(link_tracks([[still]] * 20), 20, 0.9)
    for frame in tracked:
        assert np.array_equal(frame[0].landmarks, still.landmarks) and np.array_equal(frame[0].box, still.box)


def test_tracking_follows_a_known_camera_path_with_a_third_of_the_jitter_and_no_lag(astronaut):
    affines = camera_path(60, astronaut.shape[:2])
    clip = render_clip(astronaut, affines, noise=6, jpeg=70, seed=0)
    detector = HaarDetector()
    truth = moved_points(detect_frames(to_image_batch(astronaut), detector, min_score=0.8, min_size=16)[0][0].landmarks, affines)
    detections = detect_frames(clip, detector, min_score=0.8, min_size=16)
    tracked = smooth_tracks(link_tracks(detections), 60, 0.5)
    raw = np.stack([d[0].landmarks for d in detections])
    smooth = np.stack([f[0].landmarks for f in tracked])

    def jitter(points):
        return float(np.sqrt(((points[2:] - 2 * points[1:-1] + points[:-2]) ** 2).sum(-1).mean()))

    assert jitter(smooth) < jitter(raw) / 3, (jitter(smooth), jitter(raw))
    errors = {shift: float(((smooth[max(0, shift):60 + min(0, shift)] - truth[max(0, -shift):60 - max(0, shift)]) ** 2).mean())
              for shift in range(-3, 4)}
    assert min(errors, key=errors.get) in (-1, 0, 1), errors  # at most one frame of lag
    assert np.sqrt(((smooth - truth) ** 2).sum(-1).mean()) < np.sqrt(((raw - truth) ** 2).sum(-1).mean())


def test_the_same_person_gets_the_same_noise_in_every_frame(dr2_prior, astronaut, grace_hopper):
    from diffusion_face_restore.nodes.diffusion_nodes import DifFaceInit, DR2GuidedSampler

    frame = np.full((360, 640, 3), 120, np.uint8)
    frame[20:170, 40:190], frame[120:270, 400:550] = face_patch(astronaut), face_patch(grace_hopper)
    faces, crops, _, _ = FaceTrack().track(to_image_batch(frame, frame, frame), **TRACK)  # a still clip: 3 x 2 faces
    assert faces.tracks == [0, 1, 0, 1, 0, 1]
    sampler = DR2GuidedSampler()
    def close(a, b):  # the same draws; batch chunks of other sizes may round the convolutions differently
        return torch.allclose(a, b, atol=1e-4, rtol=0)

    same = sampler.sample(dr2_prior, 5, 4, 22, 0, 0.5, "25", guide=crops, faces=faces, same_noise_per_person=True)[1]
    assert close(same[0], same[2]) and close(same[2], same[4]) and close(same[1], same[5])
    assert not close(same[0], same[1])
    independent = sampler.sample(dr2_prior, 5, 4, 22, 0, 0.5, "25", guide=crops)[1]
    assert not close(independent[0], independent[2]), "without the switch each frame draws anew"
    state = DifFaceInit().init(dr2_prior, crops, 5, 10, "25", faces=faces, same_noise_per_person=True)[0]
    assert torch.equal(state.x[0], state.x[4]), "DifFaceInit's draw is the person's, whichever frame"
    difface = sampler.sample(dr2_prior, 0, 4, 22, 0, 0.5, "auto", state=state)[1]
    assert close(difface[1], difface[3]) and not close(difface[0], difface[1])
    with pytest.raises(ValueError, match="needs track ids"):
        untracked = FaceDetect().detect(to_image_batch(frame), HAAR, "512", "all", 0, 0.8, 16, 0)
        sampler.sample(dr2_prior, 5, 4, 22, 0, 0.5, "25", guide=untracked[1], faces=untracked[0], same_noise_per_person=True)


def test_temporal_blend_averages_along_each_track_only():
    from diffusion_face_restore.face.temporal import blend_along_tracks

    crops = torch.stack([torch.full((8, 8, 3), v) for v in (0.0, 1.0, 1.0, 0.0)])  # frame 0: people 0, 1; frame 1: 0, 1

    blended = blend_along_tracks(crops, [(0, 0), (0, 1), (1, 0), (1, 1)], 0.25)
    assert torch.allclose(blended[2], torch.full((8, 8, 3), 0.75)) and torch.allclose(blended[3], torch.full((8, 8, 3), 0.25))
    assert torch.equal(blended[:2], crops[:2]), "a track's first crop is its own"
    with pytest.raises(TypeError, match="FaceDetect"):
        FaceTemporalBlend().blend(crops, object(), 0.3)


def write_clip(path: str, clip: torch.Tensor, fps: float):
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), fps, (clip.shape[2], clip.shape[1]))
    for frame in clip:
        writer.write((frame.numpy() * 255).round().astype(np.uint8)[..., ::-1])
    writer.release()


@pytest.fixture
def identity_pipeline(monkeypatch):
    """The dr2 pipeline with an identity restorer (its crops pasted back as they are) under the name
    "identity"; reading, tracking, chunking, resuming and encoding are the real ones. Returns its
    state: "chunks", the frame count of every chunk restored, and "interrupt_at", the chunk number
    (1-based) in which the user stops the run (KeyboardInterrupt), or None."""
    from diffusion_face_restore.restore import pipelines
    from diffusion_face_restore.restore.faces import paste_back
    from diffusion_face_restore.restore.pipelines import PIPELINES

    monkeypatch.setitem(PIPELINES, "identity", {**PIPELINES["dr2"], "detect": {**PIPELINES["dr2"]["detect"], "detector": HAAR}})
    monkeypatch.setattr(pipelines, "missing_weights", lambda settings: [])
    monkeypatch.setattr(pipelines, "load_prior", lambda *a, **k: None)
    monkeypatch.setattr(pipelines, "load_face_enhancer", lambda *a, **k: None)
    state = {"chunks": [], "interrupt_at": None}

    def identity(self, photo, faces, crops, seed, same_noise_per_person=False):
        state["chunks"].append(photo.shape[0])
        if len(state["chunks"]) == state["interrupt_at"]:
            raise KeyboardInterrupt
        return paste_back(photo, faces, crops)[0]

    monkeypatch.setattr(pipelines.Pipeline, "restore", identity)
    return state


def test_headless_video_round_trip_keeps_frames_size_and_fps_and_resumes(tmp_path, astronaut, identity_pipeline):
    from diffusion_face_restore.restore import video

    clip = render_clip(astronaut[:320, 96:416], camera_path(30, (320, 320)), noise=3, seed=1)
    source = str(tmp_path / "clip.mp4")
    write_clip(source, clip, 20.0)
    target = str(tmp_path / "restored.mp4")
    identity_pipeline["interrupt_at"] = 2  # the user stops the run in its second chunk
    with pytest.raises(KeyboardInterrupt):
        video.restore_video("identity", source, target, chunk_frames=12)
    assert not os.path.exists(target) and os.path.exists(target + ".work/chunk_00000/complete")
    identity_pipeline["interrupt_at"] = None
    result = video.restore_video("identity", source, target, chunk_frames=12)
    assert result == {"frames": 30, "chunks": 3, "resumed_chunks": 1}
    assert identity_pipeline["chunks"] == [12, 12, 12, 6], "the finished chunk is not restored again"
    made, original = video.video_info(target), video.video_info(source)
    assert (made["frames"], made["width"], made["height"]) == (30, 320, 320) and made["fps"] == pytest.approx(original["fps"])
    assert not os.path.exists(target + ".work")
    # an identity restorer gives the clip back, up to one more pass of the mp4v encoder
    decoded = np.stack([f for _, chunk in video.read_chunks(source, 30) for f in chunk])
    made_frames = np.stack([f for _, chunk in video.read_chunks(target, 30) for f in chunk])
    reencoded = str(tmp_path / "reencoded.mp4")
    write_clip(reencoded, torch.from_numpy(decoded), 20.0)
    codec_loss = float(np.abs(np.stack([f for _, c in video.read_chunks(reencoded, 30) for f in c]) - decoded).mean() * 255)
    difference = float(np.abs(made_frames - decoded).mean() * 255)
    assert difference < codec_loss + 0.5, f"the identity round trip changed the clip by {difference:.2f} grey levels (encoder: {codec_loss:.2f})"


def packets_of(path: str, kind: str) -> list[bytes]:
    import av

    with av.open(path) as container:
        streams = getattr(container.streams, kind)
        return [bytes(p) for p in container.demux(*streams) if p.dts is not None] if streams else []  # demux() of none = all


def test_headless_video_keeps_the_sound_copied_or_says_why_not(tmp_path, astronaut, identity_pipeline):
    import sys

    from diffusion_face_restore.restore import video

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "comfyui"))
    from make_clip import write_clip_with_tone  # PyAV, as ComfyUI's own video nodes write

    frames = [(f.numpy() * 255).round().astype(np.uint8) for f in render_clip(astronaut[:256, 128:384], camera_path(16, (256, 256)))]
    source = str(tmp_path / "talk.mp4")
    write_clip_with_tone(frames, source, fps=8)
    target = str(tmp_path / "restored.mp4")
    video.restore_video("identity", source, target, chunk_frames=8, report=lambda *a: None)
    assert video.video_info(target)["frames"] == 16
    assert packets_of(target, "audio") == packets_of(source, "audio"), "the sound is copied, not re-encoded or cut"
    assert not [n for n in os.listdir(tmp_path) if ".partial" in n], "no temporary file is left behind"

    # a sound the output's container cannot hold (Opus in AVI): the video is written without it, and said so
    source = str(tmp_path / "talk.mkv")
    write_clip_with_tone(frames, source, fps=8, audio_codec="opus")
    target, said = str(tmp_path / "restored.avi"), []
    video.restore_video("identity", source, target, chunk_frames=8, report=said.append)
    assert video.video_info(target)["frames"] == 16 and packets_of(target, "audio") == []
    assert any("sound was not copied" in line and "opus" in line for line in said), said
    assert not [n for n in os.listdir(tmp_path) if ".partial" in n]
