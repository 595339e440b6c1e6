"""`dfr batch PIPELINE INPUT OUTPUT --download` against a real HTTP server on loopback: what the
pipeline lacks is fetched, verified and used by the run; a wrong file is refused before any photo
and nothing half-written is left; a file no script can fetch stops the run at once, in one line.

The served files are DifFace's reduced official-layout test networks (SwinIR) and a random-weight
facexlib ParseNet, listed under the released names in a manifest of the test's own ($DFR_MANIFEST,
the mirror mechanism); the prior is placed by hand, as a user who has it would have it.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import torch
from PIL import Image

from testdata import ROOT, facexlib_module, golden_path, randomize_batchnorm

from diffusion_face_restore.models.convert import convert_to_safetensors
from diffusion_face_restore.models.manifest import MANIFEST_PATH
from diffusion_face_restore.restore.faces import HAAR

SERVED = {"swinir_restoration512_L1.pth": "upscale_models", "parsing_parsenet.pth": "facedetection"}


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    """A loopback HTTP server holding the test files under their released names: (url, {name: bytes})."""
    folder = tmp_path_factory.mktemp("mirror")
    shutil.copy(golden_path("checkpoints", "difface", "reduced", "swinir_reduced128.pth"), folder / "swinir_restoration512_L1.pth")
    torch.manual_seed(0)
    parsenet = facexlib_module("facexlib.parsing.parsenet")
    torch.save(randomize_batchnorm(parsenet.ParseNet(in_size=512, out_size=512, parsing_ch=19)).state_dict(), folder / "parsing_parsenet.pth")
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", {name: (folder / name).read_bytes() for name in SERVED}
    server.shutdown()


def manifest_for(mirror, path, wrong_hash: str | None = None) -> str:
    """The pack's manifest with the served files' URLs, sizes and hashes (one hash wrong if asked)."""
    url, files = mirror
    with open(MANIFEST_PATH, encoding="utf-8") as handle:
        manifest = json.load(handle)
    for entry in manifest["models"]:
        if entry["name"] in files:
            data = files[entry["name"]]
            entry.update(url=f"{url}/{entry['name']}", size=len(data), sha256=hashlib.sha256(data).hexdigest())
            if entry["name"] == wrong_hash:
                entry["sha256"] = "0" * 64
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(manifest, handle)
    return str(path)


@pytest.fixture
def models(tmp_path):
    """A models folder holding only DifFace's prior (the reduced test network, as .safetensors)."""
    root = tmp_path / "models"
    (root / "face_diffusion").mkdir(parents=True)
    convert_to_safetensors(golden_path("checkpoints", "difface", "reduced", "iddpm_reduced128_ema.pth"),
                           str(root / "face_diffusion" / "iddpm_ffhq512_ema500000.safetensors"), {"num_head_channels": 32})
    return root


@pytest.fixture
def photos(tmp_path, astronaut):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(astronaut[:256, 96:352]).save(folder / "astronaut.png")
    return folder


def batch(pipeline, photos, out, models, manifest=None, download=True):
    environment = {**os.environ, "DFR_MANIFEST": manifest or ""}
    environment.pop("DFR_MODELS_DIR", None)
    command = [sys.executable, os.path.join(ROOT, "dfr.py"), "batch", pipeline, str(photos), str(out), *(["--download"] if download else []),
               "--models-dir", str(models), "--set", f"detect.detector={HAAR}"]
    return subprocess.run(command, capture_output=True, text=True, timeout=900, env=environment)


def test_download_fetches_what_the_pipeline_lacks_verifies_it_and_restores_with_it(tmp_path, mirror, models, photos):
    out = tmp_path / "restored"
    done = batch("difface-fast", photos, out, models, manifest_for(mirror, tmp_path / "manifest.json"))
    assert done.returncode == 0, done.stderr
    for name, folder in SERVED.items():
        assert (models / folder / name).read_bytes() == mirror[1][name], f"{name} was not fetched as served"
        assert not (models / folder / (name + ".part")).exists()
    assert "restored 1, skipped 0" in done.stdout
    restored = np.asarray(Image.open(out / "astronaut.png")).astype(int)
    assert np.abs(restored - np.asarray(Image.open(photos / "astronaut.png"))).mean() > 1, "the face was restored"
    again = batch("difface-fast", photos, out, models, manifest_for(mirror, tmp_path / "manifest.json"))
    assert again.returncode == 0 and "restored 0, skipped 1" in again.stdout and "downloading" not in again.stdout


def test_a_wrong_file_is_refused_before_any_photo_and_nothing_half_written_is_left(tmp_path, mirror, models, photos):
    out = tmp_path / "restored"
    manifest = manifest_for(mirror, tmp_path / "manifest.json", wrong_hash="swinir_restoration512_L1.pth")
    done = batch("difface-fast", photos, out, models, manifest)
    assert done.returncode == 1
    errors = done.stderr.strip().splitlines()
    assert len(errors) == 1 and "swinir_restoration512_L1.pth: the downloaded file is wrong (sha256 differs" in errors[0], done.stderr
    assert not any(name.startswith("swinir") for name in os.listdir(models / "upscale_models")), "nothing half-written"
    assert not out.exists(), "no photo was restored"


def test_a_pipeline_needing_a_file_no_script_can_fetch_stops_at_once_naming_the_others(tmp_path, photos):
    out, empty = tmp_path / "restored", tmp_path / "empty"
    done = batch("dr2", photos, out, empty)  # the pack's own manifest: DR2's files are on Baidu
    assert done.returncode == 1
    errors = done.stderr.strip().splitlines()
    assert len(errors) == 1, done.stderr
    assert "pipeline 'dr2' needs DR2_FFHQ.pkl, SPARNetHD_FFHQ_DR2aug.pth, which no script can fetch" in errors[0]
    assert errors[0].endswith("these pipelines need no such file: difface, difface-fast, dr2-p2")
    assert not out.exists() and not empty.exists(), "nothing was fetched or written"


def test_without_download_the_missing_files_are_named_with_the_way_to_fetch_them(tmp_path, models, photos):
    done = batch("difface-fast", photos, tmp_path / "restored", models, download=False)
    assert done.returncode == 1
    errors = done.stderr.strip().splitlines()
    assert len(errors) == 1 and "is missing 2 weight file(s)" in errors[0], done.stderr
    assert errors[0].endswith("; add --download to fetch those a script can")
