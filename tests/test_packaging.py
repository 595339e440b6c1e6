"""The checkout installs as a library: its wheel, built offline, installed into a fresh virtual
environment that sees no checkout, gives `import diffusion_face_restore` (the script API) and the
`dfr` command; pyproject.toml's package list and extras stay equal to the rooms and requirements."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv

import numpy as np
import pytest
from PIL import Image

from testdata import ROOT, golden_path, shared_path

from diffusion_face_restore.models.convert import convert_to_safetensors

tomllib = pytest.importorskip("tomllib", reason="Python >= 3.11 reads TOML itself")
# what a clone holds: no environment, no build output, no caches
NOT_IN_A_CLONE = shutil.ignore_patterns(".venv", ".git", "__pycache__", "build", "dist", "*.egg-info", ".ruff_cache", ".pytest_cache")

FIVE_LINES = """
import diffusion_face_restore as dfr
dfr.set_models_dir({models!r})
result = dfr.restore_folder("dr2", {photos!r}, {out!r}, overrides={{"detect.detector": "opencv-haar (built-in)", "sampler.respacing": "25"}})
print(dfr.__file__)
print(result["done"], result["failed"])
"""


def pyproject() -> dict:
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as handle:
        return tomllib.load(handle)


def requirement_lines(path: str) -> list[str]:
    with open(path, encoding="utf-8") as handle:
        return [line.strip() for line in handle if line.strip() and not line.startswith("#")]


def test_the_package_holds_every_room_and_the_test_extra_is_the_test_requirements():
    setuptools = pyproject()["tool"]["setuptools"]
    assert setuptools["package-dir"] == {"diffusion_face_restore": "."}
    rooms = sorted(os.path.relpath(folder, ROOT).replace(os.sep, ".") for folder, _, files in os.walk(ROOT)
                   if "__init__.py" in files and folder != ROOT
                   and os.path.relpath(folder, ROOT).split(os.sep)[0] not in ("tests", "benchmarks", ".venv", "build"))
    assert sorted(setuptools["packages"]) == sorted(["diffusion_face_restore"] + [f"diffusion_face_restore.{r}" for r in rooms])
    extras = pyproject()["project"]["optional-dependencies"]
    assert extras["test"] == requirement_lines(os.path.join(ROOT, "tests", "requirements.txt"))
    assert [r.split(">")[0] for r in extras["torch"]] == ["torch", "torchvision"]
    assert pyproject()["project"]["scripts"]["dfr"] == "diffusion_face_restore.dfr:main"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh virtual environment with the checkout's wheel installed (built offline, without build
    isolation), which sees the test environment's libraries (torch, ...) but no checkout."""
    work = tmp_path_factory.mktemp("wheel")
    clone = work / "diffusion-face-restore"
    shutil.copytree(ROOT, clone, ignore=NOT_IN_A_CLONE)
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", str(clone), "--no-build-isolation", "--no-deps", "--no-index",
                            "-w", str(work / "dist"), "-q"], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    wheels = os.listdir(work / "dist")
    assert len(wheels) == 1 and wheels[0].startswith("diffusion_face_restore-"), wheels
    environment = work / "env"
    venv.create(environment, with_pip=False)
    python = str(environment / ("Scripts" if os.name == "nt" else "bin") / "python")
    site = subprocess.check_output([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True).strip()
    with open(os.path.join(site, "test_environment.pth"), "w", encoding="utf-8") as handle:
        handle.write(sysconfig.get_paths()["purelib"] + "\n")  # torch, numpy, spandrel... not the pack
    install = subprocess.run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q",
                              str(work / "dist" / wheels[0])], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr
    return {"python": python, "bin": os.path.dirname(python), "site": site, "cwd": str(work)}


def run_installed(installed, command, **kwargs):
    environment = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DFR_MODELS_DIR")}
    return subprocess.run(command, cwd=installed["cwd"], env=environment, capture_output=True, text=True, timeout=900, **kwargs)


def test_the_dfr_command_runs_from_the_installed_package(installed):
    done = run_installed(installed, [os.path.join(installed["bin"], "dfr"), "--help"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: dfr ") and "batch" in done.stdout and "download" in done.stdout
    # the package data: the manifest, and the built-in detectors' weights with their licences
    check = "from diffusion_face_restore.restore.faces import MTCNN, RETINAFACE_BUILTIN, BUILTIN_FOLDER, detector_check; " \
            "import os, diffusion_face_restore.models.manifest as m; " \
            "print(detector_check(MTCNN), detector_check(RETINAFACE_BUILTIN), len(m.load_manifest()) > 10, " \
            "all(os.path.isfile(os.path.join(BUILTIN_FOLDER, f)) for f in ('mtcnn.LICENSE.txt', 'retinaface.LICENSE.txt')))"
    done = run_installed(installed, [installed["python"], "-c", check])
    assert done.returncode == 0 and done.stdout.split() == ["True"] * 4, done.stderr


def test_five_lines_restore_a_shared_photo_through_the_installed_package(installed, tmp_path):
    models = tmp_path / "models"
    (models / "face_diffusion").mkdir(parents=True)
    (models / "facerestore_models").mkdir()
    convert_to_safetensors(golden_path("checkpoints", "dr2", "reduced", "DR2_reduced.pkl"), str(models / "face_diffusion" / "DR2_FFHQ.safetensors"),
                           {"num_head_channels": 32})
    shutil.copy(golden_path("checkpoints", "dr2", "reduced", "SPARNet_reduced.pth"), models / "facerestore_models" / "SPARNetHD_FFHQ_DR2aug.pth")
    photos, out = tmp_path / "photos", tmp_path / "restored"
    photos.mkdir()
    shutil.copy(shared_path("images", "whole", "difface_hepburn_rgba.png"), photos / "hepburn.png")  # RGBA, one face
    script = FIVE_LINES.format(models=str(models), photos=str(photos), out=str(out))
    assert len(script.strip().splitlines()) == 5
    done = run_installed(installed, [installed["python"], "-c", script])
    assert done.returncode == 0, done.stderr
    location, outcome = done.stdout.strip().splitlines()[-2:]
    assert os.path.commonpath([location, installed["site"]]) == installed["site"], f"imported from {location}, not the installed package"
    assert outcome == "['hepburn.png'] []"
    original = np.asarray(Image.open(photos / "hepburn.png").convert("RGB"))
    restored = np.asarray(Image.open(out / "hepburn.png"))
    assert restored.shape == original.shape and np.abs(restored.astype(int) - original).mean() > 0.05, "the face was restored"


def test_a_pip_user_lists_and_runs_the_templates_by_name_and_sees_installed_commands(installed, tmp_path):
    dfr = os.path.join(installed["bin"], "dfr")
    listed = run_installed(installed, [dfr, "workflows"])
    assert listed.returncode == 0, listed.stderr
    assert "Face crop and paste - no weights needed\n    weight files: none" in listed.stdout
    assert "'dfr batch --workflow \"NAME\" INPUT OUTPUT'" in listed.stdout and "python dfr.py" not in listed.stdout
    refused = run_installed(installed, [dfr, "workflows", "--write"])
    assert refused.returncode == 1 and "checkout" in refused.stderr  # never writes into site-packages
    photos, out = tmp_path / "photos", tmp_path / "restored"
    photos.mkdir()
    shutil.copy(shared_path("images", "whole", "difface_whole_01.jpg"), photos / "group.jpg")
    done = run_installed(installed, [dfr, "batch", "--workflow", "Face crop and paste - no weights needed", str(photos), str(out)])
    assert done.returncode == 0, done.stderr
    assert os.path.exists(out / "group.png") and '"faces": 5' in (out / "manifest.jsonl").read_text()
    # a missing weight file names the installed command, in the pack's own message and the manifest's steps
    missing = run_installed(installed, [dfr, "batch", "--workflow", "DR2 restoration", str(photos), str(tmp_path / "dr2"),
                                        "--models-dir", str(tmp_path / "empty")])
    assert missing.returncode == 1 and "python dfr.py" not in missing.stderr
    assert "'dfr download detection_Resnet50_Final.pth'" in missing.stderr and "`dfr verify DR2_FFHQ.pkl`" in missing.stderr
    unknown = run_installed(installed, [dfr, "batch", "--workflow", "No such template", str(photos), str(tmp_path / "x")])
    assert unknown.returncode == 1 and "Face crop and paste - no weights needed" in unknown.stderr
