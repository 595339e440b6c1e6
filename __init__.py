"""diffusion-face-restore: restore old, blurred, noisy and compressed faces with diffusion priors.

ComfyUI loads this file: importing it registers our model folders, and ComfyUI's reading of
NODE_CLASS_MAPPINGS imports the node classes (nodes/). It loads no model and touches no network.
Scripts use the restoration pipelines (`restore/`) without the node classes being imported at all.
"""
from .runtime import register_model_folders

register_model_folders()

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]


def __getattr__(name: str):
    if name in __all__:  # the node classes, imported when ComfyUI (or a test) asks for them
        from . import nodes

        return getattr(nodes, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
