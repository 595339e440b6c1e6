"""Every shipped workflow fits our node definitions: known node types, widget values in the right
order with the right types and ranges, and links between matching socket types."""
import glob
import json
import os
import subprocess
import sys

import pytest

from testdata import ROOT
from diffusion_face_restore import NODE_CLASS_MAPPINGS
from diffusion_face_restore.models.manifest import load_manifest
from diffusion_face_restore.nodes.types import MODEL_FOLDER_OPTION
from diffusion_face_restore.tools.workflow_templates import CORE_NODES

WORKFLOW_FILES = sorted(glob.glob(os.path.join(ROOT, "workflows", "*.json")))


def widget_specs(node_type):
    """[(name, spec)] of a node's widgets in the order the UI format stores them."""
    cls = NODE_CLASS_MAPPINGS[node_type]
    specs = []
    for section in ("required", "optional"):
        for name, spec in cls.INPUT_TYPES().get(section, {}).items():
            if isinstance(spec[0], (list, tuple)) or spec[0] in ("INT", "FLOAT", "STRING", "BOOLEAN"):
                specs.append((name, spec))
                if spec[0] == "INT" and spec[1].get("control_after_generate"):
                    specs.append((name + " control", (["fixed", "increment", "decrement", "randomize"], {})))
    return specs


def check_widget_value(where, value, spec):
    kind, options = spec[0], (spec[1] if len(spec) > 1 else {})
    if MODEL_FOLDER_OPTION in options:  # a list of files: the workflow names one the manifest knows
        folder = options[MODEL_FOLDER_OPTION]
        known = [m["name"] for m in load_manifest() if m["folder"] == folder]
        assert value in known, f"{where}: {value!r} is not a {folder} file of the manifest"
        return
    if isinstance(kind, (list, tuple)):
        assert value in kind, f"{where}: {value!r} is not one of {kind}"
        return
    expected = {"INT": int, "FLOAT": (int, float), "STRING": str, "BOOLEAN": bool}[kind]
    assert isinstance(value, expected) and not (kind != "BOOLEAN" and isinstance(value, bool)), f"{where}: {value!r} is not {kind}"
    if kind in ("INT", "FLOAT"):
        assert options.get("min", value) <= value <= options.get("max", value), f"{where}: {value} out of range"


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=os.path.basename)
def test_workflow_fits_the_node_definitions(path):
    with open(path, encoding="utf-8") as handle:
        workflow = json.load(handle)
    nodes = {node["id"]: node for node in workflow["nodes"]}
    for node in workflow["nodes"]:
        kind = node["type"]
        assert kind in NODE_CLASS_MAPPINGS or kind in CORE_NODES, f"unknown node type {kind}"
        if kind in NODE_CLASS_MAPPINGS:
            specs = widget_specs(kind)
            values = node["widgets_values"]
            assert len(values) == len(specs), f"{kind}: {len(values)} widget values for {len(specs)} widgets"
            for value, (name, spec) in zip(values, specs):
                check_widget_value(f"{kind}.{name}", value, spec)
        else:
            assert len(node.get("widgets_values", [])) == len(CORE_NODES[kind][1]), kind
            if kind == "UpscaleModelLoader":
                check_widget_value(kind, node["widgets_values"][0], ([], {MODEL_FOLDER_OPTION: "upscale_models"}))
    for link_id, src, src_slot, dst, dst_slot, kind in workflow["links"]:
        output = nodes[src]["outputs"][src_slot]
        target = nodes[dst]["inputs"][dst_slot]
        assert output["type"] == target["type"] == kind, f"link {link_id}: {output['type']} -> {target['type']}"
        assert link_id in output["links"] and target["link"] == link_id
        if nodes[dst]["type"] in NODE_CLASS_MAPPINGS:
            cls = NODE_CLASS_MAPPINGS[nodes[dst]["type"]]
            declared = {**cls.INPUT_TYPES().get("required", {}), **cls.INPUT_TYPES().get("optional", {})}
            assert declared[target["name"]][0] == kind, f"{nodes[dst]['type']}.{target['name']} is not {kind}"
        if nodes[src]["type"] in NODE_CLASS_MAPPINGS:
            cls = NODE_CLASS_MAPPINGS[nodes[src]["type"]]
            assert cls.RETURN_TYPES[src_slot] == kind


def test_workflows_are_up_to_date_with_their_descriptions():
    result = subprocess.run([sys.executable, os.path.join(ROOT, "dfr.py"), "workflows", "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=os.path.basename)
def test_workflow_model_lists_come_from_the_manifest(path):
    with open(path, encoding="utf-8") as handle:
        workflow = json.load(handle)
    manifest = {m["name"]: m for m in load_manifest()}
    for model in workflow.get("models", []):
        entry = manifest[model["name"]]
        link = entry.get("page") or entry["url"]
        assert model["url"] in (link, f"{link}#{entry['name']}") and model["directory"] == entry["folder"]
        assert model.get("hash") == entry.get("sha256")
    # the frontend's Missing Models dialog keys entries by URL: every file needs its own
    urls = [model["url"] for model in workflow.get("models", [])]
    assert len(set(urls)) == len(urls), urls


def test_every_template_has_its_thumbnail_and_the_served_folder_holds_nothing_else():
    """ComfyUI's template browser shows workflows/<name>.jpg on the card of workflows/<name>.json, and
    serves every file of the folder to anyone who asks: only templates and thumbnails belong there."""
    from PIL import Image

    folder = os.path.join(ROOT, "workflows")
    files = sorted(os.listdir(folder))
    stems = {os.path.splitext(f)[0] for f in files if f.endswith(".json")}
    assert files == sorted([s + ".json" for s in stems] + [s + ".jpg" for s in stems]), files
    for stem in stems:
        with Image.open(os.path.join(folder, stem + ".jpg")) as thumbnail:
            assert thumbnail.format == "JPEG" and thumbnail.size == (512, 512), stem
        assert stem[0].isupper() and "_" not in stem, f"{stem!r} is the card's title: write it to be read"
