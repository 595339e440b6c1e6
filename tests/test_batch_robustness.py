"""A batch that never lies, tried with what real archives hold: pictures of every kind (16-bit
greyscale and RGB scans, palette, CMYK, grey + alpha, EXIF rotation, TIFF, GIF, animations, truncated
files, scans over the pixel limit) each read as the picture it is or failed with its own manifest
line; broken workflows and bad settings refused in one line before the first photo, nothing
written; output folders checked before any work; Ctrl-C and SIGTERM stop with one line and a
complete manifest; in both `dfr batch --workflow` and pipeline mode."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
from PIL import Image

from testdata import ROOT, golden_path, psnr, shared_path

from diffusion_face_restore.headless.core_nodes import LoadImage
from diffusion_face_restore.models.convert import convert_to_safetensors
from diffusion_face_restore.restore.faces import HAAR
from diffusion_face_restore.restore.photos import load_photo

DFR = os.path.join(ROOT, "dfr.py")
FACE_CROP = os.path.join(ROOT, "workflows", "Face crop and paste - no weights needed.json")
PIPELINE_SETTINGS = ["--set", f"detect.detector={HAAR}", "--set", "sampler.respacing=25"]


def dfr(*args, timeout=900, **kwargs):
    return subprocess.run([sys.executable, DFR, *args], capture_output=True, text=True, timeout=timeout, **kwargs)


def manifest(folder) -> dict[str, dict]:
    with open(os.path.join(folder, "manifest.jsonl"), encoding="utf-8") as handle:
        return {record["photo"]: record for record in map(json.loads, handle)}


def face_photo() -> np.ndarray:
    """A real photo with one face, 8-bit RGB (a crop of a shared whole photo)."""
    photo = np.asarray(Image.open(shared_path("images", "whole", "difface_whole_00.jpg")).convert("RGB"))
    return np.ascontiguousarray(photo[: min(photo.shape[0], 420), : min(photo.shape[1], 420)])


def grey(photo: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)


def write_archive(folder) -> dict[str, np.ndarray]:
    """Pictures as archives hold them, each with what it shows as RGB in 0..1 (read independently of
    the pack: numpy and OpenCV), or None for files that must fail."""
    os.makedirs(folder, exist_ok=True)
    photo = face_photo()
    expected = {}
    grey16 = (grey(photo).astype(np.uint16) * 257)  # a 16-bit greyscale scan
    cv2.imwrite(os.path.join(folder, "scan_grey16.png"), grey16)
    expected["scan_grey16.png"] = np.repeat((grey16 / 65535.0)[..., None], 3, axis=-1)
    rgb16 = photo.astype(np.uint16) * 257
    cv2.imwrite(os.path.join(folder, "scan_rgb16.png"), rgb16[..., ::-1])
    expected["scan_rgb16.png"] = photo / 255.0
    Image.fromarray(photo).convert("CMYK").save(os.path.join(folder, "print_cmyk.jpg"), quality=95)
    expected["print_cmyk.jpg"] = photo / 255.0  # up to JPEG's loss
    Image.fromarray(grey(photo)).convert("LA").save(os.path.join(folder, "grey_alpha.png"))
    expected["grey_alpha.png"] = np.repeat((grey(photo) / 255.0)[..., None], 3, axis=-1)
    palette = Image.fromarray(photo).quantize(256)
    palette.save(os.path.join(folder, "palette.gif"))
    expected["palette.gif"] = np.asarray(palette.convert("RGB")) / 255.0
    Image.fromarray(photo).save(os.path.join(folder, "scan.tif"))
    expected["scan.tif"] = photo / 255.0
    rotated = Image.fromarray(np.ascontiguousarray(np.rot90(photo, 1)))  # stored on its side, EXIF says turn it back
    exif = rotated.getexif()
    exif[0x0112] = 6
    rotated.save(os.path.join(folder, "camera_rotated.jpg"), exif=exif, quality=95)
    expected["camera_rotated.jpg"] = photo / 255.0  # up to JPEG's loss
    with open(os.path.join(folder, "cut_short.jpg"), "wb") as handle:  # a copy cut off halfway
        Image.fromarray(photo).save(os.path.join(folder, "whole.jpg"), quality=90)
        data = open(os.path.join(folder, "whole.jpg"), "rb").read()
        handle.write(data[: len(data) // 3])
    os.remove(os.path.join(folder, "whole.jpg"))
    expected["cut_short.jpg"] = None
    big = np.zeros((1100, 1000, 3), np.uint8)  # over the --max-megapixels 1 the tests give
    big[: photo.shape[0], : photo.shape[1]] = photo
    Image.fromarray(big).save(os.path.join(folder, "huge_scan.png"))
    expected["huge_scan.png"] = None
    with open(os.path.join(folder, "notes.txt"), "w") as handle:
        handle.write("not a picture")
    return expected


def write_animation(path: str) -> list[np.ndarray]:
    """Three frames of a real photo as an animated GIF (palette) or WebP (lossless); what each shows."""
    photo = face_photo()
    frames = [photo, np.ascontiguousarray(photo[:, ::-1]), (photo * 0.8).astype(np.uint8)]
    pictures = [Image.fromarray(f).quantize(256) if path.endswith(".gif") else Image.fromarray(f) for f in frames]
    pictures[0].save(path, save_all=True, append_images=pictures[1:], duration=100, **({"lossless": True} if path.endswith(".webp") else {}))
    return [np.asarray(p.convert("RGB")) / 255.0 for p in pictures]


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    folder = tmp_path_factory.mktemp("archive")
    return folder, write_archive(folder)


@pytest.fixture(scope="module")
def reduced_models(tmp_path_factory):
    """DR2's reduced official networks under the official names (as tests/test_headless.py)."""
    models = tmp_path_factory.mktemp("models")
    (models / "face_diffusion").mkdir()
    (models / "facerestore_models").mkdir()
    convert_to_safetensors(golden_path("checkpoints", "dr2", "reduced", "DR2_reduced.pkl"),
                           str(models / "face_diffusion" / "DR2_FFHQ.safetensors"), {"num_head_channels": 32})
    import shutil

    shutil.copy(golden_path("checkpoints", "dr2", "reduced", "SPARNet_reduced.pth"), models / "facerestore_models" / "SPARNetHD_FFHQ_DR2aug.pth")
    return models


def read_rgb(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")) / 255.0


def assert_every_input_has_its_line(out, expected: dict, records: dict):
    assert sorted(records) == sorted(expected)  # notes.txt is not a picture: not an input
    for name, picture in expected.items():
        if picture is None:
            assert records[name]["status"] == "failed" and "\n" not in records[name]["reason"], name
        else:
            assert records[name]["status"] == "done", (name, records[name])
    assert not [f for f in os.listdir(out) if "partial" in f]


def test_workflow_batch_reads_every_picture_as_it_is_and_fails_the_rest_with_a_line(archive, tmp_path):
    folder, expected = archive
    out = tmp_path / "out"
    run = dfr("batch", "--workflow", FACE_CROP, str(folder), str(out), "--max-megapixels", "1")
    assert run.returncode == 1 and "Traceback" not in run.stderr + run.stdout  # some failed: the exit status says so
    assert "done 7, skipped 0 (already done), failed 2" in run.stdout
    records = manifest(out)
    assert_every_input_has_its_line(out, expected, records)
    assert "over this batch's limit of 1.0 (--max-megapixels)" in records["huge_scan.png"]["reason"]
    for name, picture in expected.items():
        if picture is None:
            continue
        # the face template pastes the faces back unchanged: its output is the picture itself, up to the
        # round trip (47-63 dB) and JPEG's loss; a 16-bit scan read as 8-bit codes would be white (6 dB)
        written = read_rgb(out / records[name]["outputs"][0])
        assert written.shape == picture.shape and psnr(written, picture) > 30, name
        assert records[name]["faces"] >= 1, name


def test_pipeline_batch_reads_every_picture_as_it_is_and_fails_the_rest_with_a_line(archive, reduced_models, tmp_path):
    folder, expected = archive
    animation = tmp_path / "in"
    os.makedirs(animation)
    for name in os.listdir(folder):
        os.link(folder / name, animation / name)
    write_animation(str(animation / "animated.gif"))
    expected = {**expected, "animated.gif": None}
    out = tmp_path / "out"
    run = dfr("batch", "dr2", str(animation), str(out), "--models-dir", str(reduced_models), "--max-megapixels", "1", *PIPELINE_SETTINGS)
    assert run.returncode == 1 and "Traceback" not in run.stderr + run.stdout
    assert "restored 7, skipped 0 (already done), failed 3" in run.stdout
    records = manifest(out)
    assert_every_input_has_its_line(out, expected, records)
    assert "3 frames" in records["animated.gif"]["reason"] and "--workflow" in records["animated.gif"]["reason"]
    for name, picture in expected.items():
        if picture is not None:  # DR2 changes the faces; the rest of the picture is the picture
            written = read_rgb(out / records[name]["outputs"][0])
            assert written.shape == picture.shape and np.abs(written - picture).mean() < 0.05, name
    again = dfr("batch", "dr2", str(animation), str(out), "--models-dir", str(reduced_models), "--max-megapixels", "1", *PIPELINE_SETTINGS)
    assert "restored 0, skipped 7 (already done), failed 3" in again.stdout  # failed ones are tried again


@pytest.mark.parametrize("kind", ["gif", "webp"])
def test_every_frame_of_an_animation_goes_through_the_workflow(kind, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    frames = write_animation(str(folder / f"animated.{kind}"))
    out = tmp_path / "out"
    run = dfr("batch", "--workflow", FACE_CROP, str(folder), str(out))
    assert run.returncode == 0, run.stderr
    record = manifest(out)[f"animated.{kind}"]
    assert record["outputs"] == ["animated_0.png", "animated_1.png", "animated_2.png"] and record["faces"] >= 3
    for name, frame in zip(record["outputs"], frames):
        assert psnr(read_rgb(out / name), frame) > 30


def test_a_picture_over_pillows_limit_is_read_within_the_batchs_limit(monkeypatch, tmp_path):
    """Pillow refuses pictures over its global limit (here lowered to 0.1 MP so that the test needs no
    200 MP file); the batch reads them up to its own limit, and refuses them over it, before decoding."""
    photo = face_photo()
    path = str(tmp_path / "scan.png")
    Image.fromarray(photo).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20_000)
    with pytest.raises(Image.DecompressionBombError):
        Image.open(path)
    assert np.array_equal(load_photo(path, max_pixels=10 ** 6)[0].numpy(), photo / np.float32(255))
    assert LoadImage().load_image(path, max_pixels=10 ** 6)[0].shape == (1, *photo.shape)
    with pytest.raises(ValueError, match="over this batch's limit of 0.1"):
        load_photo(path, max_pixels=100_000)
    assert Image.MAX_IMAGE_PIXELS == 20_000  # Pillow's own limit is left as it was


def mutated(change) -> str:
    with open(FACE_CROP, encoding="utf-8") as handle:
        workflow = json.load(handle)
    change(workflow)
    return workflow


def node(workflow, node_type):
    return next(n for n in workflow["nodes"] if n["type"] == node_type)


def set_widget(node_type, index, value):
    return lambda w: node(w, node_type)["widgets_values"].__setitem__(index, value)


def api_prompt(change=None) -> dict:
    prompt = {"1": {"class_type": "LoadImage", "inputs": {"image": "x.png"}},
              "2": {"class_type": "FaceDetect", "inputs": {"image": ["1", 0], "detector": "mtcnn (built-in)", "crop_size": "512",
                                                           "selection": "all", "index": 0, "min_confidence": 0.8,
                                                           "min_face_size": 16, "max_faces": 0}},
              "3": {"class_type": "PasteBack", "inputs": {"image": ["1", 0], "faces": ["2", 0], "restored_crops": ["2", 1], "blend": 1.0,
                                                          "color_match": "none", "parsing": "none", "keep_original_accessories": False,
                                                          "mask_erosion": 0.1, "mask_feather": 0.1}},
              "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "x"}}}
    if change:
        change(prompt)
    return prompt


def drop_link(workflow):
    workflow["links"] = [link for link in workflow["links"] if link[3] != node(workflow, "PasteBack")["id"] or link[4] != 1]


def link_to_missing_node(workflow):
    for link in workflow["links"]:
        if link[3] == node(workflow, "PasteBack")["id"] and link[4] == 1:
            link[1] = 999


BROKEN = {
    "blend 1e308": (mutated(set_widget("PasteBack", 0, 1e308)), "PasteBack (node 3): blend 1e+308 is above its maximum 1.0"),
    "mask_feather 1e308": (mutated(set_widget("PasteBack", 5, 1e308)), "mask_feather 1e+308 is above its maximum 0.5"),
    "NaN": (mutated(set_widget("FaceDetect", 4, float("nan"))), "min_confidence nan is not a finite number"),
    "out of range": (mutated(set_widget("FaceDetect", 5, -3)), "min_face_size -3 is below its minimum 0"),
    "text in an INT": (mutated(set_widget("FaceDetect", 3, "two")), "index 'two' is not a number"),
    "unknown choice": (mutated(set_widget("FaceDetect", 1, "300")), "crop_size '300' is not among its choices"),
    "dangling link": (mutated(drop_link), "required input faces is missing"),
    "link to a missing node": (mutated(link_to_missing_node), "input faces is linked to node 999, which is not in the workflow"),
    "API: output slot out of range": (api_prompt(lambda p: p["3"]["inputs"].__setitem__("restored_crops", ["2", 9])),
                                      "input restored_crops is linked to output 9 of FaceDetect (node 2), which has 4 output(s)"),
    "API: missing required input": (api_prompt(lambda p: p["3"]["inputs"].pop("faces")), "PasteBack (node 3): required input faces is missing"),
    "API: wrong type": (api_prompt(lambda p: p["3"]["inputs"].__setitem__("image", ["2", 0])),
                        "input image (IMAGE) is linked to output 0 of FaceDetect (node 2), which gives FACES"),
    "API: self-loop": (api_prompt(lambda p: p["3"]["inputs"].__setitem__("restored_crops", ["3", 0])),
                       "cycle (PasteBack (node 3) -> PasteBack (node 3))"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_workflow_is_refused_in_one_line_before_any_photo(case, tmp_path):
    workflow, problem = BROKEN[case]
    path = tmp_path / "workflow.json"
    path.write_text(json.dumps(workflow))
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(face_photo()).save(folder / "face.png")
    run = dfr("batch", "--workflow", str(path), str(folder), str(tmp_path / "out"), timeout=300)
    assert run.returncode == 1 and run.stdout == ""
    assert run.stderr.count("\n") == 1 and run.stderr.startswith("error: ") and problem in run.stderr, run.stderr
    assert not os.path.exists(tmp_path / "out")  # nothing written


@pytest.mark.parametrize("setting, problem", [("sampler.tau=abc", "--set sampler.tau 'abc' is not a number"),
                                              ("paste.blend=1e308", "--set paste.blend 1e+308 is above its maximum 1.0"),
                                              ("paste.mask_feather=NaN", "--set paste.mask_feather nan is not a finite number")])
def test_a_bad_setting_is_refused_in_one_line_before_any_photo(setting, problem, reduced_models, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(face_photo()).save(folder / "face.png")
    run = dfr("batch", "dr2", str(folder), str(tmp_path / "out"), "--models-dir", str(reduced_models), "--set", setting, timeout=300)
    assert run.returncode == 1 and run.stderr.count("\n") == 1 and problem in run.stderr, run.stderr
    assert not os.path.exists(tmp_path / "out")


def unwritable_folder(tmp_path) -> str:
    """A folder this process cannot write to: read-only permissions, or where root ignores them, /sys
    (a kernel file system that holds no new files)."""
    if os.geteuid() == 0:
        return "/sys"
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o555)
    return str(folder)


@pytest.mark.parametrize("mode", ["workflow", "pipeline"])
def test_output_places_are_checked_before_any_work(mode, reduced_models, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(face_photo()).save(folder / "face.png")
    (tmp_path / "a_file").write_text("")
    head = ["batch", "--workflow", FACE_CROP] if mode == "workflow" else ["batch", "dr2"]
    tail = [] if mode == "workflow" else ["--models-dir", str(reduced_models), *PIPELINE_SETTINGS]
    cases = {str(tmp_path / "a_file"): "is a file, not a folder",
             str(tmp_path / "a_file" / "out"): "cannot write to the output folder",
             unwritable_folder(tmp_path): "cannot write to the output folder",
             str(folder): "the output folder is the input folder"}
    for output, problem in cases.items():
        started = time.monotonic()
        run = dfr(*head, str(folder), output, *tail, timeout=300)
        assert run.returncode == 1 and run.stderr.count("\n") == 1 and problem in run.stderr, (output, run.stderr)
        assert time.monotonic() - started < 60  # refused before any photo is computed
    assert os.listdir(folder) == ["face.png"]
    # a subfolder of the input folder is fine, and its outputs are never taken for inputs
    inside = folder / "restored"
    for _ in range(2):
        run = dfr(*head, str(folder), str(inside), *tail)
        assert run.returncode == 0, run.stderr
    assert sorted(manifest(inside)) == ["face.png"] and sorted(os.listdir(folder)) == ["face.png", "restored"]


def many_photos(folder, count: int):
    os.makedirs(folder, exist_ok=True)
    photo = face_photo()
    for index in range(count):
        Image.fromarray(np.roll(photo, 7 * index, axis=1)).save(os.path.join(folder, f"photo_{index:02d}.png"))


def stop_after_first_line(command: list[str], out, how: int, timeout: float = 300) -> subprocess.CompletedProcess:
    """Start a batch, send `how` once its first photo is in the manifest, and wait for it to end."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    while not (os.path.exists(out / "manifest.jsonl") and os.path.getsize(out / "manifest.jsonl")):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.05)
    process.send_signal(how)
    stdout, stderr = process.communicate(timeout=120)
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


@pytest.mark.parametrize("mode, how", [("workflow", signal.SIGINT), ("pipeline", signal.SIGTERM)])
def test_a_stopped_batch_says_how_far_it_got_and_resumes(mode, how, reduced_models, tmp_path):
    folder, out = tmp_path / "in", tmp_path / "out"
    # the face-crop workflow takes about 0.3 s a photo: 30 leave seconds between the first manifest line
    # and the last, for the signal to arrive on a loaded machine (with 8 the batch could end first);
    # DR2 takes seconds a photo: fewer to finish on the rerun
    count = 30 if mode == "workflow" else 4
    many_photos(folder, count)
    command = [sys.executable, DFR, "batch", "--workflow", FACE_CROP] if mode == "workflow" else [sys.executable, DFR, "batch", "dr2"]
    command += [str(folder), str(out)] + ([] if mode == "workflow" else ["--models-dir", str(reduced_models), *PIPELINE_SETTINGS])
    stopped = stop_after_first_line(command, out, how)
    done = manifest(out)
    assert len(done) < count, "the batch ended before the signal arrived: give it more photos"
    assert stopped.returncode == 130 and "Traceback" not in stopped.stderr
    last = stopped.stderr.strip().splitlines()[-1]
    assert last.startswith("stopped: ") and "run the same command again to resume" in last
    assert done and all(r["status"] == "done" for r in done.values())
    assert f"stopped: {len(done)} done" in last
    assert not [f for f in os.listdir(out) if "partial" in f]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert finished.returncode == 0, finished.stderr
    assert f"skipped {len(done)} (already done)" in finished.stdout and sorted(manifest(out)) == sorted(os.listdir(folder))


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_sent_to_the_process_waits_for_the_manifest_line_while_other_threads_run(how, tmp_path):
    """A stop sent to the process (kill, a terminal's Ctrl-C) while an input's line is being recorded
    waits for the line and the run's count of it, even where other threads (torch's, Ray's) can take
    the signal: Python runs its handlers in the main thread whichever thread the signal reached."""
    import threading

    from diffusion_face_restore.restore.outcomes import read_manifest, record_outcome, stop_on_sigterm, stops_deferred

    previous = signal.getsignal(signal.SIGTERM)
    stop_on_sigterm()
    finished = threading.Event()
    other = threading.Thread(target=finished.wait, daemon=True)  # a thread that does not hold the signal back
    other.start()
    result = {"done": [], "skipped": [], "failed": []}
    inside = []
    try:
        with pytest.raises(KeyboardInterrupt):
            with stops_deferred():
                os.kill(os.getpid(), how)
                for _ in range(50):  # Python code runs on inside the block: a handler would run here
                    time.sleep(0.002)
                inside.append("finished")
                record_outcome(str(tmp_path), {"photo": "a.png", "status": "done", "outputs": ["a.png"]}, result)
        assert inside == ["finished"] and result["done"] == ["a.png"] and list(read_manifest(str(tmp_path))) == ["a.png"]
    finally:
        finished.set()
        signal.signal(signal.SIGTERM, previous)
