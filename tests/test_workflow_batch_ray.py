"""`dfr.py batch --workflow ... --ray`: the workflow batch on a local Ray cluster started by the test
(2 CPU workers), with a worker killed mid-batch and the whole run killed and resumed: every photo's
output present exactly once, the same pixels as on one machine; a folder of clips through the video
template: each clip's frames as on one machine, with its rate and sound."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from PIL import Image

from testdata import ROOT, describe_video, shared_path, video_workflow_with_reduced_models, write_clip_with_sound

ray = pytest.importorskip("ray", reason="the Ray tests need Ray (tests/requirements.txt installs it)")

from diffusion_face_restore import runtime  # noqa: E402
from diffusion_face_restore.headless.batch import run_workflow_batch  # noqa: E402
from diffusion_face_restore.restore.outcomes import read_manifest  # noqa: E402
from diffusion_face_restore.headless.distributed import run_workflow_batch_on_ray  # noqa: E402

DFR = os.path.join(ROOT, "dfr.py")
FACE_CROP = os.path.join(ROOT, "workflows", "Face crop and paste - no weights needed.json")


def lines(folder) -> list[dict]:
    path = os.path.join(folder, "manifest.jsonl")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    folder = tmp_path_factory.mktemp("many")
    whole = shared_path("images", "whole")
    for copy in range(3):
        for name in sorted(os.listdir(whole)):
            stem, ext = os.path.splitext(name)
            shutil.copy(os.path.join(whole, name), folder / f"{stem}_{copy}{ext}")
    return folder


@pytest.fixture(scope="module")
def one_machine(many, tmp_path_factory):
    """The batch in this process, with one torch thread as each one-CPU Ray worker has (the thread
    count changes float rounding: a grey level in a few pixels)."""
    import torch

    out = tmp_path_factory.mktemp("one_machine")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_workflow_batch(FACE_CROP, str(many), str(out), report=lambda *_: None)
    finally:
        torch.set_num_threads(threads)
    return out


def assert_exactly_once(many, out, reference):
    done = [r["photo"] for r in lines(out) if r["status"] == "done"]
    assert sorted(done) == sorted(os.listdir(many)), "every photo recorded done exactly once"
    written = sorted(f for f in os.listdir(out) if f.endswith(".png"))
    assert written == sorted(os.path.splitext(p)[0] + ".png" for p in os.listdir(many)), "no temporary or extra file left"
    for name in written:
        assert np.array_equal(np.asarray(Image.open(out / name)), np.asarray(Image.open(reference / name))), name


def test_a_worker_killed_mid_batch_loses_nothing_and_repeats_nothing(many, one_machine, tmp_path):
    out = tmp_path / "out"
    killed = {}

    def kill_a_worker_after_two_photos(actors):
        def kill():
            deadline = time.time() + 300
            while time.time() < deadline and len(lines(out)) < 2:
                time.sleep(0.05)
            killed["pid"] = ray.get(actors[0].pid.remote())
            os.kill(killed["pid"], signal.SIGKILL)
        threading.Thread(target=kill, daemon=True).start()

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        result = run_workflow_batch_on_ray(FACE_CROP, str(many), str(out), workers=2, report=lambda *_: None,
                                           on_started=kill_a_worker_after_two_photos)
    finally:
        ray.shutdown()
    assert "pid" in killed and not result["failed"]
    assert_exactly_once(many, out, one_machine)
    workers = {r["worker"] for r in lines(out)}
    assert len(workers) >= 2  # the photos were shared out (and the killed worker's were finished by others)
    assert any(w.endswith(f":{killed['pid']}") for w in workers)


def test_the_whole_run_stopped_and_started_again_resumes(many, one_machine, tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, DFR, "batch", "--workflow", FACE_CROP, str(many), str(out), "--ray", "local", "--ray-workers", "2"]
    run = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 600
    while time.time() < deadline and run.poll() is None and len(lines(out)) < 3:
        time.sleep(0.05)
    assert run.poll() is None, "the batch ended before it could be stopped"
    run.send_signal(signal.SIGTERM)  # a service manager's stop: one line, the manifest complete
    _, stderr = run.communicate(timeout=120)
    first = lines(out)
    assert 3 <= len(first) < 12
    assert run.returncode == 130 and "Traceback" not in stderr, stderr
    assert stderr.strip().splitlines()[-1].startswith(f"stopped: {len(first)} done and 0 failed in this run")
    assert all(record["status"] == "done" and os.path.exists(out / record["outputs"][0]) for record in first)
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(first)} already done" in resumed.stdout or "already done" in resumed.stdout
    assert_exactly_once(many, out, one_machine)
    assert read_manifest(out).keys() == set(os.listdir(many))


def test_a_photo_that_fails_on_a_worker_is_its_line_and_the_batch_goes_on(many, tmp_path):
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    for name in sorted(os.listdir(many))[:3]:
        os.link(many / name, folder / name)
    data = (many / sorted(os.listdir(many))[0]).read_bytes()
    (folder / "cut_short.png").write_bytes(data[: len(data) // 3])  # a damaged scan
    Image.fromarray(np.zeros((1400, 1600, 3), np.uint8)).save(folder / "huge.png")  # over --max-megapixels 2
    command = [sys.executable, DFR, "batch", "--workflow", FACE_CROP, str(folder), str(out), "--ray", "local", "--ray-workers", "2",
               "--max-megapixels", "2"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert run.returncode == 1 and "Traceback" not in run.stderr + run.stdout and "done 3, skipped 0 (already done), failed 2" in run.stdout
    records = read_manifest(out)
    assert records.keys() == set(os.listdir(folder))
    assert records["cut_short.png"]["status"] == records["huge.png"]["status"] == "failed"
    assert "over this batch's limit of 2.0" in records["huge.png"]["reason"] and "\n" not in records["cut_short.png"]["reason"]


def test_without_ray_the_option_says_how_to_get_it(many, tmp_path, monkeypatch):
    """--ray where Ray is not installed: one line saying what to install (Ray hidden from import)."""
    code = ("import runpy, sys; workflow, photos, out, root = sys.argv[1:5]; sys.modules['ray'] = None; "
            "sys.argv = ['dfr.py', 'batch', '--workflow', workflow, photos, out, '--ray', 'local']; "
            "runpy.run_path(root + '/dfr.py', run_name='__main__')")
    run = subprocess.run([sys.executable, "-c", code, FACE_CROP, str(many), str(tmp_path / "out"), ROOT], capture_output=True, text=True)
    assert run.returncode == 1 and "pip install" in run.stderr and "[ray]" in run.stderr


def test_a_folder_of_clips_on_ray_gives_each_clip_as_one_machine_does(tmp_path):
    """The video template (MTCNN, DR2's and SPARNetHD's reduced networks) over a folder of two real
    clips with sound, on 2 one-CPU Ray workers and in this process on one thread: each clip recorded
    once with its faces, its frame count, rate and sound kept, a rerun skipping both, and each clip's
    frames those of the one-machine run. Not bit for bit: x264, as ComfyUI's Save Video drives it,
    encodes the same frames a little differently from run to run (even in one process), so the two
    encodings of a clip must lie far closer to each other than to the clip that went in (or to the
    other clip's restoration)."""
    import torch

    workflow, models = video_workflow_with_reduced_models(tmp_path)
    clips = tmp_path / "clips"
    clips.mkdir()
    write_clip_with_sound(clips / "talk_a.mp4", "real_1.mp4", frames=4)
    write_clip_with_sound(clips / "talk_b.mp4", "real_2.mp4", frames=4, start=100)
    one, on_ray = tmp_path / "one_machine", tmp_path / "on_ray"
    runtime.set_models_dir(models)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        run_workflow_batch(workflow, str(clips), str(one), report=lambda *_: None)
        torch.set_num_threads(threads)
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            result = run_workflow_batch_on_ray(workflow, str(clips), str(on_ray), workers=2, report=lambda *_: None)
            again = run_workflow_batch_on_ray(workflow, str(clips), str(on_ray), workers=2, report=lambda *_: None)
        finally:
            ray.shutdown()
    finally:
        torch.set_num_threads(threads)
        runtime.set_models_dir(None)
    names = ["talk_a.mp4", "talk_b.mp4"]
    assert sorted(result["done"]) == names and not result["failed"]
    assert sorted(again["skipped"]) == names and not again["done"]
    assert sorted(r["photo"] for r in lines(on_ray)) == names
    assert sorted(f for f in os.listdir(on_ray) if f.endswith(".mp4")) == names
    for record in lines(on_ray):
        assert record["status"] == "done" and record["faces"] >= 4, record

    def distance(first, second) -> float:
        return float(np.mean([np.abs(a.astype(np.int16) - b).mean() for a, b in zip(first, second)]))

    decoded = {}
    for name in names:
        frames, rate, sounds = describe_video(on_ray / name)
        reference, reference_rate, _ = describe_video(one / name)
        source, _, _ = describe_video(clips / name)
        assert (len(frames), rate, sounds) == (4, 10, 1) and rate == reference_rate
        decoded[name] = frames, reference
        near, restored = distance(frames, reference), distance(reference, source)
        assert near < 0.05 * restored, (name, near, restored)
    crossed = distance(decoded["talk_a.mp4"][0], decoded["talk_b.mp4"][1])
    assert distance(*decoded["talk_a.mp4"]) < 0.05 * crossed, crossed
