"""Face restorers that add detail to aligned crops (SPARNetHD, GFPGAN, RestoreFormer, CodeFormer and
what spandrel knows), run with their correct input and output ranges; and 1x restorers (DifFace's
SwinIR) read through spandrel as ComfyUI's Load Upscale Model reads them."""
from __future__ import annotations

import functools
import logging
import os
import threading
import weakref
from dataclasses import dataclass

import torch

from .. import runtime
from ..face.image import check_finite, check_image_batch
from ..models import FACE_RESTORATION, build_model, identify
from ..models.checkpoint import CheckpointError, load_state_dict
from ..models.face_restorers import RESIZE_MODES, FaceRestorer, from_descriptor
from .checks import FP16_OVERFLOW_HINT
from .weights import find_weights, weights_check

log = logging.getLogger("diffusion_face_restore")

ENHANCER_FOLDER = "facerestore_models"
# activation memory of one 512 px face through a face restorer (SPARNetHD is the heaviest)
BYTES_PER_FACE = 1536 * 2 ** 20


@dataclass(eq=False)
class FaceEnhancer:
    """A loaded face restorer (the FACE_ENHANCER value)."""

    name: str
    restorer: FaceRestorer
    managed: runtime.ManagedModule


@functools.lru_cache(maxsize=1)
def spandrel_loader():
    """spandrel's ModelLoader, with the non-commercial extra architectures when installed."""
    import spandrel

    try:
        from spandrel_extra_arches import EXTRA_REGISTRY

        spandrel.MAIN_REGISTRY.add(*EXTRA_REGISTRY)
    except ImportError:
        pass
    except Exception:  # noqa: BLE001 - already registered (ComfyUI registers them too)
        pass
    return spandrel.ModelLoader()


_loaded: dict[tuple, FaceEnhancer] = {}
_lock = threading.Lock()


def load_enhancer_file(path: str) -> FaceEnhancer:
    stat = os.stat(path)
    key = (os.path.realpath(path), stat.st_size, stat.st_mtime_ns)
    with _lock:
        if key not in _loaded:
            name = os.path.basename(path)
            try:
                state_dict = load_state_dict(path)
                if identify(state_dict) is not None:
                    descriptor = build_model(state_dict, (FACE_RESTORATION,), name)
                else:
                    try:
                        descriptor = spandrel_loader().load_from_state_dict(dict(state_dict))
                    except Exception as error:  # noqa: BLE001 - spandrel raises many kinds
                        raise CheckpointError(f"{name}: not a face restorer this pack or spandrel knows ({str(error)[:200]})") from None
                restorer = from_descriptor(descriptor)
            except (CheckpointError, ValueError) as error:
                raise ValueError(f"{error} ({path})") from None
            _loaded[key] = FaceEnhancer(name, restorer, runtime.ManagedModule(restorer.module))
        return _loaded[key]


_wrapped_upscale_models: "weakref.WeakKeyDictionary[object, FaceEnhancer]" = weakref.WeakKeyDictionary()


def enhancer_from_upscale_model(descriptor) -> FaceEnhancer:
    """ComfyUI's UPSCALE_MODEL (a spandrel descriptor) as an enhancer, with the right ranges."""
    if descriptor not in _wrapped_upscale_models:
        restorer = from_descriptor(descriptor)
        _wrapped_upscale_models[descriptor] = FaceEnhancer(restorer.name, restorer, runtime.ManagedModule(restorer.module))
    return _wrapped_upscale_models[descriptor]


def run_enhancer(enhancer: FaceEnhancer, crops: torch.Tensor, fidelity: float, resize: str) -> torch.Tensor:
    """IMAGE [B, H, W, C] -> IMAGE at the network's size, batched on the device."""
    enhancer.managed.load(memory_required=BYTES_PER_FACE)  # moves the restorer's module onto the device
    device = enhancer.managed.device
    x = crops[..., :3].permute(0, 3, 1, 2).to(torch.float32).contiguous()  # some networks .view() features
    chunk = runtime.items_that_fit(BYTES_PER_FACE, x.shape[0])
    progress = runtime.Progress(x.shape[0], "Enhancer")
    outputs = []
    with torch.no_grad():
        for start in range(0, x.shape[0], chunk):
            part = x[start:start + chunk].to(device)
            out = enhancer.restorer.run(part, fidelity, resize).clamp(0.0, 1.0)
            outputs.append(out.cpu())
            progress.update(part.shape[0], preview=out[0].permute(1, 2, 0))
            runtime.check_cancel()
    return torch.cat(outputs).permute(0, 2, 3, 1)


def enhancer_check(model_name: str):
    """True when the enhancer's file is in place, else the one-line missing-file message."""
    return weights_check(ENHANCER_FOLDER, model_name, "FaceEnhancerLoader")


def load_face_enhancer(model_name: str) -> FaceEnhancer:
    """A face restorer from models/facerestore_models, loaded once per file."""
    enhancer = load_enhancer_file(find_weights(ENHANCER_FOLDER, model_name, "FaceEnhancerLoader"))
    log.info("face enhancer %s: %s", model_name, enhancer.restorer.name)
    return enhancer


def enhance_faces(crops: torch.Tensor, fidelity: float = 0.5, resize: str = RESIZE_MODES[0], enhancer: FaceEnhancer | None = None,
                  upscale_model=None) -> torch.Tensor:
    """Aligned crops (IMAGE) through a face restorer (a FaceEnhancer, or a spandrel descriptor of a face
    network), at the network's size, on the output device."""
    crops = check_finite(check_image_batch(crops, "the Enhancer's crops"), "the Enhancer's crops",
                         f"the node before the Enhancer produced invalid pixels; {FP16_OVERFLOW_HINT}")
    if enhancer is None and upscale_model is None:
        raise ValueError("Enhancer needs a face restorer: connect FaceEnhancerLoader or Load Upscale Model")
    if enhancer is not None and upscale_model is not None:
        raise ValueError("connect either an enhancer or an upscale model to Enhancer, not both")
    if enhancer is not None and not isinstance(enhancer, FaceEnhancer):
        raise TypeError(f"Enhancer's enhancer got a {type(enhancer).__name__}: connect FaceEnhancerLoader's output")
    chosen = enhancer if enhancer is not None else enhancer_from_upscale_model(upscale_model)
    if crops.shape[0] == 0:
        return crops
    return run_enhancer(chosen, crops, fidelity, resize).to(runtime.output_device())


def restorer_check(model_name: str):
    """True when the 1x restorer's file is in models/upscale_models, else the one-line message."""
    return weights_check("upscale_models", model_name, "the restorer")


def load_upscale_model(model_name: str):
    """A 1x restorer from models/upscale_models through spandrel (what ComfyUI's UpscaleModelLoader does)."""
    path = find_weights("upscale_models", model_name, "the restorer")
    return spandrel_loader().load_from_state_dict(dict(load_state_dict(path)))
