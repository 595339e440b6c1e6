"""One id per person through a clip: faces that are away for a while, a cut to another person, and
two people crossing, on clips made from the shared real clips so that the truth is known.

Clips (every second frame of the 20 fps sources, so 10 frames a second; 2 s = 20 frames):
- hidden: real_1, the face covered for 2 s in the middle (its box filled with the frame's median
  colour): one person;
- cut: real_2 with 2 s cut out where the head moves: one person;
- other person: real_1, then its face covered for 2 s, then real_2 (resized to the same frame):
  a cut to someone else, two people;
- hard cut: real_1, then real_2 with no frame between (a cut to someone else), then real_1 again
  1.5 s later (a cut back): two people, real_1 with one id;
- crossing: real_1's and real_2's faces (moving clips) slide across a real background photo in
  opposite directions, real_2's passing in front of (and hiding) real_1's: two people, no swap.

Each runs through FaceTrack's function (restore.faces.track_faces, its defaults) with
reidentify_within = 0 (every return after max_gap is a new person, as before) and 20 (2 s).
Reported: ids per true person, id switches, frames with a face where none is visible.

Then the appearance similarity the thresholds of face/tracking.py rest on: between frames of one
person (every 6th frame of each shared clip) and between different people (the clips' faces
against each other and against the faces of the shared photos; synthetic_1 against synthetic_2
left out, they may show one person).

    python benchmarks/identity_tracking.py
"""
from __future__ import annotations

import os
import sys

import cv2
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pack_import import import_pack, shared_dir  # noqa: E402

import_pack()
from diffusion_face_restore.restore.faces import DEFAULT_DETECTOR, make_detector, track_faces  # noqa: E402

STEP = 2  # every second frame: 10 frames a second
GAP = 20  # 2 s at 10 frames a second
AROUND = 8  # frames before and after a gap


def read_frames(path: str, start: int, count: int, step: int = STEP) -> list[np.ndarray]:
    """count RGB frames of a clip from frame `start`, every `step`-th."""
    capture = cv2.VideoCapture(path)
    capture.set(cv2.CAP_PROP_POS_FRAMES, start)
    frames = []
    while len(frames) < count:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(np.ascontiguousarray(frame[..., ::-1]))
        for _ in range(step - 1):
            capture.read()
    capture.release()
    if len(frames) < count:
        raise ValueError(f"{path} has fewer than {start + count * step} frames")
    return frames


def hide_faces(frames: list[np.ndarray]) -> list[np.ndarray]:
    """The frames with every face the default detector finds (box enlarged by half) filled with the
    frame's median colour."""
    detector = make_detector(DEFAULT_DETECTOR, 0.5)
    hidden = []
    for frame, detections in zip(frames, detector.detect(frames)):
        frame = frame.copy()
        for d in detections:
            centre, half = (d.box[:2] + d.box[2:]) / 2, (d.box[2:] - d.box[:2]) * 0.75
            x1, y1 = np.maximum(0, (centre - half).astype(int))
            x2, y2 = (centre + half).astype(int)
            frame[y1:y2, x1:x2] = np.median(frame.reshape(-1, 3), axis=0).astype(np.uint8)
        hidden.append(frame)
    return hidden


def hidden_clip(shared: str):
    """real_1 with the face covered for GAP frames: (frames, truth) where truth[i] lists the people
    visible in frame i as (person, box or None)."""
    frames = read_frames(os.path.join(shared, "videos", "real_1.mp4"), 0, 2 * AROUND + GAP)
    frames[AROUND:AROUND + GAP] = hide_faces(frames[AROUND:AROUND + GAP])
    truth = [[] if AROUND <= i < AROUND + GAP else [("real_1", None)] for i in range(len(frames))]
    return frames, truth


def cut_clip(shared: str):
    """real_2 with GAP frames (2 s) cut out of its fast head motion."""
    path = os.path.join(shared, "videos", "real_2.mp4")
    frames = read_frames(path, 100, AROUND) + read_frames(path, 100 + (AROUND + GAP) * STEP, AROUND)
    return frames, [[("real_2", None)] for _ in frames]


def other_person_clip(shared: str):
    """real_1, its face covered for GAP frames, then real_2 at real_1's frame size: two people."""
    first = read_frames(os.path.join(shared, "videos", "real_1.mp4"), 0, AROUND + GAP)
    first[AROUND:] = hide_faces(first[AROUND:])
    height, width = first[0].shape[:2]
    second = [cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA)
              for f in read_frames(os.path.join(shared, "videos", "real_2.mp4"), 0, AROUND)]
    truth = [[("real_1", None)]] * AROUND + [[]] * GAP + [[("real_2", None)]] * AROUND
    return first + second, truth


def hard_cut_clip(shared: str, back_after: int = 15):
    """real_1, a cut straight to real_2 (at real_1's frame size) for `back_after` frames (1.5 s), and a
    cut back to real_1 where it went on meanwhile: two people, real_1's id kept across the cut back."""
    real_1 = read_frames(os.path.join(shared, "videos", "real_1.mp4"), 0, 2 * AROUND + back_after)
    height, width = real_1[0].shape[:2]
    real_2 = [cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA)
              for f in read_frames(os.path.join(shared, "videos", "real_2.mp4"), 0, back_after)]
    frames = real_1[:AROUND] + real_2 + real_1[AROUND + back_after:]
    truth = [[("real_1", None)]] * AROUND + [[("real_2", None)]] * back_after + [[("real_1", None)]] * AROUND
    return frames, truth


def face_window(frames: list[np.ndarray]) -> tuple[int, int, int, int]:
    """A fixed window around the face of a clip (the default detector on its first frame), 1.6 x the
    box, as x1, y1, x2, y2."""
    detection = max(make_detector(DEFAULT_DETECTOR, 0.5).detect(frames[:1])[0], key=lambda d: d.box[2] - d.box[0])
    centre, half = (detection.box[:2] + detection.box[2:]) / 2, (detection.box[2:] - detection.box[:2]).max() * 0.8
    x1, y1 = np.maximum(0, (centre - half).astype(int))
    return int(x1), int(y1), int(centre[0] + half), int(centre[1] + half)


def crossing_clip(shared: str, count: int = 40, size: tuple[int, int] = (640, 360), sprite: int = 170):
    """real_1's face moving right, real_2's moving left in front of it, over a blurred real photo."""
    import skimage.data

    width, height = size
    background = cv2.GaussianBlur(cv2.resize(skimage.data.coffee(), size, interpolation=cv2.INTER_AREA), (0, 0), 3)
    people = {}
    for name in ("real_1", "real_2"):
        source = read_frames(os.path.join(shared, "videos", f"{name}.mp4"), 0, count)
        x1, y1, x2, y2 = face_window(source[:1])
        people[name] = [cv2.resize(f[y1:y2, x1:x2], (sprite, sprite), interpolation=cv2.INTER_AREA) for f in source]
    top = (height - sprite) // 2
    frames, truth = [], []
    for i in range(count):
        frame = background.copy()
        boxes = {}
        travel = (width - sprite - 40) * i / (count - 1)
        for name, left in (("real_1", 20 + travel), ("real_2", width - sprite - 20 - travel)):  # real_2 drawn last: in front
            x = int(round(left))
            frame[top:top + sprite, x:x + sprite] = people[name][i]
            boxes[name] = np.array([x, top, x + sprite, top + sprite], float)
        front, back = boxes["real_2"], boxes["real_1"]
        hidden = max(0.0, min(front[2], back[2]) - max(front[0], back[0])) / sprite  # share of real_1 covered
        truth.append([("real_2", front)] + ([("real_1", back)] if hidden < 0.5 else []))
        frames.append(frame)
    return frames, truth


def as_batch(frames: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(frames).astype(np.float32) / 255)


def score(face_set, truth) -> dict:
    """ids per true person, id switches, faces where no person is visible. A tracked face belongs to
    the visible person whose box holds its box centre (the only person where there is one)."""
    ids: dict[str, list[int]] = {}
    phantom = 0
    for face in face_set.faces:
        track = face.track
        people = truth[face.image_index]
        if not people:
            phantom += 1
            continue
        centre = (face.box[:2] + face.box[2:]) / 2
        owners = [name for name, box in people if box is None or (box[0] <= centre[0] <= box[2] and box[1] <= centre[1] <= box[3])]
        if owners:
            ids.setdefault(owners[0], []).append((face.image_index, track))
    switches = 0
    for observations in ids.values():
        observations.sort()
        switches += sum(1 for (_, a), (_, b) in zip(observations, observations[1:]) if a != b)
    return {"ids": {name: len({t for _, t in obs}) for name, obs in ids.items()}, "switches": switches, "phantom": phantom,
            "persons": len({face.track for face in face_set.faces})}


def similarity_table(shared: str):
    import glob

    from PIL import Image

    from diffusion_face_restore.face.appearance import face_appearance
    from diffusion_face_restore.face.tracking import SAME_PERSON_SIMILARITY

    detector = make_detector(DEFAULT_DETECTOR, 0.8)
    people: dict[str, list[np.ndarray]] = {}
    for clip in sorted(glob.glob(os.path.join(shared, "videos", "*.mp4"))):
        name = os.path.basename(clip)
        frames = read_frames(clip, 0, int(cv2.VideoCapture(clip).get(cv2.CAP_PROP_FRAME_COUNT)) // 6, step=6)
        for frame, detections in zip(frames, detector.detect(frames)):
            if detections:
                people.setdefault(name, []).append(face_appearance(frame, max(detections, key=lambda d: d.box[2] - d.box[0]).landmarks))
    for path in sorted(glob.glob(os.path.join(shared, "images", "*", "*"))):
        photo = np.array(Image.open(path).convert("RGB"))
        for k, d in enumerate(detector.detect([photo])[0]):
            people[f"{os.path.basename(path)}#{k}"] = [face_appearance(photo, d.landmarks)]
    vectors = {name: np.stack(v) for name, v in people.items()}
    same, different = [], []
    for a in vectors:
        pairs = vectors[a] @ vectors[a].T
        same += list(pairs[np.triu_indices(len(pairs), 1)])
        for b in vectors:
            if a < b and not (a.startswith("synthetic") and b.startswith("synthetic")):
                different += list((vectors[a] @ vectors[b].T).ravel())
    same, different = np.array(same), np.array(different)
    print(f"\nappearance similarity: {len(same)} pairs of one person, {len(different)} of different people")
    print(f"| pairs | 1st pct. | 5th pct. | median | 95th pct. | 99th pct. | share at or above {SAME_PERSON_SIMILARITY} |")
    print("|---|---|---|---|---|---|---|")
    for label, values in (("one person", same), ("different people", different)):
        q = np.percentile(values, [1, 5, 50, 95, 99])
        print(f"| {label} | " + " | ".join(f"{v:.3f}" for v in q) + f" | {np.mean(values >= SAME_PERSON_SIMILARITY):.1%} |")


CLIPS = {"hidden": hidden_clip, "cut": cut_clip, "other person": other_person_clip, "hard cut": hard_cut_clip, "crossing": crossing_clip}


def main():
    shared = shared_dir()
    if shared is None:
        sys.exit("needs ../shared (or $DFR_SHARED_DIR) for the clips")
    print("| clip | true people | reidentify_within | ids per person | id switches | persons found | faces where none visible |")
    print("|---|---|---|---|---|---|---|")
    for name, build in CLIPS.items():
        frames, truth = build(shared)
        people = len({p for visible in truth for p, _ in visible})
        for reidentify in (0, GAP):
            result = score(track_faces(as_batch(frames), reidentify_within=reidentify), truth)
            ids = ", ".join(f"{k} {v}" for k, v in sorted(result["ids"].items()))
            print(f"| {name} | {people} | {reidentify} | {ids} | {result['switches']} | {result['persons']} | {result['phantom']} |")
    similarity_table(shared)


if __name__ == "__main__":
    main()
