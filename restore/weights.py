"""Finding, loading and caching weight files, with a one-line error that says how to get a missing one.

A network is loaded once per file (keyed by path, size and modification time) and then placed on
the device through the runtime each time it runs.
"""
from __future__ import annotations

import os
import threading

import torch

from .. import runtime
from ..models import ModelDescriptor, load_model
from ..models.checkpoint import CheckpointError

_cache: dict[tuple, tuple[ModelDescriptor, runtime.ManagedModule]] = {}
_lock = threading.Lock()


def missing_file_message(what: str, filename: str, folder: str, url: str | None) -> str:
    searched = ", ".join(runtime.model_search_paths(folder))
    from ..models.manifest import load_manifest

    entry = next((e for e in load_manifest() if e["name"] == filename), None)
    if entry is not None and entry.get("manual"):
        how = f"; {entry['manual']}"
    elif entry is not None and entry.get("url"):
        how = f"; run {runtime.command('download ' + filename)}, or download it from {entry.get('page') or entry['url']}"
    else:
        how = f"; download it from {url}" if url else ""
    return f"{what} needs the file {filename} in models/{folder} (searched: {searched}){how}"


def locate_weights(folder: str, filename: str) -> str | None:
    """Path of a weight file, also accepting a .safetensors conversion with the same name; None if absent."""
    stem = os.path.splitext(filename)[0]
    for candidate in (filename, stem + ".safetensors"):
        path = runtime.find_model_file(folder, candidate)
        if path:
            return path
    return None


def find_weights(folder: str, filename: str, what: str, url: str | None = None) -> str:
    """Path of a weight file (see locate_weights), or a one-line error that says how to get it."""
    path = locate_weights(folder, filename)
    if path is None:
        raise FileNotFoundError(missing_file_message(what, filename, folder, url))
    return path


def weights_check(folder: str, filename: str, what: str, url: str | None = None):
    """True when the file is there, else the missing-file message (a node's VALIDATE_INPUTS answer).

    ComfyUI validates every node of a graph before it runs any, and reports all failures at once:
    a graph with several missing files names them all in one go, before any work is done.
    """
    if locate_weights(folder, filename) is not None:
        return True
    return missing_file_message(what, filename, folder, url)


def load_managed(path: str, kinds: tuple[str, ...], dtype: torch.dtype = torch.float32,
                 memory_format: torch.memory_format = torch.contiguous_format):
    """(descriptor, managed module) of a weight file, built once per file, dtype and memory format."""
    stat = os.stat(path)
    key = (os.path.realpath(path), stat.st_size, stat.st_mtime_ns, kinds, dtype, memory_format)
    with _lock:
        if key not in _cache:
            try:
                descriptor = load_model(path, kinds)
            except CheckpointError as error:
                raise ValueError(f"{error} ({path})") from None
            if dtype != torch.float32:
                descriptor.to_dtype(dtype)
            if memory_format != torch.contiguous_format:
                descriptor.module.to(memory_format=memory_format)
            for stale in [k for k in _cache if k[0] == key[0] and k[1:3] != key[1:3]]:
                del _cache[stale]  # the file changed on disk
            _cache[key] = (descriptor, runtime.ManagedModule(descriptor.module))
        return _cache[key]
