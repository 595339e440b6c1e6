"""Network architectures, recognised from their state dicts (the spandrel way).

Each architecture module describes how to recognise its checkpoints from the keys and how to read
its hyper-parameters back from tensor shapes; `load_model` turns any supported file into a
`ModelDescriptor` so callers rarely branch on the architecture.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable

import torch

from .checkpoint import CheckpointError, load_state_dict, read_metadata

# What a network is for; the nodes ask for a kind and get a clear error for the wrong file.
FACE_DETECTION = "face detection"
FACE_PARSING = "face parsing"
FACE_DIFFUSION = "face diffusion prior"
FACE_RESTORATION = "face restoration"
DEGRADATION_MODEL = "degradation representation"


@dataclass
class ModelDescriptor:
    architecture: str
    kind: str
    module: torch.nn.Module
    config: dict = field(default_factory=dict)
    path: str | None = None
    supports_fp16: bool = True
    supports_bf16: bool = True
    # how to run the network in a lower precision (default: cast every weight)
    cast: Callable[[torch.nn.Module, torch.dtype], object] | None = None

    @property
    def parameters(self) -> int:
        return sum(p.numel() for p in self.module.parameters())

    def to_dtype(self, dtype: torch.dtype) -> "ModelDescriptor":
        if self.cast is not None:
            self.cast(self.module, dtype)
        else:
            self.module.to(dtype)
        return self


@dataclass(frozen=True)
class Architecture:
    name: str
    kind: str
    detect: Callable[[dict], bool]
    # build(state_dict, metadata) -> descriptor; metadata: a converted file's safetensors metadata
    build: Callable[..., ModelDescriptor]


def has_keys(state_dict: dict, *keys: str) -> bool:
    return all(k in state_dict for k in keys)


def _registry() -> list[Architecture]:
    from . import bisenet, degradation, mtcnn, parsenet, retinaface, sparnet, unet

    return [
        retinaface.ARCHITECTURE, mtcnn.ARCHITECTURE, parsenet.ARCHITECTURE, bisenet.ARCHITECTURE,
        unet.ARCHITECTURE, sparnet.ARCHITECTURE, degradation.ARCHITECTURE,
    ]


def identify(state_dict: dict) -> Architecture | None:
    for architecture in _registry():
        if architecture.detect(state_dict):
            return architecture
    return None


def build_model(
    state_dict: dict, kinds: tuple[str, ...] | None = None, name: str = "this file", metadata: dict | None = None
) -> ModelDescriptor:
    architecture = identify(state_dict)
    if architecture is None:
        sample = ", ".join(list(state_dict)[:3])
        raise CheckpointError(f"{name}: not a network this pack knows (first keys: {sample})")
    if kinds is not None and architecture.kind not in kinds:
        raise CheckpointError(f"{name} is a {architecture.name} ({architecture.kind}) network, not a {' or '.join(kinds)} one")
    try:
        descriptor = architecture.build(state_dict, metadata or {})
    except (RuntimeError, KeyError, ValueError) as error:
        raise CheckpointError(f"{name} looks like {architecture.name} but does not load: {str(error).splitlines()[0][:300]}") from None
    descriptor.module.eval().requires_grad_(False)
    return descriptor


def load_model(path: str, kinds: tuple[str, ...] | None = None) -> ModelDescriptor:
    """Read a checkpoint, recognise its architecture, build the network and load it strictly."""
    metadata = read_metadata(path)
    descriptor = build_model(load_state_dict(path), kinds, os.path.basename(path), metadata)
    descriptor.path = path
    return descriptor
