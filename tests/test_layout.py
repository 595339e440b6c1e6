"""The pack's rooms and the arrows between them: what a stranger reading the code can rely on.

runtime/ is at the bottom, the algorithms (face/, models/, diffusion/, degradations/) above it, the
restoration pipelines (restore/) and training above those, ComfyUI's nodes above restore/, the
build tools on top. No import runs upwards, no room is in a circle, only runtime/host.py imports
ComfyUI, nodes/ holds node classes, and every module says in its first lines what it is for.
"""
from __future__ import annotations

import ast
import inspect
import os
from pathlib import Path

import pytest

from testdata import ROOT

from diffusion_face_restore import NODE_CLASS_MAPPINGS

# lower layers first; a room may import its own layer's rooms (without circles) and any layer below
LAYERS = [
    {"runtime"},
    {"models", "face", "degradations", "diffusion"},
    {"restore", "training"},
    {"nodes"},
    {"tools", "headless"},
]
COMFYUI_MODULES = {"comfy", "comfy_extras", "comfy_api", "folder_paths", "server", "execution", "nodes", "latent_preview", "utils"}
NOT_PACK_CODE = {"tests", "benchmarks", "workflows", "docs"}


def pack_rooms() -> list[str]:
    return sorted(d for d in os.listdir(ROOT) if os.path.isfile(os.path.join(ROOT, d, "__init__.py")) and d not in NOT_PACK_CODE)


def modules_of(room: str):
    for path in sorted(Path(ROOT, room).rglob("*.py")):
        yield path, ast.parse(path.read_text(encoding="utf-8"))


def imported_rooms(path: Path, tree: ast.Module) -> set[str]:
    """The pack's rooms a module imports (relative imports, resolved against its package)."""
    package = path.relative_to(ROOT).parts[:-1]
    rooms = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[:len(package) - (node.level - 1)]
            target = list(base) + (node.module.split(".") if node.module else [node.names[0].name])
            if target[0] != package[0]:
                rooms.add(target[0])
    return rooms


def room_graph() -> dict[str, set[str]]:
    return {room: set().union(*(imported_rooms(path, tree) for path, tree in modules_of(room))) for room in pack_rooms()}


def test_every_room_has_a_layer():
    placed = set().union(*LAYERS)
    assert set(pack_rooms()) <= placed, f"place the new room(s) {sorted(set(pack_rooms()) - placed)} in LAYERS"


def test_no_import_runs_upwards():
    layer_of = {room: index for index, layer in enumerate(LAYERS) for room in layer}
    upwards = [f"{room} -> {target}" for room, targets in room_graph().items() for target in targets
               if layer_of[target] > layer_of[room]]
    assert not upwards, f"imports that run up: {upwards}"


def test_no_room_is_in_a_circle():
    graph = room_graph()
    done, path = set(), []

    def visit(room):
        if room in path:
            raise AssertionError(f"circle: {' -> '.join(path[path.index(room):] + [room])}")
        if room in done:
            return
        path.append(room)
        for target in sorted(graph[room]):
            visit(target)
        path.pop()
        done.add(room)

    for room in graph:
        visit(room)


def test_only_the_runtime_host_imports_comfyui():
    importers = []
    for room in pack_rooms():
        for path, tree in modules_of(room):
            for node in ast.walk(tree):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module] if isinstance(node, ast.ImportFrom) and not node.level and node.module else []
                if any(name.split(".")[0] in COMFYUI_MODULES for name in names):
                    importers.append(str(path.relative_to(ROOT)))
    assert sorted(set(importers)) == [os.path.join("runtime", "host.py")]


def test_nodes_holds_only_node_classes():
    for path, tree in modules_of("nodes"):
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                members = {n.targets[0].id for n in node.body if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Name)}
                members |= {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
                assert {"FUNCTION", "RETURN_TYPES", "INPUT_TYPES"} <= members, f"{path.name}: {node.name} is not a node class"
                assert any(cls.__name__ == node.name for cls in NODE_CLASS_MAPPINGS.values()), f"{node.name} is not registered"


def test_every_module_opens_with_what_it_is_for():
    rooms = pack_rooms() + ["tests", "benchmarks"]
    silent = [str(path.relative_to(ROOT)) for room in rooms for path, tree in modules_of(room) if not ast.get_docstring(tree)]
    silent += [name for name in ("__init__.py", "dfr.py", "pack_import.py") if not ast.get_docstring(ast.parse(Path(ROOT, name).read_text()))]
    assert not silent, f"modules without an opening docstring: {silent}"


# node id -> the restoration function it calls (module, name); the seed is a required argument there
NODE_FUNCTIONS = {
    "FaceDetect": ("restore.faces", "detect_faces"),
    "FaceTrack": ("restore.faces", "track_faces"),
    "PasteBack": ("restore.faces", "paste_back"),
    "DifFaceInit": ("restore.sampling", "difface_start"),
    "DR2GuidedSampler": ("restore.sampling", "sample_faces"),
    "Enhancer": ("restore.enhancers", "enhance_faces"),
}


@pytest.mark.parametrize("node_id", sorted(NODE_FUNCTIONS))
def test_a_node_and_its_restoration_function_have_the_same_defaults(node_id):
    import importlib

    module, name = NODE_FUNCTIONS[node_id]
    function = getattr(importlib.import_module(f"diffusion_face_restore.{module}"), name)
    parameters = inspect.signature(function).parameters
    for section in NODE_CLASS_MAPPINGS[node_id].INPUT_TYPES().values():
        for widget, spec in section.items():
            options = spec[1] if len(spec) > 1 else {}
            if "default" not in options or widget == "seed":
                continue
            assert widget in parameters, f"{name} has no parameter for {node_id}'s widget {widget}"
            default = parameters[widget].default
            assert default is not inspect.Parameter.empty, f"{name}({widget}) has no default; {node_id}'s is {options['default']!r}"
            # combo widgets hold strings ("512"); the functions take the number too
            assert str(default) == str(options["default"]), f"{name}({widget}={default!r}) but {node_id} defaults to {options['default']!r}"
