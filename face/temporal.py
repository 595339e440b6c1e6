"""Temporal smoothing of restored face crops along their tracks (aligned space)."""
from __future__ import annotations

import torch


def blend_along_tracks(crops: torch.Tensor, frames_and_tracks: list[tuple[int, int]], strength: float,
                       shot_starts=()) -> torch.Tensor:
    """A recursive blend per person: y_t = (1 - strength) x_t + strength y_{t-1}, where y_{t-1} is the
    same person's blended crop in the last frame it was seen (within 2 frames; after a longer gap, and
    at a frame that starts a new shot, the blend restarts). crops [N, S, S, C] in face order;
    frames_and_tracks: (frame, track) per crop. Untracked faces (track < 0) pass unchanged."""
    out = crops.clone()
    previous: dict[int, tuple[int, torch.Tensor]] = {}
    for index in sorted(range(len(frames_and_tracks)), key=lambda i: frames_and_tracks[i][0]):
        frame, track = frames_and_tracks[index]
        if track < 0:
            continue
        if track in previous and frame - previous[track][0] <= 2 and not any(previous[track][0] < s <= frame for s in shot_starts):
            out[index] = (1.0 - strength) * crops[index] + strength * previous[track][1]
        previous[track] = (frame, out[index])
    return out
