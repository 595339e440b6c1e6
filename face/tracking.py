"""Faces through the frames of a clip: tracks with stable ids, landmarks smoothed over time.

Per-frame detection jitters: each frame's landmarks, hence its alignment, crop and paste mask, move
a little, and a restored face shimmers. Here detections are linked into tracks (predicted box
overlap, greedy), short gaps are bridged, and each track's landmarks and box are smoothed with a
forward-backward (Rauch-Tung-Striebel) Kalman smoother under a constant-velocity model: zero lag,
and a face that does not move is not moved at all (its measurements are reproduced exactly).

A face missed for up to `max_gap` frames is bridged (its landmarks interpolated by the smoother).
A face away longer (missed, hidden, out of the picture) keeps its id when it comes back within
`reidentify_within` frames and looks like the person who left (face.appearance, against the mean
appearance of the track): the gap is not bridged, but the same person keeps the same id, hence the
same noise. Appearance also keeps two people who cross from swapping ids: a live track never takes
a face that looks unlike it, and among overlapping candidates the more alike wins.

A hard cut (face.shots) ends every live track: after it a face keeps an id only by re-identification
at SAME_PERSON_SIMILARITY, and a track's smoothing starts afresh (no landmarks smoothed or bridged
across the cut). Without it a live track can take the face of the next shot's person where the two
stand alike and score above LIVE_MATCH_SIMILARITY (a user clip's two people scored 0.785; the shared
clips' two real people score 0.65-0.71, so there the tracker kept them apart even without the cut).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .appearance import appearance_similarity
from .detection import Detection

# measurement noise of a landmark, as a fraction of the eye distance (the built-in detector's
# landmarks are off by ~8 % on average; RetinaFace's by less)
LANDMARK_NOISE = 0.05
# a face that comes back after a gap is the person who left when it is at least this alike to the
# track's mean appearance (face.appearance: 98.7 % of one person's frame pairs on the shared clips
# score this or more, 0.8 % of different people's pairs; benchmarks/identity_tracking.py)
SAME_PERSON_SIMILARITY = 0.85
# a live track never takes a face less alike than this (two people crossing)
LIVE_MATCH_SIMILARITY = 0.7
# box sizes of a returning face and of the track it left, at most this ratio apart
REIDENTIFY_SIZE_RATIO = 2.0


@dataclass
class Track:
    id: int
    observations: dict[int, Detection] = field(default_factory=dict)  # frame -> detection
    max_gap: int = 5  # longer gaps are not bridged (the face was away)
    appearance_sum: np.ndarray | None = None  # sum of the observations' appearance vectors
    run_starts: set[int] = field(default_factory=set)  # frames that start a new run (a re-identification)

    def observe(self, frame: int, detection: Detection):
        self.observations[frame] = detection
        if detection.appearance is not None:
            self.appearance_sum = detection.appearance.astype(np.float64) + (0.0 if self.appearance_sum is None else self.appearance_sum)

    def similarity(self, detection: Detection) -> float | None:
        """How alike the detection is to the track's mean appearance; None where either has none."""
        if detection.appearance is None or self.appearance_sum is None:
            return None
        norm = float(np.linalg.norm(self.appearance_sum))
        return appearance_similarity(self.appearance_sum / norm, detection.appearance) if norm > 0 else None

    def segments(self) -> list[list[int]]:
        """The observed frames in runs whose gaps are at most max_gap frames (each run is bridged)."""
        frames = sorted(self.observations)
        runs = [[frames[0]]]
        for frame in frames[1:]:
            if frame - runs[-1][-1] > self.max_gap + 1 or frame in self.run_starts:
                runs.append([])
            runs[-1].append(frame)
        return runs

    @property
    def first(self) -> int:
        return min(self.observations)

    @property
    def last(self) -> int:
        return max(self.observations)

    def predicted_box(self, frame: int) -> np.ndarray:
        """The box extrapolated to `frame` from the last two observations (constant velocity)."""
        frames = sorted(self.observations)
        last = self.observations[frames[-1]].box
        if len(frames) < 2:
            return last
        before = self.observations[frames[-2]].box
        velocity = (last - before) / (frames[-1] - frames[-2])
        return last + velocity * (frame - frames[-1])


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def link_tracks(frames: list[list[Detection]], max_gap: int = 5, min_iou: float = 0.2, reidentify_within: int = 0,
                shot_starts=()) -> list[Track]:
    """Link per-frame detections into tracks.

    Each frame: (1) detections are matched greedily to the boxes the live tracks (seen within
    `max_gap` frames) predict, best overlap + appearance first, at least `min_iou` overlap and, where
    detections carry appearance vectors, at least LIVE_MATCH_SIMILARITY alike; (2) a detection left
    over is given back to a track not seen in this frame and away for at most `reidentify_within` frames when it
    is SAME_PERSON_SIMILARITY alike (most alike first, nearer first among equals; box sizes within
    REIDENTIFY_SIZE_RATIO); (3) the rest start tracks. Ids count up in order of first appearance
    (left to right within a frame). shot_starts: frames after a hard cut (face.shots); no track seen
    before one is live after it, and a re-identified track starts a new run (Track.segments)."""
    tracks: list[Track] = []
    shot_start = 0
    for frame, detections in enumerate(frames):
        if frame in shot_starts:
            shot_start = frame
        live = [t for t in tracks if frame - t.last <= max_gap + 1 and t.last >= shot_start]
        pairs = []
        for ti, track in enumerate(live):
            predicted = track.predicted_box(frame)
            for di, detection in enumerate(detections):
                iou, alike = box_iou(predicted, detection.box), track.similarity(detection)
                if iou >= min_iou and (alike is None or alike >= LIVE_MATCH_SIMILARITY):
                    pairs.append((iou + (alike or 0.0), ti, di))
        matched_tracks, matched_detections = greedy_pairs(pairs)
        for ti, di in zip(matched_tracks, matched_detections):
            live[ti].observe(frame, detections[di])
        left = [di for di in range(len(detections)) if di not in matched_detections]
        if reidentify_within > 0 and left:
            seen_now = {live[ti].id for ti in matched_tracks}
            away = [t for t in tracks if t.id not in seen_now and 0 < frame - t.last <= reidentify_within + 1]
            pairs = []
            for ti, track in enumerate(away):
                for di in left:
                    alike = track.similarity(detections[di])
                    if alike is not None and alike >= SAME_PERSON_SIMILARITY and similar_size(track.observations[track.last].box, detections[di].box):
                        pairs.append((alike - 1e-3 * box_distance(track.observations[track.last].box, detections[di].box), ti, di))
            for ti, di in zip(*greedy_pairs(pairs)):
                if away[ti].last < shot_start:  # across a cut: smoothed apart (a longer gap splits anyway)
                    away[ti].run_starts.add(frame)
                away[ti].observe(frame, detections[di])
                left.remove(di)
        for di in sorted(left, key=lambda di: (detections[di].box[0] + detections[di].box[2]) / 2):
            track = Track(len(tracks), max_gap=max_gap)
            track.observe(frame, detections[di])
            tracks.append(track)
    return tracks


def greedy_pairs(pairs: list[tuple[float, int, int]]) -> tuple[list[int], list[int]]:
    """(score, a, b) candidates, highest score first, each a and each b used once: the chosen a's
    and b's, in the same order."""
    chosen_a, chosen_b = [], []
    for _, a, b in sorted(pairs, reverse=True):
        if a not in chosen_a and b not in chosen_b:
            chosen_a.append(a)
            chosen_b.append(b)
    return chosen_a, chosen_b


def box_size(box: np.ndarray) -> float:
    return float(np.sqrt(max(box[2] - box[0], 1e-6) * max(box[3] - box[1], 1e-6)))


def similar_size(a: np.ndarray, b: np.ndarray) -> bool:
    ratio = box_size(a) / box_size(b)
    return 1.0 / REIDENTIFY_SIZE_RATIO <= ratio <= REIDENTIFY_SIZE_RATIO


def box_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Distance of the box centres, in box sizes (of a)."""
    return float(np.hypot((a[0] + a[2] - b[0] - b[2]) / 2, (a[1] + a[3] - b[1] - b[3]) / 2)) / box_size(a)


def rts_smooth(measured: np.ndarray, observed: np.ndarray, noise: float, process: float) -> np.ndarray:
    """Constant-velocity Kalman filter forward, Rauch-Tung-Striebel smoother backward.

    measured [T, C] values per frame (any value where not observed), observed [T] bool; every column
    is one coordinate with the same model: position and velocity, white acceleration of variance
    `process` per frame^2, measurement variance `noise`. Returns the smoothed positions [T, C];
    unobserved frames are interpolated, and constant measurements come back unchanged.
    """
    count = measured.shape[0]
    F = np.array([[1.0, 1.0], [0.0, 1.0]])
    Q = process * np.array([[0.25, 0.5], [0.5, 1.0]])
    first = int(np.argmax(observed))
    x = np.stack([measured[first], np.zeros(measured.shape[1])])  # [2, C]
    P = np.diag([noise, 100.0 * noise])
    filtered, covariances, predictions, predicted_covariances = [], [], [], []
    for t in range(count):
        if t > 0:
            x, P = F @ x, F @ P @ F.T + Q
        predictions.append(x)
        predicted_covariances.append(P)
        if observed[t]:
            gain = P[:, 0] / (P[0, 0] + noise)  # H = [1, 0]
            x = x + np.outer(gain, measured[t] - x[0])
            P = P - np.outer(gain, P[0])
        filtered.append(x)
        covariances.append(P)
    smoothed = [filtered[-1]]
    for t in range(count - 2, -1, -1):
        C = covariances[t] @ F.T @ np.linalg.inv(predicted_covariances[t + 1])
        smoothed.append(filtered[t] + C @ (smoothed[-1] - predictions[t + 1]))
    return np.stack([s[0] for s in reversed(smoothed)])


def smoothing_variances(strength: float, eye_distance: float) -> tuple[float, float]:
    """(measurement, process) variances for a smoothing strength in 0..1 (0: none): the measurement
    noise is LANDMARK_NOISE of the eye distance; the process noise falls by a decade per 0.2 of
    strength from 10 x the measurement's (barely smoothed) at 0."""
    noise = (LANDMARK_NOISE * eye_distance) ** 2
    return noise, noise * 10.0 ** (1.0 - 5.0 * strength)


@dataclass(frozen=True)
class TrackedFace:
    """One face of one frame, as a track sees it: smoothed box and landmarks."""

    frame: int
    track: int
    box: np.ndarray
    landmarks: np.ndarray
    score: float
    observed: bool  # False in a bridged gap


def smooth_run(track: Track, run: list[int], strength: float, eye_distance: float) -> list[TrackedFace]:
    """One bridged run of a track (observed frames with gaps of at most max_gap): landmarks and box
    smoothed, gaps filled."""
    span = range(run[0], run[-1] + 1)
    observed = np.array([f in track.observations for f in span])
    values = np.zeros((len(span), 14))
    for i, f in enumerate(span):
        if observed[i]:
            d = track.observations[f]
            values[i] = np.concatenate([np.asarray(d.landmarks, np.float64).reshape(10), np.asarray(d.box, np.float64)])
    if strength > 0:
        values = rts_smooth(values, observed, *smoothing_variances(strength, eye_distance))
    else:  # no smoothing: gaps interpolated linearly
        known = np.flatnonzero(observed)
        values = np.stack([np.interp(np.arange(len(span)), known, values[known, c]) for c in range(14)], 1)
    return [TrackedFace(f, track.id, values[i, 10:], values[i, :10].reshape(5, 2),
                        track.observations[f].score if observed[i] else 0.0, bool(observed[i])) for i, f in enumerate(span)]


def smooth_tracks(tracks: list[Track], frame_count: int, strength: float = 0.5, min_length: int = 1) -> list[list[TrackedFace]]:
    """The faces of every frame, in reading order: each track's landmarks and box smoothed over each
    of its runs (gaps of up to the track's max_gap bridged; a longer gap, where the face was away,
    stays empty and the face keeps its id after it). Tracks with fewer than `min_length` observations are dropped (a detector's
    one-frame false alarm)."""
    frames: list[list[TrackedFace]] = [[] for _ in range(frame_count)]
    for track in tracks:
        if len(track.observations) < min_length:
            continue
        eye = float(np.median([np.linalg.norm(d.landmarks[1] - d.landmarks[0]) for d in track.observations.values()]))
        for run in track.segments():
            for face in smooth_run(track, run, strength, max(eye, 1.0)):
                frames[face.frame].append(face)
    return [sorted(faces, key=lambda face: ((face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2)) for faces in frames]
