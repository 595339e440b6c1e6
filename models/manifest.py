"""The model manifest (models/manifest.json): every weight file the pack supports."""
from __future__ import annotations

import functools
import json
import os

from .. import runtime

MANIFEST_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "manifest.json")
# a manifest of your own in its place (the same layout), e.g. your studio's mirror of the files
MANIFEST_VARIABLE = "DFR_MANIFEST"


def manifest_path() -> str:
    return os.environ.get(MANIFEST_VARIABLE) or MANIFEST_PATH


# the fields a person reads; they name commands as a checkout runs them (python dfr.py verify ...)
READ_BY_PEOPLE = ("manual", "fallback")


@functools.lru_cache(maxsize=4)
def _read_manifest(path: str) -> tuple[dict, ...]:
    """The entries, their instructions naming the commands as this installation runs them."""
    with open(path, encoding="utf-8") as handle:
        entries = json.load(handle)["models"]
    return tuple({key: runtime.commands_in(value) if key in READ_BY_PEOPLE and isinstance(value, str) else value
                  for key, value in entry.items()} for entry in entries)


def load_manifest() -> tuple[dict, ...]:
    return _read_manifest(manifest_path())


def manifest_entry(name: str) -> dict:
    for entry in load_manifest():
        if entry["name"] == name:
            return entry
    raise KeyError(f"{name} is not in the model manifest ({manifest_path()})")


def workflow_model(name: str) -> dict:
    """An entry for a UI workflow's `models` list (the frontend's Missing Models dialog).

    The dialog keys its entries by URL and drops those that share one (DR2's two files live in one
    Baidu folder) or have none (the DR-BFR files you train): every file gets its own link here, the
    page a person opens where there is one, with the file's name as fragment where pages are shared.
    """
    entry = manifest_entry(name)
    link = entry.get("page") or entry.get("url")
    if link is None:
        raise ValueError(f"{name}: the manifest gives neither a url nor a page for the Missing Models dialog")
    if sum(1 for other in load_manifest() if (other.get("page") or other.get("url")) == link) > 1:
        link = f"{link}#{entry['name']}"
    model = {"name": entry["name"], "url": link, "directory": entry["folder"]}
    if entry.get("sha256"):
        model.update({"hash": entry["sha256"], "hash_type": "SHA256"})
    return model


def identify_file(path: str) -> dict:
    """What a weight file is: {"architecture": name, "image_size": n (UNets)}. Raises CheckpointError."""
    from . import build_model, identify
    from .checkpoint import CheckpointError, load_state_dict, read_metadata

    state_dict = load_state_dict(path)
    if identify(state_dict) is not None:
        descriptor = build_model(state_dict, name=os.path.basename(path), metadata=read_metadata(path))
        found = {"architecture": descriptor.architecture}
        if "image_size" in descriptor.config:
            found["image_size"] = descriptor.config["image_size"]
        return found
    try:
        import spandrel

        descriptor = spandrel.ModelLoader().load_from_state_dict(dict(state_dict))
    except Exception as error:  # noqa: BLE001 - spandrel raises many kinds
        raise CheckpointError(f"{os.path.basename(path)}: not a network this pack or spandrel knows ({str(error)[:200]})") from None
    return {"architecture": descriptor.architecture.name}


def size_and_hash_problems(path: str, entry: dict) -> list[str]:
    """How a file differs from its entry's published size and sha256 (those that are known)."""
    from .convert import file_sha256

    problems = []
    if entry.get("size") and os.path.getsize(path) != entry["size"]:
        problems.append(f"size {os.path.getsize(path)} bytes, expected {entry['size']} (incomplete download?)")
    if entry.get("sha256") and file_sha256(path) != entry["sha256"]:
        problems.append("sha256 differs from the published file")
    return problems


def verify_file(path: str, entry: dict) -> list[str]:
    """Problems with a placed file (empty when it is what the manifest describes)."""
    from .checkpoint import CheckpointError

    problems = size_and_hash_problems(path, entry)
    if not entry.get("expect"):  # files of other frameworks (an SD checkpoint): size and hash only
        return problems
    try:
        found = identify_file(path)
    except CheckpointError as error:
        return problems + [str(error)]
    for key, expected in entry.get("expect", {}).items():
        if found.get(key) != expected:
            problems.append(f"{key} is {found.get(key)}, expected {expected}")
    return problems
