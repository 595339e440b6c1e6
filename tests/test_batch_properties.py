"""Property-based tests of the workflow batch (Hypothesis): workflows generated from the shipped
templates with mutated widget values (out of range, NaN, infinite, wrong types, missing), dropped or
rewired links and removed nodes, over folders of generated picture files (random modes, sizes,
formats and truncations). For every case:

- no traceback: the batch either refuses in one line before any photo (a ValueError, nothing
  written: the output folder does not exist) or runs;
- when it runs, every input has its manifest line, a failure's reason is one line, and every output
  recorded exists; a picture that is not damaged is done (one without faces passes through);
- with the face template's graph and valid values, every output recorded done is the restoration
  the nodes themselves give on the picture read independently (bit for bit), and a mutation to an
  invalid value is always refused.

The examples are derandomised (the same cases on every run, as CI needs). A longer run, locally:
    DFR_PROPERTY_EXAMPLES=500 scripts/test tests/test_batch_properties.py
"""
from __future__ import annotations

import io
import json
import math
import os
import shutil
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from testdata import ROOT, shared_path

from diffusion_face_restore import runtime
from diffusion_face_restore.headless.batch import run_workflow_batch
from diffusion_face_restore.headless.core_nodes import to_uint8
from diffusion_face_restore.nodes import NODE_CLASS_MAPPINGS
from diffusion_face_restore.nodes.face_nodes import FaceDetect, PasteBack
from diffusion_face_restore.restore.checks import choices_of, input_specs
from diffusion_face_restore.restore.outcomes import read_manifest
from diffusion_face_restore.tools.workflow_templates import CONTROL_SUFFIX, node_signature

EXAMPLES = int(os.environ.get("DFR_PROPERTY_EXAMPLES", "25"))
PROPERTY = settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
WORKFLOWS = os.path.join(ROOT, "workflows")
TEMPLATES = sorted(f for f in os.listdir(WORKFLOWS) if f.endswith(".json"))
FACE_TEMPLATE = "Face crop and paste - no weights needed.json"
# choices that need a weight file no test folder holds: valid to ComfyUI, refused for the missing file
NEEDS_WEIGHTS = {"retinaface_resnet50", "retinaface_mobile0.25", "parsenet", "bisenet"}


def load_template(name: str) -> dict:
    with open(os.path.join(WORKFLOWS, name), encoding="utf-8") as handle:
        return json.load(handle)


def widget_slots(node: dict) -> list[tuple[int, str, object, dict]]:
    """(position in widgets_values, name, type, options) of a UI node's widgets that its class declares."""
    cls = NODE_CLASS_MAPPINGS.get(node["type"])
    if cls is None:
        return []
    specs = input_specs(cls)
    names = node_signature(node["type"])[1]
    return [(i, name, specs[name][1], specs[name][2]) for i, name in enumerate(names)
            if not name.endswith(CONTROL_SUFFIX) and name in specs and i < len(node.get("widgets_values") or [])]


def valid_values(kind, options: dict):
    choices = choices_of(kind, options)
    if choices is not None:
        usable = [c for c in choices if c not in NEEDS_WEIGHTS]
        return st.sampled_from(usable) if usable else st.nothing()
    low, high = options.get("min"), options.get("max")
    if kind == "INT":
        return st.integers(min_value=int(low) if low is not None else -10 ** 6, max_value=int(high) if high is not None else 10 ** 6)
    if kind == "FLOAT":
        return st.floats(min_value=float(low) if low is not None else -1e6, max_value=float(high) if high is not None else 1e6,
                         allow_nan=False)
    if kind == "BOOLEAN":
        return st.booleans()
    return st.text(max_size=8)


def invalid_values(kind, options: dict):
    choices = choices_of(kind, options)
    if choices is not None:
        return st.one_of(st.text(max_size=12).filter(lambda v: v not in choices), st.integers(), st.none())
    if kind in ("INT", "FLOAT"):
        out_of_range = []
        low, high = options.get("min"), options.get("max")
        if kind == "INT":
            out_of_range += [st.integers(max_value=int(low) - 1)] if low is not None else []
            out_of_range += [st.integers(min_value=int(high) + 1)] if high is not None else []
        else:
            out_of_range += [st.floats(max_value=float(low), exclude_max=True, allow_nan=False)] if low is not None else []
            out_of_range += [st.floats(min_value=float(high), exclude_min=True, allow_nan=False)] if high is not None else []
        return st.one_of(*out_of_range, st.just(math.nan), st.just(math.inf), st.just(1e308) if options.get("max") else st.just(math.nan),
                         st.text(alphabet="abcxyz", min_size=1, max_size=5), st.none(), st.lists(st.integers(), max_size=2))
    if kind == "BOOLEAN":
        return st.one_of(st.text(alphabet="mayb", min_size=1, max_size=5), st.just(2), st.just(0.5), st.none())
    return st.one_of(st.none(), st.lists(st.integers(), max_size=2))


@st.composite
def widget_mutations(draw, workflow: dict):
    """The workflow with some widgets of the face pipeline's nodes changed; whether any change is
    invalid (then the batch must refuse)."""
    workflow = json.loads(json.dumps(workflow))
    invalid = set()  # (node id, widget) whose value is now invalid or missing
    nodes = [n for n in workflow["nodes"] if widget_slots(n)]
    for node in draw(st.lists(st.sampled_from(nodes), max_size=3)) if nodes else []:
        slots = widget_slots(node)
        if not slots:  # every widget of it already cut off
            continue
        index, name, kind, options = draw(st.sampled_from(slots))
        if draw(st.booleans()):
            node["widgets_values"][index] = draw(valid_values(kind, options))
            invalid.discard((node["id"], name))
        elif draw(st.integers(0, 4)) == 0:  # the widget and those after it missing (an older version's file)
            invalid |= {(node["id"], later) for i, later, _, _ in slots if i >= index}
            del node["widgets_values"][index:]
        else:
            node["widgets_values"][index] = draw(invalid_values(kind, options))
            invalid.add((node["id"], name))
    return workflow, bool(invalid)


@st.composite
def structural_mutations(draw, workflow: dict):
    """The workflow with links dropped or rewired to other nodes' outputs, or nodes removed."""
    workflow = json.loads(json.dumps(workflow))
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["drop link", "rewire link", "remove node", "dangle link"]))
        if action == "drop link" and workflow["links"]:
            workflow["links"].pop(draw(st.integers(0, len(workflow["links"]) - 1)))
        elif action == "rewire link" and workflow["links"]:
            link = workflow["links"][draw(st.integers(0, len(workflow["links"]) - 1))]
            source = draw(st.sampled_from(workflow["nodes"]))
            link[1], link[2] = source["id"], draw(st.integers(0, 5))
        elif action == "remove node":
            workflow["nodes"].pop(draw(st.integers(0, len(workflow["nodes"]) - 1)))
        elif action == "dangle link" and workflow["links"]:
            workflow["links"][draw(st.integers(0, len(workflow["links"]) - 1))][0] = 10 ** 6
    return workflow


MODES = ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "F"]
FORMATS = {"png": ("1", "L", "LA", "P", "RGB", "RGBA", "I;16"), "jpg": ("L", "RGB", "CMYK"), "tif": ("1", "L", "RGB", "RGBA", "CMYK", "I;16", "F"),
           "gif": ("L", "P"), "webp": ("RGB", "RGBA"), "bmp": ("1", "L", "P", "RGB")}


def face_pixels() -> np.ndarray:
    """A real face filling most of a 150 x 180 picture (a crop of a shared whole photo)."""
    photo = Image.open(shared_path("images", "whole", "difface_hepburn_rgba.png")).convert("RGB")
    return np.asarray(photo.crop((360, 200, 810, 740)).resize((150, 180), Image.LANCZOS))


FACE = None


@st.composite
def picture_files(draw) -> list[tuple[str, bytes, bool]]:
    """(file name, bytes, whether the file is damaged) for 1-3 generated pictures."""
    global FACE
    if FACE is None:
        FACE = face_pixels()
    files = []
    for index in range(draw(st.integers(1, 3))):
        extension = draw(st.sampled_from(sorted(FORMATS)))
        mode = draw(st.sampled_from(FORMATS[extension]))
        width, height = draw(st.integers(1, 160)), draw(st.integers(1, 160))
        if draw(st.booleans()):  # a real face, resized (its shape kept: a face the detector can find)
            width = draw(st.integers(48, 160))
            height = round(width * FACE.shape[0] / FACE.shape[1])
            rgb = np.asarray(Image.fromarray(FACE).resize((width, height), Image.LANCZOS))
        else:
            rgb = np.random.default_rng(draw(st.integers(0, 2 ** 16))).integers(0, 256, (height, width, 3), dtype=np.uint8)
        picture = Image.fromarray(rgb)
        if mode == "I;16":
            picture = Image.fromarray((np.asarray(picture.convert("L")).astype(np.uint16) * 257))
        elif mode == "F":
            picture = Image.fromarray(np.asarray(picture.convert("L")).astype(np.float32) / 255.0)
        elif mode == "P":
            picture = picture.quantize(64)
        else:
            picture = picture.convert(mode)
        buffer = io.BytesIO()
        try:
            picture.save(buffer, format={"jpg": "JPEG", "tif": "TIFF"}.get(extension, extension.upper()))
        except (OSError, ValueError, KeyError):
            assume(False)
        data = buffer.getvalue()
        damaged = draw(st.integers(0, 5)) == 0
        if damaged:
            data = data[: draw(st.integers(0, max(0, len(data) - 40)))]
        files.append((f"picture_{index}.{extension}", data, damaged))
    return files


def read_independently(path: str) -> np.ndarray:
    """A generated picture as RGB in 0..1, without the pack: 16-bit by its range, float as it is."""
    with Image.open(path) as picture:
        picture.load()
        if picture.mode in ("I;16", "I;16B", "I;16L", "I"):
            grey = np.clip(np.asarray(picture, dtype=np.float32) / 65535.0, 0, 1)
            return np.repeat(grey[..., None], 3, axis=-1)
        if picture.mode == "F":
            grey = np.clip(np.asarray(picture, dtype=np.float32), 0, 1)
            return np.repeat(grey[..., None], 3, axis=-1)
        return np.asarray(picture.convert("RGB"), dtype=np.float32) / 255.0


def widget_values(workflow: dict, node_type: str) -> dict:
    node = next(n for n in workflow["nodes"] if n["type"] == node_type)
    return {name: node["widgets_values"][i] for i, name, kind, _ in widget_slots(node)}


def reference(image: np.ndarray, workflow: dict) -> np.ndarray | None:
    """What the face template's nodes give on a picture (None: they fail on it)."""
    import torch

    detect, paste = widget_values(workflow, "FaceDetect"), widget_values(workflow, "PasteBack")
    batch = torch.from_numpy(image)[None]
    try:
        with torch.inference_mode():
            faces, crops, _, _ = FaceDetect().detect(batch, **detect)
            return to_uint8(PasteBack().paste(batch, faces, crops, **paste)[0][0])
    except (ValueError, TypeError):
        return None


def run_case(workflow: dict, files: list, work: str) -> tuple[str | None, dict, str]:
    """Run the batch on a generated folder: (the refusal, or None; the manifest; the output folder)."""
    path, folder, out = os.path.join(work, "workflow.json"), os.path.join(work, "in"), os.path.join(work, "out")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(workflow, handle)
    os.makedirs(folder)
    for name, data, _ in files:
        with open(os.path.join(folder, name), "wb") as handle:
            handle.write(data)
    try:
        run_workflow_batch(path, folder, out, report=lambda line: None, max_pixels=10 ** 6)
    except ValueError as refusal:  # WorkflowError and the output checks: a one-line refusal
        return str(refusal), {}, out
    return None, read_manifest(out), out


def check_run(files: list, records: dict, out: str):
    assert sorted(records) == sorted(name for name, _, _ in files)
    for name, _, damaged in files:
        record = records[name]
        if record["status"] == "failed":
            assert damaged, (name, record["reason"])  # an intact picture is never failed
            assert record["reason"] and "\n" not in record["reason"]
        else:
            assert all(os.path.exists(os.path.join(out, f)) for f in record["outputs"])


@pytest.fixture(autouse=True)
def empty_models_folder(tmp_path):
    """No weight files: the templates that need some are refused for them, in the same line."""
    runtime.set_models_dir(str(tmp_path / "models"))
    yield
    runtime.set_models_dir(None)


def check_refusal(refusal: str, out: str):
    assert refusal.strip() and "\n" not in refusal.strip()
    assert not os.path.exists(out)


@PROPERTY
@given(data=st.data(), files=picture_files())
def test_widget_mutations_of_the_face_template_are_refused_or_give_the_nodes_pixels(data, files):
    workflow, invalid = data.draw(widget_mutations(load_template(FACE_TEMPLATE)))
    with tempfile.TemporaryDirectory() as work:
        refusal, records, out = run_case(workflow, files, work)
        event("refused" if refusal is not None else "ran")
        if invalid:
            assert refusal is not None, "an invalid value was not refused"
            check_refusal(refusal, out)
            return
        assert refusal is None, refusal
        check_run(files, records, out)
        for name, _, damaged in files:
            record = records[name]
            if record["status"] != "done" or damaged:
                continue
            expected = reference(read_independently(os.path.join(work, "in", name)), workflow)
            written = np.asarray(Image.open(os.path.join(out, record["outputs"][0])).convert("RGB"))
            assert expected is not None and np.array_equal(written, expected), name
            event("output compared with the nodes' pixels" + (" (faces found)" if record["faces"] else ""))


@PROPERTY
@given(data=st.data(), files=picture_files())
def test_any_template_mutated_anyhow_is_refused_in_one_line_or_reports_every_picture(data, files):
    template = data.draw(st.one_of(st.just(FACE_TEMPLATE), st.sampled_from(TEMPLATES)))  # the face template runs without weights
    workflow = load_template(template)
    if data.draw(st.booleans()):
        workflow, _ = data.draw(widget_mutations(workflow))
    if data.draw(st.booleans()):
        workflow = data.draw(structural_mutations(workflow))
    with tempfile.TemporaryDirectory() as work:
        refusal, records, out = run_case(workflow, files, work)
        event("refused" if refusal is not None else "ran")
        if refusal is not None:
            check_refusal(refusal, out)
        elif "LoadVideo" not in {n["type"] for n in workflow["nodes"]}:
            check_run(files, records, out)
            event(f"pictures done: {sum(r['status'] == 'done' for r in records.values())}")


def test_the_property_runs_reach_both_outcomes():
    """The generators are not vacuous: on the face template an unchanged workflow runs and restores
    (faces found on the real face), and a mutated one is refused."""
    files = [("face.png", (lambda b: (Image.fromarray(face_pixels()).save(b, format="PNG"), b.getvalue())[1])(io.BytesIO()), False)]
    with tempfile.TemporaryDirectory() as work:
        refusal, records, _ = run_case(load_template(FACE_TEMPLATE), files, work)
        assert refusal is None and records["face.png"]["faces"] >= 1
    broken = load_template(FACE_TEMPLATE)
    next(n for n in broken["nodes"] if n["type"] == "PasteBack")["widgets_values"][0] = math.nan
    with tempfile.TemporaryDirectory() as work:
        refusal, _, out = run_case(broken, files, work)
        assert refusal is not None and "blend nan is not a finite number" in refusal and not os.path.exists(out)
    shutil.rmtree(work, ignore_errors=True)
