"""ComfyUI's core nodes that the pack's workflows use, as headless stand-ins that give the same
pixels, each with ComfyUI's input schema (INPUT_TYPES, for the batch's validation): LoadImage and
SaveImage (PIL, the same conversions), PreviewImage (nothing to show),
UpscaleModelLoader (spandrel) and ImageUpscaleWithModel (512 px tiles overlapping by 32, feathered,
as ComfyUI's tiled scaling does), and the video nodes LoadVideo, GetVideoComponents, CreateVideo
and SaveVideo (PyAV: frames decoded to RGB, written as H.264 yuv420p at the frame rate rounded to
1/1000, sound as AAC, as ComfyUI's video type writes them). The batch feeds LoadImage / LoadVideo
its input and collects what SaveImage / SaveVideo is given; writing the files is the batch's
(headless/batch.py)."""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch

from .. import runtime
from ..models.checkpoint import load_state_dict
from ..restore.photos import read_picture
from ..restore.weights import find_weights, weights_check

UPSCALE_TILE, UPSCALE_OVERLAP = 512, 32


class LoadImage:
    RETURN_TYPES = ("IMAGE", "MASK")
    FUNCTION = "load_image"

    @classmethod
    def INPUT_TYPES(cls):  # ComfyUI's lists the input folder's files; the batch feeds the path
        return {"required": {"image": ("STRING", {})}}

    def load_image(self, image: str, upload=None, max_pixels: int | None = None):
        """The picture at path `image` as ComfyUI's LoadImage hands it on: every frame the size of the
        first (an animated GIF or WebP, a multi-page TIFF) as an IMAGE batch, RGB in 0..1 with EXIF
        rotation applied, and each frame's mask (1 - alpha; a 64 x 64 zero mask where it has none).
        Unlike ComfyUI's (which clips 16-bit greyscale to white), 16-bit samples keep their range;
        `max_pixels`: the batch's pixel limit instead of Pillow's (restore/photos.py)."""
        images, alphas = read_picture(image, max_pixels)
        masks = [torch.zeros((64, 64), dtype=torch.float32) if alpha is None else 1.0 - alpha for alpha in alphas]
        if len({tuple(m.shape) for m in masks}) > 1:  # frames with and without alpha: full-size masks
            masks = [torch.zeros(images.shape[1:3]) if alpha is None else 1.0 - alpha for alpha in alphas]
        return images, torch.stack(masks)


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """One IMAGE [H, W, C] as SaveImage writes it: 255 x value, clipped, truncated to uint8."""
    return np.clip(255.0 * image.cpu().numpy(), 0, 255).astype(np.uint8)


class SaveImage:
    RETURN_TYPES = ()
    FUNCTION = "save_images"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE", {}), "filename_prefix": ("STRING", {"default": "ComfyUI"})}}

    def save_images(self, images: torch.Tensor, filename_prefix: str = "ComfyUI"):
        return {"images": images, "filename_prefix": filename_prefix}


class PreviewImage:
    RETURN_TYPES = ()
    FUNCTION = "preview"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE", {})}}

    def preview(self, images=None):
        return ()


class UpscaleModelLoader:
    RETURN_TYPES = ("UPSCALE_MODEL",)
    FUNCTION = "load_model"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model_name": (runtime.list_model_files("upscale_models"), {})}}

    @classmethod
    def VALIDATE_INPUTS(cls, model_name):
        """Before the batch: the file is in models/upscale_models (named with the others missing)."""
        return weights_check("upscale_models", model_name, f"the upscale model {model_name}")

    def load_model(self, model_name: str):
        from spandrel import ImageModelDescriptor, ModelLoader

        path = find_weights("upscale_models", model_name, f"the upscale model {model_name}")
        model = ModelLoader().load_from_state_dict(load_state_dict(path)).eval()
        if not isinstance(model, ImageModelDescriptor):
            raise ValueError(f"{model_name} is not a single-image upscale model (spandrel reads it as {type(model).__name__})")
        return (model,)


class ImageUpscaleWithModel:
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "upscale"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"upscale_model": ("UPSCALE_MODEL", {}), "image": ("IMAGE", {})}}

    @torch.no_grad()
    def upscale(self, upscale_model, image: torch.Tensor):
        device = runtime.torch_device()
        upscale_model.to(device)
        try:
            pixels = image.movedim(-1, -3).to(device)
            scaled = tiled_scale(pixels, lambda tile: upscale_model(tile), upscale_model.scale)
        finally:
            upscale_model.to("cpu")
        return (torch.clamp(scaled.movedim(-3, -1), 0.0, 1.0),)


def tiled_scale(pixels: torch.Tensor, scale_tile, scale: int, tile: int = UPSCALE_TILE, overlap: int = UPSCALE_OVERLAP) -> torch.Tensor:
    """Scale [B, C, H, W] by `scale` in tiles of `tile` px stepping by tile - overlap; each scaled tile
    is weighted by a ramp over its outer overlap x scale px and the weighted sum normalised."""
    batch, _, height, width = pixels.shape
    output = torch.empty((batch, 3, round(height * scale), round(width * scale)))
    for b in range(batch):
        photo = pixels[b:b + 1]
        if height <= tile and width <= tile:
            output[b:b + 1] = scale_tile(photo).cpu()
            runtime.check_cancel()
            continue
        total = torch.zeros((1, 3, round(height * scale), round(width * scale)))
        weight = torch.zeros_like(total)
        rows = range(0, height - overlap, tile - overlap) if height > tile else [0]
        columns = range(0, width - overlap, tile - overlap) if width > tile else [0]
        for top, left in itertools.product(rows, columns):
            top, left = max(0, min(height - overlap, top)), max(0, min(width - overlap, left))
            piece = photo[:, :, top:top + min(tile, height - top), left:left + min(tile, width - left)]
            scaled = scale_tile(piece).cpu()
            ramp = torch.ones_like(scaled)
            feather = round(overlap * scale)
            for dim in (2, 3):
                if feather >= ramp.shape[dim]:
                    continue
                for t in range(feather):
                    ramp.narrow(dim, t, 1).mul_((t + 1) / feather)
                    ramp.narrow(dim, ramp.shape[dim] - 1 - t, 1).mul_((t + 1) / feather)
            y, x = round(top * scale), round(left * scale)
            total[:, :, y:y + ramp.shape[2], x:x + ramp.shape[3]] += scaled * ramp
            weight[:, :, y:y + ramp.shape[2], x:x + ramp.shape[3]] += ramp
            runtime.check_cancel()
        output[b:b + 1] = total / weight
    return output


@dataclass
class Video:
    """A VIDEO between the nodes: a file to read, or frames (IMAGE), sound and a frame rate to write."""

    path: str | None = None
    images: torch.Tensor | None = None
    audio: dict | None = None
    frame_rate: Fraction | None = None


class LoadVideo:
    RETURN_TYPES = ("VIDEO",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):  # ComfyUI's lists the input folder's videos; the batch feeds the path
        return {"required": {"file": ("STRING", {})}}

    def load(self, file: str, upload=None):
        return (Video(path=file),)


class GetVideoComponents:
    RETURN_TYPES = ("IMAGE", "AUDIO", "FLOAT")
    RETURN_NAMES = ("images", "audio", "fps")
    FUNCTION = "components"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"video": ("VIDEO", {})}}

    def components(self, video: Video):
        """Every frame as RGB in 0..1, the sound ({"waveform" [1, channels, samples], "sample_rate"}
        or None) and the average frame rate."""
        import av

        if video.path is None:
            return video.images, video.audio, float(video.frame_rate)
        with av.open(video.path, mode="r") as container:
            frames = [torch.from_numpy(frame.to_ndarray(format="rgb24")) / 255.0 for frame in container.decode(video=0)]
            images = torch.stack(frames) if frames else torch.zeros(0, 3, 0, 0)
            stream = container.streams.video[0]
            frame_rate = Fraction(stream.average_rate) if stream.average_rate else Fraction(1)
            audio = None
            container.seek(0)
            for sound in container.streams.audio[:1]:
                chunks = [frame.to_ndarray() for packet in container.demux(sound) for frame in packet.decode()]
                if chunks:
                    audio = {"waveform": torch.from_numpy(np.concatenate(chunks, axis=1))[None],
                             "sample_rate": int(sound.sample_rate) if sound.sample_rate else 1}
        return images, audio, float(frame_rate)


class CreateVideo:
    RETURN_TYPES = ("VIDEO",)
    FUNCTION = "create"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE", {}), "fps": ("FLOAT", {"default": 30.0, "min": 1.0, "max": 120.0})},
                "optional": {"audio": ("AUDIO", {})}}

    def create(self, images: torch.Tensor, fps: float, audio: dict | None = None):
        return (Video(images=images, audio=audio, frame_rate=Fraction(fps)),)


class SaveVideo:
    RETURN_TYPES = ()
    FUNCTION = "save_video"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):  # the formats and codecs the headless writer has (ComfyUI's lists more)
        return {"required": {"video": ("VIDEO", {}), "filename_prefix": ("STRING", {"default": "video/ComfyUI"}),
                             "format": (["auto", "mp4"], {"default": "auto"}), "codec": (["auto", "h264"], {"default": "auto"})}}

    def save_video(self, video: Video, filename_prefix: str = "video/ComfyUI", format: str = "auto", codec: str = "auto"):
        if format not in ("auto", "mp4") or codec not in ("auto", "h264"):
            raise ValueError(f"SaveVideo writes mp4 with h264 (got format {format}, codec {codec})")
        return {"video": video}


def write_video(video: Video, path: str):
    """Frames, sound and frame rate as an H.264 (yuv420p) + AAC mp4 at path."""
    import av

    if video.path is not None:  # a loaded video saved as it is: re-encoded from its frames and sound
        images, audio, fps = GetVideoComponents().components(video)
        video = Video(images=images, audio=audio, frame_rate=Fraction(fps))
    frame_rate = Fraction(round(video.frame_rate * 1000), 1000)
    with av.open(path, mode="w", format="mp4", options={"movflags": "use_metadata_tags"}) as output:
        stream = output.add_stream("h264", rate=frame_rate)
        stream.width, stream.height = video.images.shape[2], video.images.shape[1]
        stream.pix_fmt = "yuv420p"
        sound = output.add_stream("aac", rate=int(video.audio["sample_rate"])) if video.audio else None
        for frame in video.images:
            pixels = (frame * 255).clamp(0, 255).byte().cpu().numpy()
            output.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24").reformat(format="yuv420p")))
        output.mux(stream.encode(None))
        if sound is not None:
            rate = int(video.audio["sample_rate"])
            waveform = video.audio["waveform"][:, :, :math.ceil((rate / frame_rate) * video.images.shape[0])]
            samples = waveform.movedim(2, 1).reshape(1, -1).float().numpy()
            frame = av.AudioFrame.from_ndarray(samples, format="flt", layout="mono" if waveform.shape[1] == 1 else "stereo")
            frame.sample_rate, frame.pts = rate, 0
            output.mux(sound.encode(frame))
            output.mux(sound.encode(None))


CORE_NODE_CLASSES = {cls.__name__: cls for cls in (LoadImage, SaveImage, PreviewImage, UpscaleModelLoader, ImageUpscaleWithModel,
                                                   LoadVideo, GetVideoComponents, CreateVideo, SaveVideo)}
