"""Faces through the frames of a clip: tracks with stable ids, landmarks smoothed over time.

Per-frame detection jitters: each frame's landmarks, hence its alignment, crop and paste mask, move
a little, and a restored face shimmers. Here detections are linked into tracks (predicted box
overlap, greedy), short gaps are bridged, and each track's landmarks and box are smoothed with a
forward-backward (Rauch-Tung-Striebel) Kalman smoother under a constant-velocity model: zero lag,
and a face that does not move is not moved at all (its measurements are reproduced exactly).

A face that leaves the picture for longer than `max_gap` frames and comes back gets a new id.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .detection import Detection

# measurement noise of a landmark, as a fraction of the eye distance (the built-in detector's
# landmarks are off by ~8 % on average; RetinaFace's by less)
LANDMARK_NOISE = 0.05


@dataclass
class Track:
    id: int
    observations: dict[int, Detection] = field(default_factory=dict)  # frame -> detection

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


def link_tracks(frames: list[list[Detection]], max_gap: int = 5, min_iou: float = 0.2) -> list[Track]:
    """Link per-frame detections into tracks: each frame, detections are matched greedily (best
    overlap first) to the boxes the live tracks predict; a track survives `max_gap` frames without a
    match; an unmatched detection starts a track. Ids count up in order of first appearance (left
    to right within a frame)."""
    tracks: list[Track] = []
    live: list[Track] = []
    for frame, detections in enumerate(frames):
        live = [t for t in live if frame - t.last <= max_gap + 1]
        pairs = sorted(
            ((box_iou(t.predicted_box(frame), d.box), ti, di) for ti, t in enumerate(live) for di, d in enumerate(detections)),
            reverse=True,
        )
        used_tracks, used_detections = set(), set()
        for iou, ti, di in pairs:
            if iou < min_iou:
                break
            if ti in used_tracks or di in used_detections:
                continue
            live[ti].observations[frame] = detections[di]
            used_tracks.add(ti)
            used_detections.add(di)
        new = [d for di, d in enumerate(detections) if di not in used_detections]
        for detection in sorted(new, key=lambda d: (d.box[0] + d.box[2]) / 2):
            track = Track(len(tracks), {frame: detection})
            tracks.append(track)
            live.append(track)
    return tracks


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


def smooth_tracks(tracks: list[Track], frame_count: int, strength: float = 0.5, min_length: int = 1) -> list[list[TrackedFace]]:
    """The faces of every frame, in reading order: each track's landmarks and box smoothed over its
    span (gaps bridged). Tracks with fewer than `min_length` observations are dropped (a detector's
    one-frame false alarm)."""
    frames: list[list[TrackedFace]] = [[] for _ in range(frame_count)]
    for track in tracks:
        if len(track.observations) < min_length:
            continue
        span = range(track.first, track.last + 1)
        observed = np.array([f in track.observations for f in span])
        values = np.zeros((len(span), 14))
        for i, f in enumerate(span):
            if observed[i]:
                d = track.observations[f]
                values[i] = np.concatenate([np.asarray(d.landmarks, np.float64).reshape(10), np.asarray(d.box, np.float64)])
        eye = float(np.median([np.linalg.norm(d.landmarks[1] - d.landmarks[0]) for d in track.observations.values()]))
        if strength > 0:
            values = rts_smooth(values, observed, *smoothing_variances(strength, max(eye, 1.0)))
        else:  # no smoothing: gaps interpolated linearly
            known = np.flatnonzero(observed)
            values = np.stack([np.interp(np.arange(len(span)), known, values[known, c]) for c in range(14)], 1)
        for i, f in enumerate(span):
            score = track.observations[f].score if observed[i] else 0.0
            frames[f].append(TrackedFace(f, track.id, values[i, 10:], values[i, :10].reshape(5, 2), score, bool(observed[i])))
    return [sorted(faces, key=lambda face: ((face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2)) for faces in frames]
