"""Ready for the Comfy Registry: pyproject.toml's fields, and what `comfy node validate` checks."""
import os
import re
import subprocess
import sys

import pytest
from PIL import Image

from testdata import ROOT

tomllib = pytest.importorskip("tomllib", reason="Python >= 3.11 reads TOML itself")
REPOSITORY = "https://github.com/diffusion-face-restore/diffusion-face-restore"


def pyproject() -> dict:
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as handle:
        return tomllib.load(handle)


def test_pyproject_has_what_the_registry_requires():
    project, comfy = pyproject()["project"], pyproject()["tool"]["comfy"]
    assert re.fullmatch(r"[a-z][a-z0-9]*(?:[-_.][a-z0-9]+)*", project["name"]) and "comfyui" not in project["name"].lower()
    assert re.fullmatch(r"\d+\.\d+\.\d+", project["version"]), "the Registry wants a semantic X.Y.Z version"
    assert os.path.isfile(os.path.join(ROOT, project["license"]["file"]))
    assert project["urls"]["Repository"] == REPOSITORY
    assert comfy["PublisherId"] and comfy["DisplayName"] and comfy["requires-comfyui"]
    with open(os.path.join(ROOT, "requirements.txt"), encoding="utf-8") as handle:
        requirements = [line.strip() for line in handle if line.strip() and not line.startswith("#")]
    assert project["dependencies"] == requirements, "pyproject's dependencies and requirements.txt must agree"
    assert not any(re.match(r"torch(vision|audio)?\b", r) for r in requirements), "torch is the user's own"


def test_the_icon_exists_in_the_checkout_and_fits_the_registry():
    icon = pyproject()["tool"]["comfy"]["Icon"]
    prefix = REPOSITORY.replace("https://github.com/", "https://raw.githubusercontent.com/") + "/main/"
    assert icon.startswith(prefix), icon
    path = os.path.join(ROOT, *icon[len(prefix):].split("/"))
    with Image.open(path) as image:  # made by benchmarks/readme_pictures.py from a real photo
        assert image.format in ("PNG", "JPEG", "GIF") and image.width <= 800 and image.height <= 400


def test_no_exec_no_eval_no_two_statements_on_a_line():
    """What `comfy node validate` runs before publishing (ruff S102, S307, E702), here as a failure."""
    pytest.importorskip("ruff", reason="ruff is in tests/requirements.txt")
    result = subprocess.run([sys.executable, "-m", "ruff", "check", ".", "-q", "--no-cache", "--select", "S102,S307,E702"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
