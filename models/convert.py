"""Convert any supported checkpoint to .safetensors, with our metadata.

The output holds the flat state dict (nesting and `module.` removed) and, for our architectures,
the configuration read from the file (plus any overrides, e.g. the head width of a UNet variant,
which a state dict cannot show), so it loads without guessing. Files spandrel recognises (SwinIR,
GFPGAN, ...) are written flat for ComfyUI's own loaders.
"""
from __future__ import annotations

import hashlib
import json
import os

from . import build_model, identify
from .checkpoint import CheckpointError, load_state_dict, save_safetensors

METADATA_PREFIX = "dfr."


def file_sha256(path: str, chunk: int = 2 ** 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def convert_to_safetensors(source: str, target: str | None = None, overrides: dict | None = None, force: bool = False) -> str:
    """Write `source` as .safetensors (default: beside it, same name); returns the path written."""
    target = target or os.path.splitext(source)[0] + ".safetensors"
    if os.path.abspath(target) == os.path.abspath(source):
        raise CheckpointError(f"{source} is already the target")
    if os.path.exists(target) and not force:
        raise CheckpointError(f"{target} exists (pass force=True / --force to replace it)")
    state_dict = load_state_dict(source)
    metadata = {f"{METADATA_PREFIX}source": os.path.basename(source), f"{METADATA_PREFIX}source_sha256": file_sha256(source)}
    architecture = identify(state_dict)
    if architecture is not None:
        probe = build_model(state_dict, name=os.path.basename(source))
        config = {**probe.config, **(overrides or {})}
        # build again with the final configuration: the file must load strictly with it
        descriptor = build_model(state_dict, name=os.path.basename(source), metadata={f"{METADATA_PREFIX}config": json.dumps(config)})
        metadata.update({
            f"{METADATA_PREFIX}architecture": descriptor.architecture,
            f"{METADATA_PREFIX}kind": descriptor.kind,
            f"{METADATA_PREFIX}config": json.dumps(descriptor.config),
        })
    else:
        try:
            import spandrel

            # a copy: spandrel renames keys in the dict it is given (SwinIR's conv_first.1.*)
            descriptor = spandrel.ModelLoader().load_from_state_dict(dict(state_dict))
        except Exception as error:  # noqa: BLE001 - spandrel raises many kinds
            raise CheckpointError(f"{os.path.basename(source)}: neither this pack nor spandrel knows this network ({error})") from None
        if overrides:
            raise CheckpointError(f"{os.path.basename(source)}: configuration overrides apply to this pack's networks only")
        metadata.update({f"{METADATA_PREFIX}architecture": descriptor.architecture.name, f"{METADATA_PREFIX}kind": "spandrel"})
    save_safetensors(state_dict, target, metadata)
    return target
