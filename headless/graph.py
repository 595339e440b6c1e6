"""A saved workflow (ComfyUI's UI format, or the API format) as a graph this module can run: node
types checked before anything runs, widget values named, links resolved, nodes evaluated on demand.

UI format: widget values are stored by position in the order of the node's inputs (a seed widget
is followed by its "control after generate" value); links are [id, from node, from slot, to node,
to slot, type]. Reroutes are followed, Notes and Primitive nodes (whose values already sit in the
widgets they feed) are left out, a bypassed node (mode 4) hands each output the first input of the
same type, a muted node (mode 2) is never run.

Node types: the pack's nodes and the headless core nodes (core_nodes.py) always; ComfyUI's own
nodes (nodes.py: KSampler, CheckpointLoaderSimple, CLIPTextEncode, VAEEncode/Decode, ControlNet and
LoRA loaders, latent and image nodes, ...) when a workflow needs them and a ComfyUI installation is
at hand (the one the pack sits in, $COMFYUI_DIR, or the folder given): it is attached to the process
and its nodes run as its own code runs them. Nodes of other custom packs, comfy_extras and nodes
that need ComfyUI's server (hidden inputs, list inputs or outputs) are refused by name.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from .. import runtime
from ..nodes import NODE_CLASS_MAPPINGS
from ..restore.checks import input_specs
from ..tools.workflow_templates import CONTROL_SUFFIX, WIDGET_TYPES, WORKFLOWS_DIR, node_signature
from .core_nodes import CORE_NODE_CLASSES

UI_ONLY = {"Note", "MarkdownNote", "PrimitiveNode", "Reroute"}
MUTED, BYPASSED = 2, 4


class WorkflowError(ValueError):
    """A workflow that cannot run headless; the message is one line saying what to change."""


@dataclass
class GraphNode:
    id: str
    type: str
    inputs: dict = field(default_factory=dict)  # name -> value, or ("link", node id, output slot)
    bypassed: bool = False  # mode 4: never run; each output is the first input of its type (else None)
    bypassed_to: dict = field(default_factory=dict)  # a bypassed node: output slot -> input name
    problems: list = field(default_factory=list)  # what reading the file found wrong (a link to nowhere)


def is_link(value) -> bool:
    return isinstance(value, tuple) and len(value) == 3 and value[0] == "link"


def node_order(node_id: str):
    """Node ids in ComfyUI's order: numbers by value, then other ids by name."""
    return (0, int(node_id)) if str(node_id).isdigit() else (1, str(node_id))


def node_class(node_type: str):
    return NODE_CLASS_MAPPINGS.get(node_type) or CORE_NODE_CLASSES.get(node_type) or runtime.comfy_node_classes().get(node_type)


def from_comfyui(node_type: str) -> bool:
    """Whether ComfyUI's own code runs this node type (not the pack's, not a headless core node)."""
    return node_type not in NODE_CLASS_MAPPINGS and node_type not in CORE_NODE_CLASSES and node_type in runtime.comfy_node_classes()


def needs_server(cls) -> bool:
    """ComfyUI nodes that only its server can run: hidden inputs (the prompt, the PNG info) or lists."""
    return bool(cls.INPUT_TYPES().get("hidden") or getattr(cls, "INPUT_IS_LIST", False) or getattr(cls, "OUTPUT_IS_LIST", None))


def template_names() -> list[str]:
    """The workflow templates the pack ships (workflows/*.json, package data where installed), by name."""
    return sorted(os.path.splitext(f)[0] for f in os.listdir(WORKFLOWS_DIR) if f.endswith(".json")) if os.path.isdir(WORKFLOWS_DIR) else []


def workflow_path(given: str) -> str:
    """A workflow file as given, else the shipped template of that name (with or without .json): a pip
    user runs `dfr batch --workflow "Face crop and paste - no weights needed" ...` without a clone."""
    if os.path.exists(given):
        return given
    name = os.path.splitext(os.path.basename(given))[0] if given.endswith(".json") else given
    if name in template_names():
        return os.path.join(WORKFLOWS_DIR, name + ".json")
    raise WorkflowError(f"no workflow file {given}, and no template of that name; the templates ({runtime.command('workflows')} "
                        "lists them): " + "; ".join(template_names()))


def read_workflow(path: str, comfyui: str | None = None) -> dict[str, GraphNode]:
    """The runnable nodes of a workflow file (UI or API format). A workflow with node types that
    are neither the pack's nor headless core nodes attaches ComfyUI (`comfyui`, else the one the
    pack sits in or $COMFYUI_DIR) for its own nodes."""
    try:
        with open(path, encoding="utf-8") as handle:
            workflow = json.load(handle)
    except (OSError, json.JSONDecodeError) as error:
        raise WorkflowError(f"{path}: cannot read the workflow ({error}); save it again from ComfyUI (Workflow > Save, or Export (API))")
    if isinstance(workflow, dict) and isinstance(workflow.get("prompt"), dict):
        workflow = workflow["prompt"]
    if isinstance(workflow, dict) and "nodes" in workflow and "links" in workflow:
        ui_format = True
    elif isinstance(workflow, dict) and workflow and all(isinstance(n, dict) and "class_type" in n for n in workflow.values()):
        ui_format = False
    else:
        raise WorkflowError(f"{path} is neither a ComfyUI workflow (UI format, with nodes and links) nor an API-format prompt")
    try:
        if ui_format:
            types = {str(n["type"]) for n in workflow["nodes"] if n.get("mode", 0) != MUTED}
        else:
            types = {str(n["class_type"]) for n in workflow.values()}
        attach_comfyui_for(sorted(t for t in types - UI_ONLY if node_class(t) is None), comfyui)
        graph = from_ui(workflow) if ui_format else from_api(workflow)
    except (KeyError, TypeError, AttributeError, IndexError, ValueError) as error:
        if isinstance(error, WorkflowError):
            raise
        raise WorkflowError(f"{path} is damaged ({type(error).__name__}: {error}); save it again from ComfyUI") from None
    check_node_types(graph)
    return graph


def attach_comfyui_for(foreign: list[str], comfyui: str | None):
    if not foreign:
        return
    directory = comfyui or runtime.find_comfyui()
    if directory is None:
        raise WorkflowError(
            f"node type(s) {', '.join(foreign)} are not the pack's and not among the core nodes that run without ComfyUI "
            f"({', '.join(sorted(CORE_NODE_CLASSES))}); ComfyUI's own nodes (KSampler, CheckpointLoaderSimple, ...) run "
            "with a ComfyUI installation: run dfr.py from the pack in ComfyUI/custom_nodes with ComfyUI's Python, or give "
            "--comfyui DIR (or set COMFYUI_DIR)")
    try:
        runtime.attach_comfyui(directory)
    except ImportError as error:
        raise WorkflowError(f"cannot load ComfyUI from {directory} ({error}); run dfr.py with the Python ComfyUI runs with") from None
    except ValueError as error:
        raise WorkflowError(str(error)) from None


def check_node_types(graph: dict[str, GraphNode]):
    unknown = sorted({n.type for n in graph.values() if node_class(n.type) is None})
    if unknown:
        supported = ", ".join(sorted(CORE_NODE_CLASSES))
        raise WorkflowError(f"node type(s) {', '.join(unknown)} cannot run headless: they are neither the pack's nodes, nor "
                            f"{supported}, nor ComfyUI's own (nodes of other custom packs and of comfy_extras are not run)")
    server_only = sorted({n.type for n in graph.values() if from_comfyui(n.type) and needs_server(node_class(n.type))})
    if server_only:
        raise WorkflowError(f"node type(s) {', '.join(server_only)} need ComfyUI's server (hidden or list inputs) and cannot "
                            "run headless; save with Save Image (Save Video) instead")


def from_api(prompt: dict) -> dict[str, GraphNode]:
    graph = {}
    for node_id, node in prompt.items():
        inputs = {}
        for name, value in node.get("inputs", {}).items():
            if isinstance(value, list) and len(value) == 2 and isinstance(value[1], int) and str(value[0]) in prompt:
                inputs[name] = ("link", str(value[0]), value[1])
            else:
                inputs[name] = value
        graph[str(node_id)] = GraphNode(str(node_id), node["class_type"], inputs)
    for node in graph.values():  # [id, slot] of a node the prompt lacks: a link to nowhere, not a value
        for name, value in node.inputs.items():
            if isinstance(value, list) and len(value) == 2 and isinstance(value[1], int) and isinstance(value[0], (str, int)):
                if str(value[0]) not in prompt and specs_take_link(node.type, name):
                    node.inputs[name] = ("link", str(value[0]), value[1])
    return graph


def specs_take_link(node_type: str, name: str) -> bool:
    """Whether an input of a node type is a socket (not a widget whose value may be a list)."""
    cls = node_class(node_type)
    spec = input_specs(cls).get(name) if cls is not None else None
    return spec is not None and isinstance(spec[1], str) and spec[1] not in WIDGET_TYPES


def from_ui(workflow: dict) -> dict[str, GraphNode]:
    if workflow.get("definitions", {}).get("subgraphs"):
        raise WorkflowError("this workflow holds subgraphs; unpack them in ComfyUI (right click > Unpack Subgraph) and save it again")
    nodes = {str(n["id"]): n for n in workflow["nodes"]}
    links = {link[0]: (str(link[1]), link[2]) for link in workflow["links"] if isinstance(link, list) and len(link) >= 3}

    def source(link_id, problems: list):
        """Where a link really starts: through reroutes; None from a Primitive node (its value
        already sits in the widget it feeds) or an unconnected reroute. A link the file does not
        hold, or a reroute loop, is recorded in `problems`; a link from a node that is not in the
        file is returned as it is (the validation names it)."""
        if link_id not in links:
            problems.append(f"link {link_id} is not among the workflow's links (a damaged file); reconnect the input")
            return None
        node_id, slot = links[link_id]
        seen = set()
        while node_id in nodes and nodes[node_id]["type"] == "Reroute" and node_id not in seen:
            seen.add(node_id)
            upstream = (nodes[node_id].get("inputs") or [{}])[0].get("link")
            if upstream is None:
                return None
            if upstream not in links:
                problems.append(f"link {upstream} is not among the workflow's links (a damaged file); reconnect the input")
                return None
            node_id, slot = links[upstream]
        if node_id in seen:
            problems.append(f"its input comes from a loop of reroutes (node {node_id}); reconnect it")
            return None
        if node_id in nodes and nodes[node_id]["type"] in UI_ONLY:
            return None
        return ("link", node_id, slot)

    graph = {}
    for node_id, node in nodes.items():
        if node["type"] in UI_ONLY or node.get("mode", 0) == MUTED:
            continue
        inputs = {}
        cls = node_class(node["type"])
        if cls is not None:
            _, widget_names, _ = node_signature(node["type"], cls)
            values = node.get("widgets_values") or []
            if isinstance(values, dict):  # some frontends store them by name
                inputs.update({k: v for k, v in values.items() if not k.endswith(CONTROL_SUFFIX)})
            else:
                inputs.update({name: value for name, value in zip(widget_names, values) if not name.endswith(CONTROL_SUFFIX)})
        problems = []
        for socket in node.get("inputs", []):
            if socket.get("link") is not None:
                linked = source(socket["link"], problems)
                if linked is not None:
                    inputs[socket["name"]] = linked
        graph_node = GraphNode(node_id, node["type"], inputs, problems=problems)
        if node.get("mode", 0) == BYPASSED:
            graph_node.bypassed = True
            input_types = [(s["name"], s.get("type")) for s in node.get("inputs", []) if s["name"] in inputs and isinstance(inputs[s["name"]], tuple)]
            for slot, output in enumerate(node.get("outputs", [])):
                match = next((name for name, kind in input_types if kind == output.get("type")), None)
                if match is not None:
                    graph_node.bypassed_to[slot] = match
        graph[node_id] = graph_node
    return graph


def upstream_of(graph: dict[str, GraphNode], targets: list[str]) -> set[str]:
    """The targets and every node they read from."""
    seen, stack = set(), list(targets)
    while stack:
        node_id = stack.pop()
        if node_id in seen:
            continue
        seen.add(node_id)
        stack += [v[1] for v in graph[node_id].inputs.values() if isinstance(v, tuple) and v[1] in graph]
    return seen
