"""The one module that talks to ComfyUI (comfy.* and folder_paths).

It answers: which device and dtype; put this network on the device (through ComfyUI's
ModelPatcher + load_models_gpu, so our models share VRAM management with every other model);
ComfyUI's progress bar; stop if the user pressed cancel; where model folders are.

Without ComfyUI (tests, scripts, dfr.py) it falls back to plain torch: the best available device,
no ComfyUI progress bar (runtime/progress.py draws a terminal line instead), no cancel, and model
folders under $DFR_MODELS_DIR (or set_models_dir).

A headless run of a saved workflow that needs ComfyUI's own nodes (KSampler, CheckpointLoaderSimple,
...) attaches a ComfyUI installation to this process (`attach_comfyui`): from then on the pack runs
as inside ComfyUI, on its model management and model folders.
"""
from __future__ import annotations

import functools
import os
import sys

import torch

try:  # ComfyUI present: use its model management
    import comfy.model_management as _model_management
    import comfy.model_patcher as _model_patcher
    import comfy.utils as _comfy_utils
    import folder_paths as _folder_paths

    IN_COMFYUI = True
except ImportError:
    _model_management = _model_patcher = _comfy_utils = _folder_paths = None
    IN_COMFYUI = False

_comfy_node_classes: dict | None = None  # ComfyUI's own nodes (nodes.py), once attached


# Our model folders (under ComfyUI's models/), and what goes in each.
MODEL_FOLDERS = {
    "facedetection": "face detectors (RetinaFace) and face parsers (ParseNet, BiSeNet)",
    "face_diffusion": "face diffusion priors (DifFace's iDDPM UNet, DR2's ADM UNet)",
    "facerestore_models": "face restorers (SPARNetHD, GFPGAN, RestoreFormer, CodeFormer), shared with other face packs",
    "degradation_models": "DR-BFR degradation representation bundles (DRM + token projector), trained with dfr.py",
}


# --- devices and dtypes -------------------------------------------------------------------------

def torch_device() -> torch.device:
    if IN_COMFYUI:
        return _model_management.get_torch_device()
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def offload_device() -> torch.device:
    return _model_management.unet_offload_device() if IN_COMFYUI else torch.device("cpu")


def output_device() -> torch.device:
    """Where node outputs (IMAGE, MASK) live."""
    return _model_management.intermediate_device() if IN_COMFYUI else torch.device("cpu")


PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def pick_dtype(choice: str = "auto", parameters: int = 0, supports_fp16: bool = True, supports_bf16: bool = True) -> torch.dtype:
    """The dtype to run a network in: the user's choice, or what the device does well.

    "auto" asks ComfyUI's model management (bf16 first, then fp16); without ComfyUI, bf16 on a
    CUDA device that supports it, fp16 on other CUDA devices, float32 elsewhere.
    """
    if choice != "auto":
        if choice not in _DTYPES:
            raise ValueError(f"unknown precision '{choice}' (choose one of {', '.join(PRECISIONS)})")
        return _DTYPES[choice]
    device = torch_device()
    if IN_COMFYUI:
        if supports_bf16 and _model_management.should_use_bf16(device, model_params=parameters, manual_cast=False):
            return torch.bfloat16
        if supports_fp16 and _model_management.should_use_fp16(device, model_params=parameters, manual_cast=False):
            return torch.float16
        return torch.float32
    if device.type == "cuda":
        if supports_bf16 and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        if supports_fp16:
            return torch.float16
    return torch.float32


def items_that_fit(bytes_per_item: int, wanted: int, cpu_limit: int = 4) -> int:
    """How many items (faces) to put through a network at once, given the free device memory."""
    device = torch_device()
    if device.type == "cpu":
        return max(1, min(wanted, cpu_limit))
    if IN_COMFYUI:
        free = _model_management.get_free_memory(device)
    elif device.type == "cuda":
        free = torch.cuda.mem_get_info(device)[0]
    else:
        return max(1, min(wanted, cpu_limit))
    return max(1, min(wanted, int(free * 0.8) // max(1, bytes_per_item)))


def is_out_of_memory(error: BaseException) -> bool:
    if IN_COMFYUI and isinstance(error, _model_management.OOM_EXCEPTION) and _model_management.OOM_EXCEPTION is not Exception:
        return True
    return isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in str(error).lower()


def free_cached_memory():
    if IN_COMFYUI:
        _model_management.soft_empty_cache()
    elif torch.cuda.is_available():
        torch.cuda.empty_cache()


# --- putting networks on the device --------------------------------------------------------------

class ManagedModule:
    """A network whose placement is managed: call `load()` before each use, get it on the device.

    The module keeps the dtypes it was given (cast it before wrapping it).
    """

    def __init__(self, module: torch.nn.Module):
        self.module = module
        self.device = torch_device()
        self._patcher = None
        if IN_COMFYUI:
            self._patcher = _model_patcher.ModelPatcher(self.module, load_device=self.device, offload_device=offload_device())

    def load(self, memory_required: int = 0) -> torch.nn.Module:
        if self._patcher is not None:
            _model_management.load_models_gpu([self._patcher], memory_required=memory_required, force_full_load=True)
        elif next(self.module.parameters()).device != self.device:
            self.module.to(self.device)
        return self.module


# --- cancel ----------------------------------------------------------------------------------------

def check_cancel():
    """Raise ComfyUI's interrupt exception if the user pressed cancel (no-op without ComfyUI)."""
    if IN_COMFYUI:
        _model_management.throw_exception_if_processing_interrupted()


def comfy_progress_bar(total: int):
    """ComfyUI's progress bar for the running node (None without ComfyUI)."""
    return _comfy_utils.ProgressBar(total) if IN_COMFYUI else None


# --- model folders ---------------------------------------------------------------------------------

_models_dir_override: str | None = None


def set_models_dir(path: str | None):
    """Without ComfyUI: the root holding facedetection/ and our other model folders."""
    global _models_dir_override
    _models_dir_override = path


def register_model_folders(models_dir: str | None = None, first: bool = False):
    """Add our folders (under models_dir, default ComfyUI's models folder) to ComfyUI without
    overwriting what extra_model_paths.yaml configured; `first`: searched before the others."""
    if not IN_COMFYUI:
        return
    for name in MODEL_FOLDERS:
        if name not in _folder_paths.folder_names_and_paths:
            _folder_paths.folder_names_and_paths[name] = ([], set(_folder_paths.supported_pt_extensions))
        _folder_paths.add_model_folder_path(name, os.path.join(models_dir or _folder_paths.models_dir, name), is_default=first)


def models_dir_given() -> str | None:
    """The models folder the user chose (set_models_dir or $DFR_MODELS_DIR), None if neither."""
    return _models_dir_override or os.environ.get("DFR_MODELS_DIR") or None


def models_root() -> str | None:
    """Without ComfyUI: the folder holding the model folders (set_models_dir, $DFR_MODELS_DIR or the
    default); None inside ComfyUI (its own folder settings apply)."""
    if IN_COMFYUI:
        return None
    return _models_dir_override or os.environ.get("DFR_MODELS_DIR") or default_models_dir()


def model_search_paths(folder: str) -> list[str]:
    if IN_COMFYUI:
        try:
            return _folder_paths.get_folder_paths(folder)
        except KeyError:
            return [os.path.join(_folder_paths.models_dir, folder)]
    return [os.path.normpath(os.path.join(models_root(), folder))]


PACK_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@functools.cache
def installed_as_package() -> bool:
    """Whether this pack is the one pip installed (its `dfr` command on the PATH), not a checkout."""
    try:
        from importlib import metadata

        located = metadata.distribution("diffusion-face-restore").locate_file("diffusion_face_restore")
    except Exception:  # noqa: BLE001 - no such distribution, or one metadata cannot place
        return False
    return os.path.isdir(str(located)) and os.path.samefile(str(located), PACK_DIR)


def command(arguments: str) -> str:
    """How the user runs one of the pack's commands, quoted for a message: 'dfr ...' where the pack
    is installed, else 'python dfr.py ...' in the pack's folder."""
    return f"'dfr {arguments}'" if installed_as_package() else f"'python dfr.py {arguments}' in the pack's folder"


def commands_in(text: str) -> str:
    """A message that names the pack's commands as a checkout runs them ('python dfr.py verify ...'),
    as this installation runs them ('dfr verify ...' where the pack is installed)."""
    return text.replace("python dfr.py ", "dfr ") if installed_as_package() else text


def default_models_dir() -> str:
    """Without ComfyUI running: ComfyUI/models when the pack sits in ComfyUI/custom_nodes/<pack>;
    otherwise (installed with pip, a checkout elsewhere) a folder of the user's own."""
    if os.path.basename(os.path.dirname(PACK_DIR)) == "custom_nodes":
        return os.path.normpath(os.path.join(PACK_DIR, os.pardir, os.pardir, "models"))
    if os.name == "nt":
        base = os.environ.get("LOCALAPPDATA") or os.path.expanduser("~")
    elif sys.platform == "darwin":
        base = os.path.expanduser("~/Library/Application Support")
    else:
        base = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return os.path.join(base, "diffusion-face-restore", "models")


def find_model_file(folder: str, filename: str) -> str | None:
    """The full path of `filename` in one of the folder's search paths, or None."""
    if IN_COMFYUI:
        found = _folder_paths.get_full_path(folder, filename)
        if found:
            return found
    for directory in model_search_paths(folder):
        path = os.path.join(directory, filename)
        if os.path.isfile(path):
            return path
    return None


def list_model_files(folder: str) -> list[str]:
    if IN_COMFYUI:
        try:
            return _folder_paths.get_filename_list(folder)
        except KeyError:
            return []
    found = set()
    for directory in model_search_paths(folder):
        if os.path.isdir(directory):
            for root, _, files in os.walk(directory):
                for name in files:
                    found.add(os.path.relpath(os.path.join(root, name), directory).replace(os.sep, "/"))
    return sorted(found)


# --- a ComfyUI installation attached to a headless run -----------------------------------------------

def in_comfyui() -> bool:
    """Whether the pack runs on ComfyUI's model management (inside ComfyUI, or attached to it)."""
    return IN_COMFYUI


def is_comfyui_dir(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "nodes.py")) and os.path.isdir(os.path.join(path, "comfy"))


def find_comfyui() -> str | None:
    """$COMFYUI_DIR (as given: attach_comfyui says if it is not ComfyUI), else the ComfyUI installation
    the pack sits in (ComfyUI/custom_nodes/<pack>), else None."""
    if os.environ.get("COMFYUI_DIR"):
        return os.path.abspath(os.environ["COMFYUI_DIR"])
    comfyui = os.path.dirname(os.path.dirname(PACK_DIR))
    return comfyui if os.path.basename(os.path.dirname(PACK_DIR)) == "custom_nodes" and is_comfyui_dir(comfyui) else None


def _has_accelerator() -> bool:
    mps = getattr(torch.backends, "mps", None)
    xpu = getattr(torch, "xpu", None)
    return torch.cuda.is_available() or bool(mps and mps.is_available()) or bool(xpu and xpu.is_available())


def attach_comfyui(directory: str) -> dict:
    """Load the ComfyUI installation at `directory` into this process and return its own node
    classes (nodes.py: samplers, checkpoint, CLIP, VAE, ControlNet, LoRA, latent and image nodes).

    As `python main.py` would, without a server: arguments at their defaults (`--cpu` where torch
    sees no GPU), its extra_model_paths.yaml read. Our model folders and ComfyUI's are searched under
    the models folder the user chose first (set_models_dir, $DFR_MODELS_DIR), then under ComfyUI's.
    From here on the pack runs on ComfyUI's model management, as inside ComfyUI."""
    global IN_COMFYUI, _model_management, _model_patcher, _comfy_utils, _folder_paths
    directory = os.path.abspath(directory)
    if _comfy_node_classes is not None:
        return _comfy_node_classes
    if not is_comfyui_dir(directory):
        raise ValueError(f"{directory} is not a ComfyUI folder (it has no nodes.py and comfy/): give the folder ComfyUI's main.py is in")
    loaded = sys.modules.get("nodes")
    if loaded is not None and not os.path.abspath(getattr(loaded, "__file__", "") or "").startswith(directory + os.sep):
        raise ValueError(f"a module named 'nodes' from {getattr(loaded, '__file__', '?')} is already loaded; run dfr.py from another folder")
    chosen_models = models_dir_given()
    sys.path.insert(0, directory)
    from comfy.cli_args import args  # parses no command line unless ComfyUI's main.py asked it to

    if not _has_accelerator():
        args.cpu = True  # ComfyUI would otherwise ask CUDA for its device while importing
    import comfy.model_management as model_management
    import comfy.model_patcher as model_patcher
    import comfy.utils as comfy_utils
    import folder_paths

    extra_paths = os.path.join(directory, "extra_model_paths.yaml")
    if os.path.isfile(extra_paths):
        from utils.extra_config import load_extra_path_config

        load_extra_path_config(extra_paths)
    comfy_models = folder_paths.models_dir
    chosen_models = chosen_models if chosen_models and os.path.abspath(chosen_models) != os.path.abspath(comfy_models) else None
    if chosen_models:
        for name, (paths, _) in list(folder_paths.folder_names_and_paths.items()):
            for path in [p for p in paths if os.path.abspath(p).startswith(os.path.abspath(comfy_models) + os.sep)]:
                folder_paths.add_model_folder_path(name, os.path.join(chosen_models, os.path.relpath(path, comfy_models)), is_default=True)
    import nodes  # noqa: F401  (before switching over: a ComfyUI that fails to import leaves the pack as it was)

    _model_management, _model_patcher, _comfy_utils, _folder_paths = model_management, model_patcher, comfy_utils, folder_paths
    IN_COMFYUI = True
    if chosen_models:
        register_model_folders(chosen_models, first=True)
    register_model_folders()
    return comfy_node_classes()


def comfy_node_classes() -> dict:
    """ComfyUI's own node classes once a ComfyUI is attached (or the pack runs inside one), else {}."""
    global _comfy_node_classes
    if _comfy_node_classes is None and IN_COMFYUI:
        import nodes as comfy_nodes

        _comfy_node_classes = dict(comfy_nodes.NODE_CLASS_MAPPINGS)
    return _comfy_node_classes or {}
