"""The suite runs from any checkout folder, as users and ComfyUI Manager name it.

ComfyUI Manager clones the pack into `custom_nodes/<name>`, and the README's clone command names
the folder `diffusion-face-restore`: not a Python identifier. These tests copy the checkout into
such folders (one inside a ComfyUI-like tree whose own pytest.ini sits above the pack) and run
pytest there as the README says, in a fresh interpreter.
"""
import os
import shutil
import subprocess
import sys

import pytest

from testdata import ROOT, SHARED

NOT_COPIED = shutil.ignore_patterns(".git", ".venv", "venv", "__pycache__", "*.pyc", ".pytest_cache", "*.partial")
# ComfyUI's own pytest.ini (its root, above custom_nodes/): the pack's settings must win
COMFYUI_PYTEST_INI = "[pytest]\ntestpaths =\n  tests\n  tests-unit\naddopts = -s\npythonpath = .\n"


def copy_checkout(destination: str) -> str:
    shutil.copytree(ROOT, destination, ignore=NOT_COPIED)
    return destination


def run_pytest(folder: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    if SHARED:
        env["DFR_SHARED_DIR"] = SHARED
    return subprocess.run([sys.executable, "-m", "pytest", "-q", *args], cwd=folder, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("layout", ["diffusion-face-restore", "ComfyUI/custom_nodes/diffusion-face-restore", "my packs/face.restore v2"])
def test_the_suite_runs_from_a_folder_name_that_is_not_an_identifier(tmp_path, layout):
    if layout.startswith("ComfyUI/"):
        (tmp_path / "ComfyUI" / "custom_nodes").mkdir(parents=True)
        (tmp_path / "ComfyUI" / "pytest.ini").write_text(COMFYUI_PYTEST_INI)
    folder = copy_checkout(str(tmp_path / layout))
    ran = run_pytest(folder, os.path.join("tests", "test_schedule.py"))
    assert ran.returncode == 0 and " passed" in ran.stdout and "error" not in ran.stdout, ran.stdout[-3000:] + ran.stderr[-2000:]
    collected = run_pytest(folder, "--collect-only")
    assert collected.returncode == 0 and " collected" in collected.stdout, collected.stdout[-3000:] + collected.stderr[-2000:]
    # the same tests are found from tests/ itself (the root's pytest settings still apply)
    from_tests = run_pytest(os.path.join(folder, "tests"), "test_schedule.py")
    assert from_tests.returncode == 0, from_tests.stdout[-3000:] + from_tests.stderr[-2000:]
