"""A saved workflow over a folder of photos (or a video, or a folder of videos), headless: the
workflow's Load Image (Load Video) node is fed each input in turn, what its Save Image (Save Video)
node(s) receive is written to the output folder, and a manifest records every input's outcome.

- Checked before any input: node types (one line naming those that cannot run), one Load Image or
  Load Video feeding what is saved, at least one save node, every node's own input checks (missing
  weight files are all named at once, as ComfyUI does).
- Nodes that do not depend on the input (loaders) run once for the whole batch.
- Outputs: `<input>.png` or `<input>.mp4` (several save nodes: `<input>_<node id>...`; a batch of
  images: `..._<k>.png`), pixels as ComfyUI's Save Image / Save Video write them, written under a
  temporary name and renamed.
- Manifest (`OUTPUT/manifest.jsonl`): one JSON line per input finished or failed (name, outputs,
  faces found, seconds, or the one-line reason). An input counts as done when its line says so and
  its outputs exist, or when its single output exists: a run killed at any point and started again
  loses no finished input and runs none twice. Failed inputs are tried again on the next run.
"""
from __future__ import annotations

import inspect
import json
import os
import socket
import time

import torch
from PIL import Image

from .. import runtime
from ..restore.photos import list_photos
from ..restore.video import is_video
from .core_nodes import Video, to_uint8, write_video
from .graph import GraphNode, WorkflowError, from_comfyui, node_class, read_workflow, upstream_of

MANIFEST = "manifest.jsonl"
# the node fed each input, and its input that names the file
LOAD_NODES = {"LoadImage": "image", "LoadVideo": "file"}
SAVE_NODES = ("SaveImage", "SaveVideo")


def is_link(value) -> bool:
    return isinstance(value, tuple) and len(value) == 3 and value[0] == "link"


class WorkflowBatch:
    """A workflow ready to run photo by photo (see the module's description)."""

    def __init__(self, path: str, comfyui: str | None = None):
        self.path = path
        self.graph = read_workflow(path, comfyui)
        saves = sorted((i for i, n in self.graph.items() if n.type in SAVE_NODES), key=node_order)
        if not saves:
            raise WorkflowError(f"{os.path.basename(path)} saves nothing: add a Save Image (or Save Video) node where the result comes out")
        self.saves = saves
        needed = upstream_of(self.graph, saves)
        loads = sorted(i for i in needed if self.graph[i].type in LOAD_NODES)
        if len(loads) != 1:
            raise WorkflowError(f"{os.path.basename(path)}: what it saves must come from exactly one Load Image or Load Video "
                                f"node (found {len(loads)}); the batch feeds it each input")
        self.load = loads[0]
        self.reads_video = self.graph[self.load].type == "LoadVideo"
        self.per_photo = {i for i in needed if self.load in upstream_of(self.graph, [i])}
        self.shared: dict[str, tuple] = {}  # outputs of nodes that do not depend on the photo
        self.check_inputs(needed)

    def check_inputs(self, needed: set[str]):
        problems = []
        for node_id in sorted(needed, key=node_order):
            node, cls = self.graph[node_id], node_class(self.graph[node_id].type)
            check = getattr(cls, "VALIDATE_INPUTS", None)
            names = inspect.signature(check).parameters if check is not None else {}
            if from_comfyui(node.type):
                problems += [f"{node.type} (node {node_id}): {p}" for p in check_comfyui_inputs(node, cls, skip=names)]
            if check is None:
                continue
            answer = check(**{k: v for k, v in node.inputs.items() if k in names and not is_link(v)})
            if answer is not True:
                problems.append(f"{node.type} (node {node_id}): {answer}")
        if problems:
            raise WorkflowError("; ".join(problems))

    def run(self, photo_path: str) -> tuple[list, int]:
        """What each save node receives for one input (Save Image: an IMAGE batch; Save Video: a
        Video), and how many faces were found."""
        outputs: dict[str, tuple] = {}
        saved = [next(iter(self.evaluate(i, outputs, photo_path).values())) for i in self.saves]
        faces = sum(int(result[names.index("count")]) for node_id, result in outputs.items()
                    if "count" in (names := output_names(self.graph[node_id].type)))
        return saved, faces

    def evaluate(self, node_id: str, outputs: dict, photo_path: str):
        store = outputs if node_id in self.per_photo else self.shared
        if node_id in store:
            return store[node_id]
        node = self.graph[node_id]
        cls = node_class(node.type)
        lazy = lazy_inputs(cls)
        arguments = {}
        for name, value in node.inputs.items():
            if is_link(value):
                if name not in lazy:
                    arguments[name] = self.output(value, outputs, photo_path)
            else:
                arguments[name] = value
        if node_id == self.load:
            arguments[LOAD_NODES[node.type]] = photo_path
        instance = cls()
        wanted = [n for n in lazy if is_link(node.inputs.get(n))]
        if wanted and hasattr(instance, "check_lazy_status"):
            wanted = instance.check_lazy_status(**{**{n: None for n in wanted}, **arguments})
        for name in lazy:  # a lazy input the node did not ask for is None, as in ComfyUI
            if is_link(node.inputs.get(name)):
                arguments[name] = self.output(node.inputs[name], outputs, photo_path) if name in (wanted or []) else None
        function = getattr(instance, cls.FUNCTION)
        accepted = inspect.signature(function).parameters
        if not any(p.kind == p.VAR_KEYWORD for p in accepted.values()):
            arguments = {k: v for k, v in arguments.items() if k in accepted}
        result = function(**arguments)
        if isinstance(result, dict) and "result" in result:  # {"ui": ..., "result": ...}, as ComfyUI reads it
            result = result["result"]
        store[node_id] = result
        runtime.check_cancel()
        return store[node_id]

    def output(self, link: tuple, outputs: dict, photo_path: str):
        _, node_id, slot = link
        node: GraphNode = self.graph[node_id]
        if node.bypassed:  # hands on its input of the output's type; None where it has none (as ComfyUI)
            name = node.bypassed_to.get(slot)
            return None if name is None else self.output(node.inputs[name], outputs, photo_path)
        return self.evaluate(node_id, outputs, photo_path)[slot]

    def output_names(self, stem: str, saved: list) -> list[list[str]]:
        """File names for what every save node receives for one input."""
        names = []
        for node_id, value in zip(self.saves, saved):
            base = stem if len(self.saves) == 1 else f"{stem}_{node_id}"
            if isinstance(value, Video):
                names.append([f"{base}.mp4"])
            else:
                names.append([f"{base}.png"] if value.shape[0] == 1 else [f"{base}_{k}.png" for k in range(value.shape[0])])
        return names

    def single_output(self, stem: str) -> str | None:
        """The one output file of an input, where the workflow writes exactly one per input."""
        if len(self.saves) != 1:
            return None
        return stem + (".mp4" if self.graph[self.saves[0]].type == "SaveVideo" else ".png")

    def list_inputs(self, input_path: str) -> tuple[str, list[str]]:
        """The folder and the names of the inputs: photos of a folder, or for a workflow that loads a
        video, a video file or the videos of a folder."""
        if not self.reads_video:
            return input_path, list_photos(input_path)
        if is_video(input_path):
            return os.path.dirname(os.path.abspath(input_path)), [os.path.basename(input_path)]
        if not os.path.isdir(input_path):
            raise FileNotFoundError(f"{input_path} is neither a video nor a folder of videos")
        return input_path, sorted(f for f in os.listdir(input_path) if is_video(os.path.join(input_path, f)) and not f.startswith("."))


def node_order(node_id: str):
    return (0, int(node_id)) if str(node_id).isdigit() else (1, str(node_id))


def output_names(node_type: str) -> list[str]:
    cls = node_class(node_type)
    return list(getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES))


def check_comfyui_inputs(node: GraphNode, cls, skip) -> list[str]:
    """What ComfyUI's own prompt validation finds wrong with a node's values (required inputs
    missing, a choice not in its list: a missing model file), and its number widgets read as
    ComfyUI reads them. Inputs the node's VALIDATE_INPUTS takes (`skip`) are its own to check."""
    problems = []
    sections = cls.INPUT_TYPES()
    problems += [f"required input {name} is missing" for name in sections.get("required", {}) if name not in node.inputs]
    for name, spec in {**sections.get("required", {}), **sections.get("optional", {})}.items():
        value = node.inputs.get(name)
        if name in skip or value is None or is_link(value):
            continue
        kind, options = spec[0], (spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {})
        choices = kind if isinstance(kind, (list, tuple)) else options.get("options") if kind == "COMBO" else None
        if choices is not None and value not in choices:
            shown = ", ".join(map(str, list(choices)[:8])) + (", ..." if len(choices) > 8 else "") if choices else "none"
            problems.append(f"{name} '{value}' is not among its choices ({shown})")
        elif kind in ("INT", "FLOAT"):
            try:
                node.inputs[name] = int(value) if kind == "INT" else float(value)
            except (TypeError, ValueError):
                problems.append(f"{name} '{value}' is not a number")
    return problems


def lazy_inputs(cls) -> set[str]:
    if not hasattr(cls, "INPUT_TYPES"):
        return set()
    return {name for section in cls.INPUT_TYPES().values() for name, spec in section.items()
            if len(spec) > 1 and isinstance(spec[1], dict) and spec[1].get("lazy")}


def write_png(image: torch.Tensor, path: str):
    temporary = path + ".partial.png"
    Image.fromarray(to_uint8(image)).save(temporary, format="PNG", compress_level=4)
    os.replace(temporary, path)


def write_output(value, path: str):
    """An image or a video at path, written under a temporary name and renamed."""
    if isinstance(value, Video):
        temporary = path + ".partial.mp4"
        write_video(value, temporary)
        os.replace(temporary, path)
    else:
        write_png(value, path)


def read_manifest(output_dir: str) -> dict[str, dict]:
    """The last recorded outcome of every photo (a line cut short by a kill is ignored)."""
    records = {}
    path = os.path.join(output_dir, MANIFEST)
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                records[record["photo"]] = record
    return records


def append_manifest(output_dir: str, record: dict):
    with open(os.path.join(output_dir, MANIFEST), "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def is_done(record: dict | None, output_dir: str, single_output: str | None) -> bool:
    if record and record.get("status") == "done":
        return all(os.path.exists(os.path.join(output_dir, name)) for name in record["outputs"])
    return single_output is not None and os.path.exists(os.path.join(output_dir, single_output))


def plan_batch(batch: WorkflowBatch, input_path: str, output_dir: str, report=print) -> tuple[str, list[str], dict]:
    """The folder of the inputs, those still to run, and the result so far ({"done", "skipped",
    "failed"}); inputs written just before a kill are recorded as done now."""
    input_dir, photos = batch.list_inputs(input_path)
    os.makedirs(output_dir, exist_ok=True)
    records = read_manifest(output_dir)
    single = {p: batch.single_output(os.path.splitext(p)[0]) for p in photos}
    todo = [p for p in photos if not is_done(records.get(p), output_dir, single[p])]
    result = {"done": [], "skipped": [p for p in photos if p not in todo], "failed": []}
    for name in result["skipped"]:  # written, but the run was stopped before its line: recorded now
        if records.get(name, {}).get("status") != "done":
            append_manifest(output_dir, {"photo": name, "status": "done", "outputs": [single[name]], "found_after_restart": True})
    report(f"{len(photos)} input(s) in {input_dir}: {len(result['skipped'])} already done, {len(todo)} to run "
           f"through {os.path.basename(batch.path)}")
    return input_dir, todo, result


def process_photo(batch: WorkflowBatch, name: str, input_dir: str, output_dir: str) -> dict:
    """Run one photo and write its outputs; its manifest record (done, or failed with the reason).
    A photo whose single output is already there (a worker that died after writing it, retried)
    is not run again."""
    start = time.perf_counter()
    worker = f"{socket.gethostname()}:{os.getpid()}"
    single = batch.single_output(os.path.splitext(name)[0])
    if single is not None and os.path.exists(os.path.join(output_dir, single)):
        return {"photo": name, "status": "done", "outputs": [single], "found_after_restart": True, "worker": worker}
    try:
        with torch.inference_mode():  # as ComfyUI runs a prompt
            saved, faces = batch.run(os.path.join(input_dir, name))
        files = batch.output_names(os.path.splitext(name)[0], saved)
        for value, names in zip(saved, files):
            for item, file_name in zip([value] if isinstance(value, Video) else value, names):
                write_output(item, os.path.join(output_dir, file_name))
        record = {"photo": name, "status": "done", "outputs": [f for names in files for f in names], "faces": faces}
    # one bad photo does not stop the night's run (TypeError: a node's one-line complaint about what
    # reached one of its inputs, e.g. nothing from a bypassed node)
    except (ValueError, TypeError, OSError, RuntimeError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        record = {"photo": name, "status": "failed", "reason": reason}
    return {**record, "seconds": round(time.perf_counter() - start, 3), "worker": worker}


def record_outcome(output_dir: str, record: dict, result: dict, report=print):
    append_manifest(output_dir, record)
    result["done" if record["status"] == "done" else "failed"].append(record["photo"])
    if record["status"] == "failed":
        report(f"{record['photo']}: {record['reason']}")


def run_workflow_batch(workflow_path: str, input_dir: str, output_dir: str, report=print, comfyui: str | None = None) -> dict:
    """Run a saved workflow over every photo of input_dir in this process; returns {"done",
    "skipped", "failed"} (lists of photo names). `comfyui`: the ComfyUI installation for ComfyUI's
    own nodes, where the workflow has any (else the one the pack sits in, or $COMFYUI_DIR)."""
    batch = WorkflowBatch(workflow_path, comfyui)
    input_dir, todo, result = plan_batch(batch, input_dir, output_dir, report)
    progress = runtime.TerminalProgress(len(todo), os.path.basename(workflow_path))
    for name in todo:
        record_outcome(output_dir, process_photo(batch, name, input_dir, output_dir), result, report)
        progress.update(1, name)
    return result
