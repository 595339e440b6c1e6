"""The runtime seam, below everything that runs networks (the restoration pipelines, the nodes,
training): devices and dtypes, network placement, cancel, progress and model folders, through
ComfyUI's model management when the pack runs inside ComfyUI and plain torch otherwise.

`host` is the one module of the pack that imports ComfyUI (comfy.*, folder_paths).
"""
from .host import (
    MODEL_FOLDERS,
    PRECISIONS,
    ManagedModule,
    attach_comfyui,
    check_cancel,
    command,
    commands_in,
    comfy_node_classes,
    find_comfyui,
    find_model_file,
    free_cached_memory,
    is_out_of_memory,
    in_comfyui,
    installed_as_package,
    items_that_fit,
    list_model_files,
    model_search_paths,
    models_dir_given,
    models_root,
    offload_device,
    output_device,
    pick_dtype,
    register_model_folders,
    set_models_dir,
    torch_device,
)
from .progress import Progress, TerminalProgress

__all__ = [
    "MODEL_FOLDERS", "PRECISIONS", "ManagedModule", "Progress", "TerminalProgress", "attach_comfyui", "check_cancel", "command", "commands_in",
    "comfy_node_classes", "find_comfyui", "find_model_file", "free_cached_memory", "in_comfyui", "installed_as_package", "is_out_of_memory",
    "items_that_fit", "list_model_files", "models_dir_given", "models_root",
    "model_search_paths", "offload_device", "output_device", "pick_dtype", "register_model_folders",
    "set_models_dir", "torch_device",
]
