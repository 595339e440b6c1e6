"""Writes the UI-format workflows of this folder from compact descriptions.

Widget values are given by name and laid out in each node's widget order, read from the node
definitions themselves, so a workflow can never hold values in the wrong slots.

    python workflows/build.py          # rewrite every workflow
    python workflows/build.py --check  # exit 1 if a committed workflow differs from its description
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from pack_import import import_pack  # noqa: E402

# Core ComfyUI nodes used in our workflows: (socket inputs, widget names, outputs).
CORE_NODES = {
    "LoadImage": ([], ["image", "upload"], [("IMAGE", "IMAGE"), ("MASK", "MASK")]),
    "SaveImage": ([("images", "IMAGE")], ["filename_prefix"], []),
    "PreviewImage": ([("images", "IMAGE")], [], []),
    "Note": ([], ["text"], []),
}
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN"}


def node_signature(node_type: str):
    """(socket inputs [(name, type)], widget names, outputs [(name, type)]) of a node type."""
    if node_type in CORE_NODES:
        return CORE_NODES[node_type]
    pack = import_pack()
    cls = pack.NODE_CLASS_MAPPINGS[node_type]
    sockets, widgets = [], []
    for section in ("required", "optional"):
        for name, spec in cls.INPUT_TYPES().get(section, {}).items():
            kind = spec[0]
            if isinstance(kind, (list, tuple)) or kind in WIDGET_TYPES:
                widgets.append(name)
            else:
                sockets.append((name, kind))
    names = getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES)
    return sockets, widgets, list(zip(names, cls.RETURN_TYPES))


@dataclass
class Node:
    id: int
    type: str
    pos: tuple[int, int]
    widgets: dict = field(default_factory=dict)
    size: tuple[int, int] = (320, 260)
    title: str | None = None


@dataclass
class Workflow:
    name: str
    nodes: list[Node]
    # (from node id, output name, to node id, input name)
    links: list[tuple[int, str, int, str]]
    models: list[dict] = field(default_factory=list)


def defaults_of(node_type: str) -> dict:
    pack = import_pack()
    cls = pack.NODE_CLASS_MAPPINGS[node_type]
    values = {}
    for section in cls.INPUT_TYPES().values():
        for name, spec in section.items():
            options = spec[1] if len(spec) > 1 else {}
            if isinstance(spec[0], (list, tuple)):
                values[name] = options.get("default", spec[0][0])
            elif "default" in options:
                values[name] = options["default"]
    return values


def render(workflow: Workflow) -> dict:
    nodes_by_id = {n.id: n for n in workflow.nodes}
    links, inputs, outputs = [], {}, {}
    for link_id, (src, out_name, dst, in_name) in enumerate(workflow.links, start=1):
        src_outputs = node_signature(nodes_by_id[src].type)[2]
        dst_inputs = node_signature(nodes_by_id[dst].type)[0]
        out_slot = [name for name, _ in src_outputs].index(out_name)
        in_slot = [name for name, _ in dst_inputs].index(in_name)
        kind = src_outputs[out_slot][1]
        if dst_inputs[in_slot][1] != kind:
            raise ValueError(f"{workflow.name}: link {out_name} ({kind}) -> {in_name} ({dst_inputs[in_slot][1]})")
        links.append([link_id, src, out_slot, dst, in_slot, kind])
        inputs[(dst, in_slot)] = link_id
        outputs.setdefault((src, out_slot), []).append(link_id)
    rendered = []
    for order, node in enumerate(workflow.nodes):
        sockets, widget_names, node_outputs = node_signature(node.type)
        unknown = set(node.widgets) - set(widget_names)
        if unknown:
            raise ValueError(f"{workflow.name}: {node.type} has no widget {sorted(unknown)}")
        values = {} if node.type in CORE_NODES else defaults_of(node.type)
        values.update(node.widgets)
        entry = {
            "id": node.id,
            "type": node.type,
            "pos": list(node.pos),
            "size": list(node.size),
            "flags": {},
            "order": order,
            "mode": 0,
            "inputs": [
                {"name": name, "type": kind, "link": inputs.get((node.id, slot))} for slot, (name, kind) in enumerate(sockets)
            ],
            "outputs": [
                {"name": name, "type": kind, "links": outputs.get((node.id, slot)), "slot_index": slot}
                for slot, (name, kind) in enumerate(node_outputs)
            ],
            "properties": {"Node name for S&R": node.type},
            "widgets_values": [values[name] for name in widget_names],
        }
        if node.title:
            entry["title"] = node.title
        rendered.append(entry)
    document = {
        "last_node_id": max(n.id for n in workflow.nodes),
        "last_link_id": len(links),
        "nodes": rendered,
        "links": links,
        "groups": [],
        "config": {},
        "extra": {},
        "version": 0.4,
    }
    if workflow.models:
        document["models"] = workflow.models
    return document


FACE_CROP_PASTE = Workflow(
    name="face_crop_paste",
    nodes=[
        Node(1, "LoadImage", (40, 120), {"image": "example.png", "upload": "image"}, (320, 340)),
        Node(2, "FaceDetect", (400, 120), {}, (340, 300)),
        Node(3, "PasteBack", (800, 120), {}, (340, 300)),
        Node(4, "SaveImage", (1180, 120), {"filename_prefix": "face_crop_paste"}, (340, 360)),
        Node(5, "PreviewImage", (400, 480), {}, (340, 300), title="Detections"),
        Node(6, "PreviewImage", (800, 480), {}, (340, 300), title="Aligned crops"),
        Node(
            7,
            "Note",
            (40, 520),
            {
                "text": (
                    "Face pipeline without restoration: FaceDetect finds the faces (built-in detector, no "
                    "download) and cuts FFHQ-aligned crops; PasteBack puts them back with a soft mask.\n\n"
                    "Put any face restorer between FaceDetect's crops and PasteBack's restored_crops. "
                    "Unchanged crops give the photo back (the pipeline is lossless to ~45-60 dB).\n\n"
                    "For better landmarks choose retinaface_resnet50 (detection_Resnet50_Final.pth in "
                    "models/facedetection)."
                )
            },
            (320, 220),
        ),
    ],
    links=[
        (1, "IMAGE", 2, "image"),
        (1, "IMAGE", 3, "image"),
        (2, "faces", 3, "faces"),
        (2, "crops", 3, "restored_crops"),
        (3, "image", 4, "images"),
        (2, "preview", 5, "images"),
        (2, "crops", 6, "images"),
    ],
)

WORKFLOWS = [FACE_CROP_PASTE]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args()
    stale = []
    for workflow in WORKFLOWS:
        path = os.path.join(HERE, workflow.name + ".json")
        text = json.dumps(render(workflow), indent=2) + "\n"
        if args.check:
            with open(path, encoding="utf-8") as handle:
                if handle.read() != text:
                    stale.append(path)
        else:
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text)
            print("wrote", path)
    if stale:
        sys.exit("out of date (run python workflows/build.py): " + ", ".join(stale))


if __name__ == "__main__":
    main()
