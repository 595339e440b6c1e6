"""Import this checkout as the package `diffusion_face_restore`, whatever its folder is called.

ComfyUI imports the pack by its folder path; tests, benchmarks and command-line tools use this
so that the pack's relative imports work from anywhere:

    from pack_import import import_pack
    dfr = import_pack()
    from diffusion_face_restore.face import alignment
"""
from __future__ import annotations

import importlib.util
import os
import sys

PACKAGE_NAME = "diffusion_face_restore"
PACK_DIR = os.path.dirname(os.path.abspath(__file__))


def import_pack():
    if PACKAGE_NAME in sys.modules:
        return sys.modules[PACKAGE_NAME]
    spec = importlib.util.spec_from_file_location(
        PACKAGE_NAME, os.path.join(PACK_DIR, "__init__.py"), submodule_search_locations=[PACK_DIR]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE_NAME] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[PACKAGE_NAME]
        raise
    return module


def shared_dir() -> str | None:
    """The project's shared test data (`../shared` beside the checkout, or $DFR_SHARED_DIR)."""
    for candidate in (os.environ.get("DFR_SHARED_DIR"), os.path.join(PACK_DIR, "..", "shared")):
        if candidate and os.path.isdir(candidate):
            return os.path.abspath(candidate)
    return None
