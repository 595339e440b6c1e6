"""Restoring a video file: a clip through a pipeline, tracked, in chunks, resumable, without ComfyUI.

    1. detection pass: every frame is read once and searched for faces (the pipeline's detector);
       the faces are linked into tracks and smoothed over the whole clip (face.tracking), and the
       result is kept in OUTPUT.work/tracks.json;
    2. restoration, chunk by chunk (`chunk_frames` frames in memory at a time): the chunk's faces are
       cut from the smoothed tracks, restored with the same noise per person (its track id), pasted
       back, and the frames written to OUTPUT.work/chunk_NNNNN/ with a marker when complete;
    3. the frames are encoded into OUTPUT (OpenCV, the input's fps and size) under a temporary name;
       the input's sound is copied beside them unchanged (PyAV, which ComfyUI installs), and the
       file renamed; the work folder is removed.
An interrupted run resumes: the tracks and every finished chunk are kept.
"""
from __future__ import annotations

import heapq
import json
import os
import shutil

import cv2
import numpy as np
import torch

from .. import runtime
from ..face.find import detect_frames, faces_from_tracks
from ..face.tracking import TrackedFace, link_tracks, smooth_tracks
from .faces import make_detector
from .pipelines import Pipeline

VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")
CHUNK_FRAMES = 24
DONE = "complete"


def is_video(path: str) -> bool:
    return os.path.isfile(path) and path.lower().endswith(VIDEO_EXTENSIONS)


def video_info(path: str) -> dict:
    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        raise ValueError(f"{path}: OpenCV cannot read this video")
    info = {"fps": capture.get(cv2.CAP_PROP_FPS) or 25.0, "width": int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
            "height": int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)), "frames": int(capture.get(cv2.CAP_PROP_FRAME_COUNT))}
    capture.release()
    return info


def read_chunks(path: str, chunk_frames: int):
    """(first frame index, IMAGE [n, H, W, 3]) for consecutive chunks of the video."""
    capture = cv2.VideoCapture(path)
    index, frames = 0, []
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(frame[..., ::-1].astype(np.float32) / 255.0)
            if len(frames) == chunk_frames:
                yield index, torch.from_numpy(np.stack(frames))
                index, frames = index + len(frames), []
        if frames:
            yield index, torch.from_numpy(np.stack(frames))
    finally:
        capture.release()


def write_json(path: str, value):
    temporary = path + ".partial"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(value, handle)
    os.replace(temporary, path)


def track_video(path: str, detect_settings: dict, chunk_frames: int, smoothing: float, max_gap: int, min_length: int,
                reidentify_seconds: float = 2.0, report=print) -> list[list[TrackedFace]]:
    detector = make_detector(detect_settings["detector"], detect_settings["min_confidence"])
    detections = []
    progress = runtime.TerminalProgress(video_info(path)["frames"], "detecting")
    for _, frames in read_chunks(path, chunk_frames):
        detections += detect_frames(frames, detector, min_score=detect_settings["min_confidence"],
                                    min_size=detect_settings["min_face_size"], max_faces=detect_settings["max_faces"],
                                    with_appearance=True)
        progress.update(frames.shape[0])
        runtime.check_cancel()
    reidentify_within = int(round(reidentify_seconds * video_info(path)["fps"]))
    tracked = smooth_tracks(link_tracks(detections, max_gap, reidentify_within=reidentify_within), len(detections), smoothing, min_length)
    report(f"{len(detections)} frames, faces in {sum(1 for f in tracked if f)}, {len({f.track for fr in tracked for f in fr})} person(s)")
    return tracked


def tracked_to_json(tracked: list[list[TrackedFace]]) -> list:
    return [[{"track": f.track, "box": f.box.tolist(), "landmarks": f.landmarks.tolist(), "score": f.score, "observed": f.observed}
             for f in frame] for frame in tracked]


def tracked_from_json(values: list) -> list[list[TrackedFace]]:
    return [[TrackedFace(index, f["track"], np.array(f["box"]), np.array(f["landmarks"]), f["score"], f["observed"]) for f in frame]
            for index, frame in enumerate(values)]


def restore_video(pipeline: str, input_path: str, output_path: str, seed: int = 0, overrides: dict | None = None,
                  chunk_frames: int = CHUNK_FRAMES, smoothing: float = 0.5, max_gap: int = 5, min_length: int = 3,
                  reidentify_seconds: float = 2.0, report=print) -> dict:
    """Restore every face of a video into output_path; returns {"frames", "chunks", "resumed_chunks"}."""
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames must be at least 1 (got {chunk_frames}): it is how many frames are restored at a time")
    if os.path.exists(output_path):
        report(f"{output_path} exists: nothing to do")
        return {"frames": 0, "chunks": 0, "resumed_chunks": 0}
    info = video_info(input_path)
    runner = Pipeline(pipeline, overrides)  # checks every weight file before any work
    work = output_path + ".work"
    os.makedirs(work, exist_ok=True)
    tracks_file = os.path.join(work, "tracks.json")
    if os.path.exists(tracks_file):
        with open(tracks_file, encoding="utf-8") as handle:
            tracked = tracked_from_json(json.load(handle))
    else:
        tracked = track_video(input_path, runner.settings["detect"], chunk_frames, smoothing, max_gap, min_length, reidentify_seconds,
                              report)
        write_json(tracks_file, tracked_to_json(tracked))
    crop_size = int(runner.settings["detect"]["crop_size"])
    chunks, resumed = 0, 0
    progress = runtime.TerminalProgress(len(tracked), pipeline)
    for first, frames in read_chunks(input_path, chunk_frames):
        folder = os.path.join(work, f"chunk_{first // chunk_frames:05d}")
        chunks += 1
        if os.path.exists(os.path.join(folder, DONE)):
            resumed += 1
            progress.update(frames.shape[0], "resumed")
            continue
        faces = faces_from_tracks(frames, tracked[first:first + frames.shape[0]], crop_size, "tracked")
        with torch.no_grad():
            restored = frames if len(faces) == 0 else runner.restore(frames, faces, faces.crops, seed, same_noise_per_person=True)
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        for offset, frame in enumerate(restored):
            array = (frame[..., :3].clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
            cv2.imwrite(os.path.join(folder, f"{first + offset:06d}.png"), array[..., ::-1])
        open(os.path.join(folder, DONE), "w").close()
        progress.update(frames.shape[0], f"chunk {chunks}")
        runtime.check_cancel()
    encode_frames(work, output_path, info, input_path, report)
    shutil.rmtree(work)
    return {"frames": len(tracked), "chunks": chunks, "resumed_chunks": resumed}


def encode_frames(work: str, output_path: str, info: dict, input_path: str, report=print):
    """Every chunk's frames, in order, into output_path with the input's sound (written under
    temporary names, then renamed)."""
    base, extension = os.path.splitext(output_path)
    silent = f"{base}.partial{extension or '.mp4'}"
    writer = cv2.VideoWriter(silent, cv2.VideoWriter_fourcc(*"mp4v"), info["fps"], (info["width"], info["height"]))
    if not writer.isOpened():
        raise ValueError(f"OpenCV cannot write {output_path} (try an .mp4 name)")
    try:
        for folder in sorted(f for f in os.listdir(work) if f.startswith("chunk_")):
            for name in sorted(n for n in os.listdir(os.path.join(work, folder)) if n.endswith(".png")):
                writer.write(cv2.imread(os.path.join(work, folder, name)))
    finally:
        writer.release()
    with_sound = f"{base}.partial-sound{extension or '.mp4'}"
    if copy_sound(input_path, silent, with_sound, report):
        os.replace(with_sound, output_path)
        os.remove(silent)
    else:
        os.replace(silent, output_path)


def copy_sound(source: str, silent: str, output: str, report=print) -> bool:
    """Write output: silent's video stream and source's audio streams, both copied packet by packet
    (no re-encoding, bounded memory). False, with output not left behind, where the source has no
    sound or it cannot be copied (PyAV missing, a codec the output's container cannot hold)."""
    try:
        import av
    except ImportError:
        report("if the clip has sound, it was not copied: that needs PyAV (ComfyUI's Python has it; or `pip install av`), "
               f"or afterwards: ffmpeg -i RESTORED -i {source} -map 0:v -map 1:a? -c copy OUT")
        return False
    try:
        with av.open(source) as original:
            sounds = list(original.streams.audio)
            if not sounds:
                return False
            with av.open(silent) as picture, av.open(output, "w") as out:
                video = picture.streams.video[0]
                # PyAV 13 and older: add_stream(template=...)
                like = getattr(out, "add_stream_from_template", None) or (lambda stream: out.add_stream(template=stream))
                streams = {("video", video.index): like(video)}
                streams.update({("audio", s.index): like(s) for s in sounds})

                def timed(kind, packets):
                    for packet in packets:
                        if packet.dts is not None:  # None marks a demuxer's end of stream
                            yield float(packet.dts * packet.time_base), kind, packet

                # the two files' packets interleaved by time, as a muxer expects them
                for _, kind, packet in heapq.merge(timed("video", picture.demux(video)), timed("audio", original.demux(*sounds)),
                                                   key=lambda item: item[0]):
                    packet.stream = streams[(kind, packet.stream.index)]
                    out.mux(packet)
        return True
    except (av.error.FFmpegError, ValueError) as error:
        report(f"the sound was not copied ({error}); the video is written without it")
        if os.path.exists(output):
            os.remove(output)
        return False
