"""diffusion-face-restore: restore old, blurred, noisy and compressed faces with diffusion priors.

ComfyUI loads this file; importing it registers the node classes and our model folders, and
loads no model and touches no network.
"""
from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
from .runtime import register_model_folders

register_model_folders()

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
