"""Encode make_inputs.py's clip frames into input/clip.mp4 with a sound track (a 440 Hz tone), using
PyAV as ComfyUI's own video nodes do, so the video workflow's check can see the audio pass through.
Run with the Python that runs ComfyUI (it has PyAV):

    python tests/comfyui/make_clip.py FRAMES_DIR OUT.mp4 [FPS]
"""
import math
import os
import sys
from fractions import Fraction

import av
import numpy as np
from PIL import Image


def main(frames_dir: str, out_path: str, fps: int = 10):
    names = sorted(n for n in os.listdir(frames_dir) if n.endswith(".png"))
    frames = [np.asarray(Image.open(os.path.join(frames_dir, n)).convert("RGB")) for n in names]
    rate = 44100
    with av.open(out_path, mode="w") as container:
        video = container.add_stream("mpeg4", rate=Fraction(fps))
        video.height, video.width = frames[0].shape[:2]
        video.pix_fmt = "yuv420p"
        audio = container.add_stream("aac", rate=rate)
        for frame in frames:
            for packet in video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        samples = int(rate * len(frames) / fps)
        tone = (0.2 * np.sin(2 * math.pi * 440 * np.arange(samples) / rate)).astype(np.float32)[None]
        for start in range(0, samples, 1024):
            chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, start:start + 1024]), format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts = rate, start
            for packet in audio.encode(chunk):
                container.mux(packet)
        for packet in audio.encode():
            container.mux(packet)
    print(f"{out_path}: {len(frames)} frames at {fps} fps with sound")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], *(int(a) for a in sys.argv[3:]))
