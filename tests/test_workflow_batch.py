"""`dfr.py batch --workflow`: a workflow saved from ComfyUI run headless over a folder of real photos
(and the video template on a real clip), the same pixels as its nodes give, a manifest that survives
a kill, bad photos reported, node types that cannot run refused by name. (tests/comfyui/run.sh compares the templates' outputs with a real
ComfyUI's, bit for bit.)"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

from testdata import ROOT, describe_video, shared_path, video_workflow_with_reduced_models, write_clip_with_sound

from diffusion_face_restore.headless.core_nodes import to_uint8
from diffusion_face_restore.nodes.face_nodes import FaceDetect, PasteBack
from diffusion_face_restore.restore.photos import load_photo
from diffusion_face_restore.tools.workflow_templates import CONTROL_SUFFIX, node_signature

DFR = os.path.join(ROOT, "dfr.py")
FACE_CROP = os.path.join(ROOT, "workflows", "Face crop and paste - no weights needed.json")


def batch(*args, check=True):
    run = subprocess.run([sys.executable, DFR, "batch", *args], capture_output=True, text=True, timeout=900)
    if check:
        assert run.returncode == 0, run.stderr
    return run


def manifest(folder) -> list[dict]:
    with open(os.path.join(folder, "manifest.jsonl"), encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for name in sorted(os.listdir(shared_path("images", "whole"))):
        shutil.copy(os.path.join(shared_path("images", "whole"), name), folder / name)
    return folder


def widget_values(workflow: dict, node_type: str) -> dict:
    node = next(n for n in workflow["nodes"] if n["type"] == node_type)
    names = node_signature(node_type)[1]
    return {k: v for k, v in zip(names, node["widgets_values"]) if not k.endswith(CONTROL_SUFFIX)}


def test_a_saved_workflow_gives_its_nodes_pixels_on_every_photo(photos, tmp_path):
    out = tmp_path / "out"
    batch("--workflow", FACE_CROP, str(photos), str(out))
    with open(FACE_CROP, encoding="utf-8") as handle:
        workflow = json.load(handle)
    detect, paste = widget_values(workflow, "FaceDetect"), widget_values(workflow, "PasteBack")
    records = {r["photo"]: r for r in manifest(out)}
    assert sorted(records) == sorted(os.listdir(photos))
    for name in os.listdir(photos):
        image = load_photo(str(photos / name))
        faces, crops, _, count = FaceDetect().detect(image, **detect)
        expected = to_uint8(PasteBack().paste(image, faces, crops, **paste)[0][0])
        written = np.asarray(Image.open(out / records[name]["outputs"][0]))
        assert np.array_equal(written, expected), name
        assert records[name]["status"] == "done" and records[name]["faces"] == count > 0


def test_api_format_and_ui_format_give_the_same_images(photos, tmp_path):
    """The UI-format template and the same graph in the API format ComfyUI's Export (API) writes."""
    with open(FACE_CROP, encoding="utf-8") as handle:
        workflow = json.load(handle)
    links = {link[0]: link for link in workflow["links"]}
    prompt = {}
    for node in workflow["nodes"]:
        if node["type"] in ("Note", "PreviewImage"):
            continue
        inputs = {k: v for k, v in zip(node_signature(node["type"])[1], node.get("widgets_values", [])) if not k.endswith(CONTROL_SUFFIX)}
        for socket in node.get("inputs", []):
            if socket.get("link") is not None:
                inputs[socket["name"]] = [str(links[socket["link"]][1]), links[socket["link"]][2]]
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    api = tmp_path / "api.json"
    api.write_text(json.dumps(prompt))
    batch("--workflow", FACE_CROP, str(photos), str(tmp_path / "ui"))
    batch("--workflow", str(api), str(photos), str(tmp_path / "api"))
    for name in sorted(os.listdir(tmp_path / "ui")):
        if name.endswith(".png"):
            assert np.array_equal(np.asarray(Image.open(tmp_path / "ui" / name)), np.asarray(Image.open(tmp_path / "api" / name)))


def test_killed_mid_batch_and_resumed_every_photo_is_restored_exactly_once(photos, tmp_path):
    many = tmp_path / "many"
    many.mkdir()
    for copy in range(3):
        for name in os.listdir(photos):
            stem, ext = os.path.splitext(name)
            shutil.copy(photos / name, many / f"{stem}_{copy}{ext}")
    out = tmp_path / "out"
    run = subprocess.Popen([sys.executable, DFR, "batch", "--workflow", FACE_CROP, str(many), str(out)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while time.time() < deadline and run.poll() is None:
        if os.path.exists(out / "manifest.jsonl") and len(manifest(out)) >= 2:
            break
        time.sleep(0.05)
    assert run.poll() is None, "the batch ended before it could be killed"
    run.send_signal(signal.SIGKILL)
    run.wait()
    first = manifest(out)
    assert 2 <= len(first) < 12
    resumed = batch("--workflow", FACE_CROP, str(many), str(out))
    assert "already done" in resumed.stdout
    records = manifest(out)
    done = [r["photo"] for r in records if r["status"] == "done"]
    assert sorted(done) == sorted(os.listdir(many)), "every photo is done exactly once"
    assert sorted(f for f in os.listdir(out) if f.endswith(".png") and ".partial" not in f) == \
        sorted(os.path.splitext(p)[0] + ".png" for p in os.listdir(many))
    # the photos finished before the kill were not restored again
    assert all(r in records for r in first)


def test_a_damaged_photo_and_a_photo_without_faces_are_reported_and_the_batch_goes_on(photos, tmp_path):
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    shutil.copy(photos / "difface_whole_00.jpg", mixed / "group.jpg")
    data = (photos / "difface_whole_00.jpg").read_bytes()
    (mixed / "damaged.jpg").write_bytes(data[: len(data) // 3])
    Image.fromarray(np.full((300, 400, 3), 128, np.uint8)).save(mixed / "wall.png")
    out = tmp_path / "out"
    run = batch("--workflow", FACE_CROP, str(mixed), str(out), check=False)
    assert run.returncode == 1  # something failed: the exit status says so
    records = {r["photo"]: r for r in manifest(out)}
    assert records["damaged.jpg"]["status"] == "failed" and "\n" not in records["damaged.jpg"]["reason"]
    assert records["damaged.jpg"]["reason"]
    assert records["wall.png"] == {**records["wall.png"], "status": "done", "faces": 0}
    assert np.array_equal(np.asarray(Image.open(out / "wall.png")), np.full((300, 400, 3), 128, np.uint8))  # passed through
    assert records["group.jpg"]["faces"] == 4
    assert not os.path.exists(out / "damaged.png")


def test_node_types_that_cannot_run_headless_are_refused_by_name_before_anything_runs(photos, tmp_path):
    # ComfyUI's own nodes (the DR-BFR template's Stable Diffusion nodes) need a ComfyUI installation:
    # this checkout is not in ComfyUI/custom_nodes and none is given, so they are refused by name
    workflow = os.path.join(ROOT, "workflows", "DR-BFR restoration with your trained ControlNet.json")
    run = batch("--workflow", workflow, str(photos), str(tmp_path / "out"), check=False)
    assert run.returncode == 1
    line = run.stderr.strip()
    assert "\n" not in line and "KSampler" in line and "CheckpointLoaderSimple" in line and "--comfyui DIR" in line
    assert "FaceDetect" not in line and "VAEEncode" in line  # the pack's nodes are not among them
    assert not os.path.exists(tmp_path / "out")
    # a folder that is not ComfyUI is refused as such, before anything runs
    run = batch("--workflow", workflow, str(photos), str(tmp_path / "out"), "--comfyui", str(photos), check=False)
    assert run.returncode == 1 and "is not a ComfyUI folder" in run.stderr and "\n" not in run.stderr.strip()
    assert not os.path.exists(tmp_path / "out")
    # so is $COMFYUI_DIR naming such a folder
    run = subprocess.run([sys.executable, DFR, "batch", "--workflow", workflow, str(photos), str(tmp_path / "out")],
                         capture_output=True, text=True, timeout=300, env={**os.environ, "COMFYUI_DIR": str(photos)})
    assert run.returncode == 1 and f"{photos} is not a ComfyUI folder" in run.stderr
    # a node of another custom pack: named as well
    with open(FACE_CROP, encoding="utf-8") as handle:
        graph = json.load(handle)
    graph["nodes"][0]["type"] = "ReActorFaceSwap"
    other_pack = tmp_path / "other_pack.json"
    other_pack.write_text(json.dumps(graph))
    run = batch("--workflow", str(other_pack), str(photos), str(tmp_path / "out"), check=False)
    assert run.returncode == 1 and "ReActorFaceSwap" in run.stderr
    # --comfyui belongs to --workflow
    run = batch("dr2", str(photos), str(tmp_path / "out"), "--comfyui", str(photos), check=False)
    assert run.returncode == 1 and "--comfyui goes with a saved workflow" in run.stderr
    no_save = tmp_path / "no_save.json"
    with open(FACE_CROP, encoding="utf-8") as handle:
        graph = json.load(handle)
    graph["nodes"] = [n for n in graph["nodes"] if n["type"] != "SaveImage"]
    no_save.write_text(json.dumps(graph))
    run = batch("--workflow", str(no_save), str(photos), str(tmp_path / "out"), check=False)
    assert run.returncode == 1 and "saves nothing" in run.stderr


def test_missing_weight_files_are_all_named_before_any_photo(photos, tmp_path):
    workflow = os.path.join(ROOT, "workflows", "DR2 restoration.json")
    run = subprocess.run([sys.executable, DFR, "batch", "--workflow", workflow, str(photos), str(tmp_path / "out"),
                          "--models-dir", str(tmp_path / "empty")], capture_output=True, text=True, timeout=300)
    assert run.returncode == 1
    for name in ("detection_Resnet50_Final.pth", "DR2_FFHQ.pkl", "SPARNetHD_FFHQ_DR2aug.pth"):
        assert name in run.stderr
    assert not os.path.exists(tmp_path / "out")


def test_headless_tiled_upscale_blends_tiles_like_one_pass():
    """A scale function that works per pixel gives the same result tiled (the ramps sum to one)."""
    from diffusion_face_restore.headless.core_nodes import tiled_scale

    pixels = torch.rand(1, 3, 700, 1100)
    double = lambda tile: torch.nn.functional.interpolate(tile, scale_factor=2, mode="nearest")  # noqa: E731
    assert torch.allclose(tiled_scale(pixels, double, 2), double(pixels), atol=1e-6)


def test_two_photos_that_would_write_the_same_output_are_refused(photos, tmp_path):
    clash = tmp_path / "clash"
    clash.mkdir()
    shutil.copy(photos / "difface_whole_00.jpg", clash / "portrait.jpg")
    Image.open(photos / "difface_whole_00.jpg").save(clash / "portrait.png")
    run = batch("--workflow", FACE_CROP, str(clash), str(tmp_path / "out"), check=False)
    assert run.returncode == 1 and "portrait.jpg and portrait.png" in run.stderr and "\n" not in run.stderr.strip()


def test_the_video_template_restores_a_real_clip_with_its_frames_rate_and_sound(tmp_path):
    """The video template (its FaceTrack on the built-in MTCNN) on 6 frames of a shared real clip with
    a sound track, DR2's and SPARNetHD's reduced networks under the official file names."""
    workflow, models = video_workflow_with_reduced_models(tmp_path)
    clip = tmp_path / "talk.mp4"
    write_clip_with_sound(clip)  # 6 frames, 192 x 256, 10 fps
    out = tmp_path / "out"
    batch("--workflow", workflow, str(clip), str(out), "--models-dir", models)
    (record,) = manifest(out)
    assert record["status"] == "done" and record["outputs"] == ["talk.mp4"] and record["faces"] >= 6
    decoded, rate, sounds = describe_video(out / "talk.mp4")
    assert (len(decoded), decoded[0].shape, rate, sounds) == (6, (256, 192, 3), 10, 1)
    rerun = batch("--workflow", workflow, str(clip), str(out), "--models-dir", models)
    assert "1 already done" in rerun.stdout


def test_reroutes_and_primitive_nodes_as_the_frontend_saves_them(photos, tmp_path):
    """FaceDetect's image through a Reroute, its min_confidence widget driven by a Primitive node (the
    value the frontend also keeps in the widget): the same pixels as the template."""
    with open(FACE_CROP, encoding="utf-8") as handle:
        workflow = json.load(handle)
    detect = next(n for n in workflow["nodes"] if n["type"] == "FaceDetect")
    image_socket = next(s for s in detect["inputs"] if s["name"] == "image")
    link = next(link for link in workflow["links"] if link[0] == image_socket["link"])
    reroute, primitive = max(n["id"] for n in workflow["nodes"]) + 1, max(n["id"] for n in workflow["nodes"]) + 2
    into_reroute, from_primitive = max(link[0] for link in workflow["links"]) + 1, max(link[0] for link in workflow["links"]) + 2
    workflow["nodes"].append({"id": reroute, "type": "Reroute", "mode": 0, "inputs": [{"name": "", "type": "*", "link": into_reroute}],
                              "outputs": [{"name": "", "type": "IMAGE", "links": [link[0]]}]})
    workflow["links"].append([into_reroute, link[1], link[2], reroute, 0, "IMAGE"])
    link[1], link[2] = reroute, 0
    workflow["nodes"].append({"id": primitive, "type": "PrimitiveNode", "mode": 0, "inputs": [],
                              "outputs": [{"name": "FLOAT", "type": "FLOAT", "links": [from_primitive], "widget": {"name": "min_confidence"}}],
                              "widgets_values": [widget_values(workflow, "FaceDetect")["min_confidence"], "fixed"]})
    detect["inputs"].append({"name": "min_confidence", "type": "FLOAT", "widget": {"name": "min_confidence"}, "link": from_primitive})
    workflow["links"].append([from_primitive, primitive, 0, detect["id"], len(detect["inputs"]) - 1, "FLOAT"])
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(workflow))
    batch("--workflow", FACE_CROP, str(photos), str(tmp_path / "template"))
    batch("--workflow", str(edited), str(photos), str(tmp_path / "edited"))
    for name in sorted(f for f in os.listdir(tmp_path / "template") if f.endswith(".png")):
        assert np.array_equal(np.asarray(Image.open(tmp_path / "template" / name)), np.asarray(Image.open(tmp_path / "edited" / name)))


def test_bypassed_nodes_hand_on_their_input_of_the_same_type_or_nothing(photos, tmp_path):
    """PasteBack bypassed: the photo itself is saved. FaceDetect bypassed: its faces output has no
    input of that type, so PasteBack gets none and the photo fails with a reason, as in ComfyUI."""
    with open(FACE_CROP, encoding="utf-8") as handle:
        workflow = json.load(handle)
    for node_type, name in (("PasteBack", "paste"), ("FaceDetect", "detect")):
        edited = json.loads(json.dumps(workflow))
        next(n for n in edited["nodes"] if n["type"] == node_type)["mode"] = 4
        (tmp_path / f"{name}.json").write_text(json.dumps(edited))
    batch("--workflow", str(tmp_path / "paste.json"), str(photos), str(tmp_path / "paste"))
    for record in manifest(tmp_path / "paste"):
        expected = to_uint8(load_photo(str(photos / record["photo"]))[0])
        assert np.array_equal(np.asarray(Image.open(tmp_path / "paste" / record["outputs"][0])), expected)
    run = batch("--workflow", str(tmp_path / "detect.json"), str(photos), str(tmp_path / "detect"), check=False)
    assert run.returncode == 1
    assert {r["status"] for r in manifest(tmp_path / "detect")} == {"failed"}
