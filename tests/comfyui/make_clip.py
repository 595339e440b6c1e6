"""Encode make_inputs.py's clip frames into input/clip.mp4 with a sound track (a 440 Hz tone), using
PyAV as ComfyUI's own video nodes do, so the video workflow's check can see the audio pass through.
Run with the Python that runs ComfyUI (it has PyAV):

    python tests/comfyui/make_clip.py FRAMES_DIR OUT.mp4 [FPS]

tests/test_video.py uses write_clip_with_tone for the headless path's sound.
"""
import math
import os
import sys
from fractions import Fraction

import av
import numpy as np
from PIL import Image


def write_clip_with_tone(frames, out_path: str, fps: int = 10, audio_codec: str = "aac", rate: int = 48000):
    """RGB uint8 frames [H, W, 3] into out_path (MPEG-4 video), with a mono 440 Hz tone as long as the clip."""
    with av.open(out_path, mode="w") as container:
        video = container.add_stream("mpeg4", rate=Fraction(fps))
        video.height, video.width = frames[0].shape[:2]
        video.pix_fmt = "yuv420p"
        audio = container.add_stream(audio_codec, rate=rate, layout="mono")
        for frame in frames:
            for packet in video.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        samples = int(rate * len(frames) / fps)
        tone = (0.2 * np.sin(2 * math.pi * 440 * np.arange(samples) / rate)).astype(np.float32)[None]
        sample_format = "fltp" if "fltp" in [f.name for f in audio.codec.audio_formats or []] else "flt"  # mono: same layout
        for start in range(0, samples, 1024):
            chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, start:start + 1024]), format=sample_format, layout="mono")
            chunk.sample_rate, chunk.pts = rate, start
            for packet in audio.encode(chunk):
                container.mux(packet)
        for packet in audio.encode():
            container.mux(packet)


def main(frames_dir: str, out_path: str, fps: int = 10):
    names = sorted(n for n in os.listdir(frames_dir) if n.endswith(".png"))
    frames = [np.asarray(Image.open(os.path.join(frames_dir, n)).convert("RGB")) for n in names]
    write_clip_with_tone(frames, out_path, fps)
    print(f"{out_path}: {len(frames)} frames at {fps} fps with sound")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], *(int(a) for a in sys.argv[3:]))
