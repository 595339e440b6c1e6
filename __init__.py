"""diffusion-face-restore: restore old, blurred, noisy and compressed faces with diffusion priors.

Two ways in, one package:
- ComfyUI loads this file from custom_nodes/: importing it registers our model folders, and
  ComfyUI's reading of NODE_CLASS_MAPPINGS imports the node classes (nodes/).
- Installed with pip (`import diffusion_face_restore`), it is the script API of restore/:
  `diffusion_face_restore.restore_folder("dr2", "photos/", "restored/")`, `Pipeline`, the steps
  (see restore/__init__.py); the node classes are not imported then.
Importing it loads no model and touches no network.
"""
import importlib

from .runtime import register_model_folders

register_model_folders()

NODE_MAPPINGS = ("NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS")
__all__ = list(NODE_MAPPINGS)


def __getattr__(name: str):
    # import_module, not `from . import`: that would ask this function for the submodule first
    if name in NODE_MAPPINGS:  # the node classes, imported when ComfyUI (or a test) asks for them
        return getattr(importlib.import_module(".nodes", __name__), name)
    if not name.startswith("_"):  # the script API (restore's __all__), imported on first use
        restore = importlib.import_module(".restore", __name__)
        if name in getattr(restore, "__all__", ()):  # (absent while restore/ itself is being imported)
            return getattr(restore, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(importlib.import_module(".restore", __name__).__all__))
