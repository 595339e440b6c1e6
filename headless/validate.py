"""A workflow checked the way ComfyUI checks a prompt before it runs any node (execution.py's
validate_inputs), from each node's own schema (INPUT_TYPES), so that a batch refuses a broken
workflow in one line before the first photo instead of failing every photo:

- links point to a node of the workflow, to one of its output slots, of a type the input takes;
- required inputs are present; INT and FLOAT widgets are numbers (converted as ComfyUI converts
  them), finite and within the widget's min and max; COMBO values are among the choices; BOOLEAN
  widgets are booleans (true/false, 0/1); STRING widgets are strings;
- the graph has no cycle.

Stricter than ComfyUI in two places, both values it would pass on to a node that then fails or
paints garbage: NaN and infinities are refused (ComfyUI's min/max comparisons let NaN through), and
a BOOLEAN must be a boolean (ComfyUI's bool("false") is True). As in ComfyUI, inputs a node's
VALIDATE_INPUTS takes are the node's own to check (their min, max and choices are not).

The same value check (restore/checks.py's `check_value`) reads `dfr batch PIPELINE --set` values.
"""
from __future__ import annotations

import inspect

from ..restore.checks import check_value, choices_of, input_specs
from .graph import GraphNode, is_link, node_class, node_order

def types_match(received, wanted) -> bool:
    """Whether an output of type `received` may feed an input of type `wanted` (ComfyUI's rule:
    equal, "*" on either side, or overlapping comma-separated unions)."""
    if received == wanted or "*" in (received, wanted):
        return True
    if not isinstance(received, str) or not isinstance(wanted, str):
        return False
    return bool({t.strip() for t in received.split(",")} & {t.strip() for t in wanted.split(",")})


def output_types(cls) -> tuple:
    return tuple(getattr(cls, "RETURN_TYPES", ()))


def validate_graph(graph: dict[str, GraphNode], needed: set[str], fed: dict[str, str]) -> list[str]:
    """Every problem of the nodes that run (`needed`), each "Type (node id): what is wrong"; the
    values of number and boolean widgets are converted in place, as ComfyUI converts them. `fed`:
    node id -> the input the batch feeds (Load Image's image), not checked."""
    problems = []
    for node_id in sorted(needed, key=node_order):
        node = graph[node_id]
        where = f"{node.type} (node {node_id})"
        problems += [f"{where}: {p}" for p in node.problems]
        if node.bypassed:
            continue
        cls = node_class(node.type)
        own = own_checked_inputs(cls)
        specs = input_specs(cls)
        for name, (section, kind, options) in specs.items():
            if name == fed.get(node_id):
                continue
            if name not in node.inputs:
                if section == "required":
                    problems.append(f"{where}: required input {name} is missing (connect it, or save the workflow again)")
                continue
            value = node.inputs[name]
            if is_link(value):
                problems += [f"{where}: {p}" for p in link_problems(graph, name, kind, value)]
                continue
            converted, problem = check_value(name, kind, options, value, own_check=name in own)
            if problem:
                problems.append(f"{where}: {problem}")
            else:
                node.inputs[name] = converted
    cycle = find_cycle(graph, needed)
    if cycle:
        problems.append("the workflow has a cycle (" + " -> ".join(f"{graph[i].type} (node {i})" for i in cycle) +
                        "): a node cannot depend on its own output")
    return problems


def own_checked_inputs(cls) -> set[str]:
    """The inputs a node's VALIDATE_INPUTS takes (ComfyUI leaves their limits to it)."""
    check = getattr(cls, "VALIDATE_INPUTS", None)
    return set(inspect.signature(check).parameters) if check is not None else set()


def link_problems(graph: dict[str, GraphNode], name: str, kind, link: tuple) -> list[str]:
    _, source, slot = link
    if source not in graph:
        return [f"input {name} is linked to node {source}, which is not in the workflow (or is muted); reconnect it"]
    returns = output_types(node_class(graph[source].type))
    if not isinstance(slot, int) or isinstance(slot, bool) or not 0 <= slot < len(returns):
        return [f"input {name} is linked to output {slot} of {graph[source].type} (node {source}), which has "
                f"{len(returns)} output(s); reconnect it"]
    received = returns[slot]
    if choices_of(kind, {}) is not None:
        kind = "COMBO"
    if not types_match(received, kind):
        return [f"input {name} ({kind}) is linked to output {slot} of {graph[source].type} (node {source}), which gives "
                f"{received}; connect an output of type {kind}"]
    return []


def find_cycle(graph: dict[str, GraphNode], nodes: set[str]) -> list[str]:
    """The nodes of one cycle through links among `nodes` (first node repeated at the end), or []."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def upstream(node_id):
        return [v[1] for v in graph[node_id].inputs.values() if is_link(v) and v[1] in graph]

    for start in sorted(nodes, key=node_order):
        if state.get(start):
            continue
        stack = [(start, iter(upstream(start)))]
        state[start] = 1
        path.append(start)
        while stack:
            node_id, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                path.pop()
                state[node_id] = 2
            elif state.get(child) == 1:
                return path[path.index(child):] + [child]
            elif not state.get(child):
                state[child] = 1
                path.append(child)
                stack.append((child, iter(upstream(child))))
    return []



# the node whose widgets each section of a pipeline's settings are (restore/pipelines.py)
SECTION_NODES = {"detect": "FaceDetect", "paste": "PasteBack", "loader": "FaceDiffusionLoader", "init": "DifFaceInit",
                 "sampler": "DR2GuidedSampler", "enhance": "Enhancer"}


def checked_overrides(pipeline: str, overrides: dict) -> dict:
    """`dfr batch PIPELINE --set section.widget=value` values read and bounded by their node's own
    widget, as a workflow's are (a choice given as a number, respacing=25, is its text); a
    ValueError naming every problem in one line."""
    from ..nodes import NODE_CLASS_MAPPINGS
    from ..restore.pipelines import pipeline_settings

    pipeline_settings(pipeline, overrides)  # unknown pipelines and settings
    checked, problems = {}, []
    for key, value in overrides.items():
        section, _, widget = key.partition(".")
        cls = NODE_CLASS_MAPPINGS[SECTION_NODES[section]]
        _, kind, options = input_specs(cls)[widget]
        choices = choices_of(kind, options)
        if choices is not None and value not in choices and str(value) in choices:
            value = str(value)
        converted, problem = check_value(widget, kind, options, value, own_check=widget in own_checked_inputs(cls))
        if problem:
            problems.append(f"--set {section}.{problem}")
        checked[key] = converted
    if problems:
        raise ValueError("; ".join(problems))
    return checked
