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
- Manifest (`OUTPUT/manifest.jsonl`, restore/outcomes.py): one JSON line per input finished or
  failed (name, outputs, faces found, seconds, or the one-line reason); whatever one input raises
  is its line and the batch goes on. A run killed or stopped at any point and started again loses
  no finished input and runs none twice. Failed inputs are tried again on the next run.
"""
from __future__ import annotations

import inspect
import os
import socket
import time

import torch
from PIL import Image

from .. import runtime
from ..restore.checks import input_specs
from ..restore.outcomes import failure_reason, plan_inputs, run_inputs
from ..restore.photos import list_photos, write_atomically
from ..restore.video import is_video
from .core_nodes import Video, to_uint8, write_video
from .graph import GraphNode, WorkflowError, is_link, node_class, node_order, read_workflow, upstream_of
from .validate import own_checked_inputs, validate_graph

# the node fed each input, and its input that names the file
LOAD_NODES = {"LoadImage": "image", "LoadVideo": "file"}
SAVE_NODES = ("SaveImage", "SaveVideo")


class WorkflowBatch:
    """A workflow ready to run photo by photo (see the module's description)."""

    def __init__(self, path: str, comfyui: str | None = None, max_pixels: int | None = None):
        self.path, self.max_pixels = path, max_pixels
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
        """Every node that runs checked as ComfyUI checks a prompt (headless/validate.py), then by its
        own VALIDATE_INPUTS (missing weight files); all problems in one line, before any photo."""
        problems = validate_graph(self.graph, needed, {self.load: LOAD_NODES[self.graph[self.load].type]})
        for node_id in sorted(needed, key=node_order):
            node, cls = self.graph[node_id], node_class(self.graph[node_id].type)
            names = own_checked_inputs(cls)
            if not names or node.bypassed:
                continue
            values = {k: v for k, v in node.inputs.items() if k in names and not is_link(v)}
            try:
                answer = cls.VALIDATE_INPUTS(**values)
            except Exception as error:  # a value of the wrong kind for the node's own check
                answer = failure_reason(error)
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
            arguments["max_pixels"] = self.max_pixels
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


def output_names(node_type: str) -> list[str]:
    cls = node_class(node_type)
    return list(getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES))


def lazy_inputs(cls) -> set[str]:
    return {name for name, (_, _, options) in input_specs(cls).items() if options.get("lazy")}


def write_png(image: torch.Tensor, path: str):
    Image.fromarray(to_uint8(image)).save(path, format="PNG", compress_level=4)


def write_output(value, path: str):
    """An image or a video at path, written under a temporary name and renamed (write_atomically)."""
    write_atomically(path, lambda temporary: (write_video if isinstance(value, Video) else write_png)(value, temporary))


def plan_batch(batch: WorkflowBatch, input_path: str, output_dir: str, report=print) -> tuple[str, list[str], dict]:
    """The folder of the inputs, those still to run, and the result so far (restore/outcomes.py)."""
    input_dir, photos = batch.list_inputs(input_path)
    todo, result = plan_inputs(input_dir, photos, output_dir, lambda name: batch.single_output(os.path.splitext(name)[0]),
                               report, f" through {os.path.basename(batch.path)}")
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
    # one bad photo never stops the night's run: whatever one photo raises (a picture over the pixel
    # limit, an overflow, out of memory, a node's complaint about what reached its input) is its line
    except Exception as error:
        record = {"photo": name, "status": "failed", "reason": failure_reason(error)}
    return {**record, "seconds": round(time.perf_counter() - start, 3), "worker": worker}


def run_workflow_batch(workflow_path: str, input_dir: str, output_dir: str, report=print, comfyui: str | None = None,
                       max_pixels: int | None = None) -> dict:
    """Run a saved workflow over every photo of input_dir in this process; returns {"done",
    "skipped", "failed"} (lists of photo names). `comfyui`: the ComfyUI installation for ComfyUI's
    own nodes, where the workflow has any (else the one the pack sits in, or $COMFYUI_DIR);
    `max_pixels`: the pixel limit of a photo (None: what fits this machine's memory). Ctrl-C or
    SIGTERM raises BatchStopped with the result so far."""
    batch = WorkflowBatch(workflow_path, comfyui, max_pixels)
    input_dir, todo, result = plan_batch(batch, input_dir, output_dir, report)
    return run_inputs(todo, lambda name: process_photo(batch, name, input_dir, output_dir), output_dir, result, report,
                      os.path.basename(workflow_path))
