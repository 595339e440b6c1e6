"""Shared fixtures: the pack imported under a fixed name, and real photos with faces."""
from __future__ import annotations

import glob
import os

import numpy as np
import pytest

from testdata import golden_path, load_reduced_dr2_prior, load_rgb, shared_path  # tests/ is on sys.path (pyproject: pythonpath)
from pack_import import import_pack  # noqa: E402  (testdata put the checkout on sys.path)

import_pack()


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    import skimage.data

    return skimage.data.astronaut()


@pytest.fixture(scope="session")
def grace_hopper() -> np.ndarray:
    from matplotlib import cbook

    with cbook.get_sample_data("grace_hopper.jpg") as handle:
        from PIL import Image

        return np.array(Image.open(handle).convert("RGB"))


@pytest.fixture(scope="session")
def whole_photos() -> dict[str, np.ndarray]:
    folder = shared_path("images", "whole")
    return {os.path.basename(p): load_rgb(p) for p in sorted(glob.glob(os.path.join(folder, "*")))}


@pytest.fixture(scope="session")
def aligned_faces() -> dict[str, np.ndarray]:
    folder = shared_path("images", "aligned")
    return {os.path.basename(p): load_rgb(p) for p in sorted(glob.glob(os.path.join(folder, "*.png")))}


@pytest.fixture(scope="module")
def dr2_prior(tmp_path_factory):
    """DR2's reduced official-layout test network, loaded through FaceDiffusionLoader."""
    from diffusion_face_restore import runtime

    yield load_reduced_dr2_prior(golden_path("checkpoints", "dr2", "reduced", "DR2_reduced.pkl"), str(tmp_path_factory.mktemp("models")))
    runtime.set_models_dir(None)
