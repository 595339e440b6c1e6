"""pytest plugin: the checkout's root is the pack's package for ComfyUI, a plain folder for pytest.

The repository root is also the pack: ComfyUI imports its `__init__.py` by path, with relative
imports, whatever the folder is called (`custom_nodes/diffusion-face-restore`, a name with dots or
spaces). pytest, seeing that `__init__.py`, would collect the root as a test package and import it
under the folder's name: for a name that is not a Python identifier that import fails (every test
errors with "attempted relative import with no known parent package"), and for one that is, the
pack is imported a second time under a name nothing else uses. The tests import the pack under one
fixed name instead (pack_import), so for pytest the root is just the folder that holds tests/.

Loaded for every run by `addopts = "-p checkout_root"` in pyproject.toml (with `pythonpath`
pointing here), so it applies however pytest is started: from the root, from tests/, or with paths.
"""
from __future__ import annotations

from pathlib import Path

import pytest

CHECKOUT_ROOT = Path(__file__).resolve().parent.parent


@pytest.hookimpl(tryfirst=True)
def pytest_collect_directory(path: Path, parent):
    if path.resolve() == CHECKOUT_ROOT:
        return pytest.Dir.from_parent(parent, path=path)
    return None
