"""A saved workflow (ComfyUI's UI format, or the API format) as a graph this module can run: node
types checked before anything runs, widget values named, links resolved, nodes evaluated on demand.

UI format: widget values are stored by position in the order of the node's inputs (a seed widget
is followed by its "control after generate" value); links are [id, from node, from slot, to node,
to slot, type]. Reroutes are followed, Notes and Primitive nodes (whose values already sit in the
widgets they feed) are left out, a bypassed node (mode 4) hands each output the first input of the
same type, a muted node (mode 2) is never run.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from ..nodes import NODE_CLASS_MAPPINGS
from ..tools.workflow_templates import CONTROL_SUFFIX, node_signature
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


def node_class(node_type: str):
    return NODE_CLASS_MAPPINGS.get(node_type) or CORE_NODE_CLASSES.get(node_type)


def read_workflow(path: str) -> dict[str, GraphNode]:
    """The runnable nodes of a workflow file (UI or API format)."""
    try:
        with open(path, encoding="utf-8") as handle:
            workflow = json.load(handle)
    except (OSError, json.JSONDecodeError) as error:
        raise WorkflowError(f"{path}: cannot read the workflow ({error}); save it again from ComfyUI (Workflow > Save, or Export (API))")
    if isinstance(workflow, dict) and isinstance(workflow.get("prompt"), dict):
        workflow = workflow["prompt"]
    if isinstance(workflow, dict) and "nodes" in workflow and "links" in workflow:
        graph = from_ui(workflow)
    elif isinstance(workflow, dict) and workflow and all(isinstance(n, dict) and "class_type" in n for n in workflow.values()):
        graph = from_api(workflow)
    else:
        raise WorkflowError(f"{path} is neither a ComfyUI workflow (UI format, with nodes and links) nor an API-format prompt")
    check_node_types(graph)
    return graph


def check_node_types(graph: dict[str, GraphNode]):
    unknown = sorted({n.type for n in graph.values() if node_class(n.type) is None})
    if unknown:
        supported = ", ".join(sorted(CORE_NODE_CLASSES))
        raise WorkflowError(f"node type(s) {', '.join(unknown)} cannot run headless; this runs the pack's nodes and {supported}")


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
    return graph


def from_ui(workflow: dict) -> dict[str, GraphNode]:
    if workflow.get("definitions", {}).get("subgraphs"):
        raise WorkflowError("this workflow holds subgraphs; unpack them in ComfyUI (right click > Unpack Subgraph) and save it again")
    nodes = {str(n["id"]): n for n in workflow["nodes"]}
    links = {link[0]: (str(link[1]), link[2]) for link in workflow["links"] if link}

    def source(link_id):
        """Where a link really starts: through reroutes; None from a Primitive node (its value
        already sits in the widget it feeds)."""
        node_id, slot = links[link_id]
        while nodes[node_id]["type"] == "Reroute":
            upstream = nodes[node_id]["inputs"][0].get("link")
            if upstream is None:
                return None
            node_id, slot = links[upstream]
        if nodes[node_id]["type"] in UI_ONLY:
            return None
        return ("link", node_id, slot)

    graph = {}
    for node_id, node in nodes.items():
        if node["type"] in UI_ONLY or node.get("mode", 0) == MUTED:
            continue
        inputs = {}
        if node_class(node["type"]) is not None:
            _, widget_names, _ = node_signature(node["type"])
            values = node.get("widgets_values") or []
            if isinstance(values, dict):  # some frontends store them by name
                inputs.update({k: v for k, v in values.items() if not k.endswith(CONTROL_SUFFIX)})
            else:
                inputs.update({name: value for name, value in zip(widget_names, values) if not name.endswith(CONTROL_SUFFIX)})
        for socket in node.get("inputs", []):
            if socket.get("link") is not None:
                linked = source(socket["link"])
                if linked is not None:
                    inputs[socket["name"]] = linked
        graph_node = GraphNode(node_id, node["type"], inputs)
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
