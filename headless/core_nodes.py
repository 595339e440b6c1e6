"""ComfyUI's core nodes that the pack's workflows use, as headless stand-ins that give the same
pixels: LoadImage and SaveImage (PIL, the same conversions), PreviewImage (nothing to show),
UpscaleModelLoader (spandrel) and ImageUpscaleWithModel (512 px tiles overlapping by 32, feathered,
as ComfyUI's tiled scaling does). The batch feeds LoadImage its photo and collects what SaveImage
is given; writing the files is the batch's (headless/batch.py)."""
from __future__ import annotations

import itertools

import numpy as np
import torch
from PIL import Image, ImageOps

from .. import runtime
from ..models.checkpoint import load_state_dict
from ..restore.weights import find_weights

UPSCALE_TILE, UPSCALE_OVERLAP = 512, 32


class LoadImage:
    RETURN_TYPES = ("IMAGE", "MASK")
    FUNCTION = "load_image"

    def load_image(self, image: str, upload=None):
        """The photo at path `image`: RGB in 0..1 (EXIF rotation applied) and its mask (1 - alpha;
        a 64 x 64 zero mask where there is no alpha), as ComfyUI's LoadImage (first frame)."""
        with Image.open(image) as opened:
            photo = ImageOps.exif_transpose(opened)
            if photo.mode == "I":
                photo = photo.point(lambda value: value * (1 / 255))
            rgb = torch.from_numpy(np.array(photo.convert("RGB")).astype(np.float32) / 255.0)[None]
            if "A" in photo.getbands():
                mask = 1.0 - torch.from_numpy(np.array(photo.getchannel("A")).astype(np.float32) / 255.0)
            elif photo.mode == "P" and "transparency" in photo.info:
                mask = 1.0 - torch.from_numpy(np.array(photo.convert("RGBA").getchannel("A")).astype(np.float32) / 255.0)
            else:
                mask = torch.zeros((64, 64), dtype=torch.float32)
        return rgb, mask[None]


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """One IMAGE [H, W, C] as SaveImage writes it: 255 x value, clipped, truncated to uint8."""
    return np.clip(255.0 * image.cpu().numpy(), 0, 255).astype(np.uint8)


class SaveImage:
    RETURN_TYPES = ()
    FUNCTION = "save_images"
    OUTPUT_NODE = True

    def save_images(self, images: torch.Tensor, filename_prefix: str = "ComfyUI"):
        return {"images": images, "filename_prefix": filename_prefix}


class PreviewImage:
    RETURN_TYPES = ()
    FUNCTION = "preview"

    def preview(self, images=None):
        return ()


class UpscaleModelLoader:
    RETURN_TYPES = ("UPSCALE_MODEL",)
    FUNCTION = "load_model"

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


CORE_NODE_CLASSES = {cls.__name__: cls for cls in (LoadImage, SaveImage, PreviewImage, UpscaleModelLoader, ImageUpscaleWithModel)}
