"""Reading checkpoints safely, whatever layout they were released in.

- `.safetensors` (and `.sft`) are read with safetensors;
- `.pth`, `.pt`, `.pkl`, `.ckpt`, `.bin` only through `torch.load(weights_only=True)`, which refuses
  to run code hidden in a pickle;
- nested dicts (`state_dict`, `params_ema`, `params`, ...) are unwrapped and DataParallel's
  `module.` prefix is stripped, so the official files load as released.

Every failure is a `CheckpointError` whose message names the file and says what to do.
"""
from __future__ import annotations

import os
import pickle
import tempfile

import torch

SAFETENSORS_EXTENSIONS = (".safetensors", ".sft")
PICKLE_EXTENSIONS = (".pth", ".pt", ".pkl", ".ckpt", ".bin")
CHECKPOINT_EXTENSIONS = SAFETENSORS_EXTENSIONS + PICKLE_EXTENSIONS

# Where training frameworks nest the weights, in order of preference (EMA weights first, as
# Real-ESRGAN's and GFPGAN's loaders do).
NESTING_KEYS = ("params_ema", "state_dict_ema", "ema", "params", "state_dict", "model", "net", "generator")

# what torch's weights-only unpickler says when a file names code or classes; other refusals are
# about bytes no pickler writes (an unknown opcode), which only a damaged file holds
REFUSED_OBJECT_MARKERS = ("GLOBAL", "add_safe_globals", "unrecognized function", "DTensor")


class CheckpointError(ValueError):
    """A weight file is missing, unreadable, or not what was expected."""


def read_file(path: str) -> dict:
    """Read a checkpoint file into a dict (tensors, possibly nested), without executing code."""
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such file")
    extension = os.path.splitext(path)[1].lower()
    name = os.path.basename(path)
    if extension in SAFETENSORS_EXTENSIONS:
        from safetensors.torch import load_file
        from safetensors import SafetensorError

        try:
            return load_file(path, device="cpu")
        except (SafetensorError, OSError, ValueError) as error:
            raise CheckpointError(f"{name} is not a readable .safetensors file ({error}); download it again") from None
    if extension not in PICKLE_EXTENSIONS:
        raise CheckpointError(
            f"{name}: unsupported file type '{extension}' (use one of {', '.join(CHECKPOINT_EXTENSIONS)})"
        )
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        complaint = _unpickler_complaint(error)
        if not any(marker in str(error) for marker in REFUSED_OBJECT_MARKERS):
            raise _damaged(name, complaint) from None
        # a file cut inside a class name reads as that (shortened) name: say both what it can mean
        raise CheckpointError(
            f"{name} names a Python object, which is refused for safety ({complaint}): a released weight file "
            "that says this is damaged (download it again); one that holds code or custom classes must be "
            "converted to .safetensors on a trusted machine"
        ) from None
    except MemoryError:
        raise
    except Exception as error:  # noqa: BLE001 - a damaged pickle can fail anywhere in the unpickler
        # RuntimeError, BadZipFile, EOFError from the container; from the weights-only unpickler also
        # IndexError ('pop from empty list'), KeyError and struct.error on damaged bytes
        raise _damaged(name, _first_line(error)) from None
    if not isinstance(loaded, dict):
        raise CheckpointError(f"{name} does not hold a state dict (found {type(loaded).__name__})")
    return loaded


def _damaged(name: str, reason: str) -> CheckpointError:
    return CheckpointError(
        f"{name} is not a complete PyTorch checkpoint ({reason}); the file is probably truncated or corrupt: "
        "download it again"
    )


def _unpickler_complaint(error: pickle.UnpicklingError) -> str:
    """The sentence of torch's weights-only refusal that says what it met: its message wraps it in
    paragraphs about torch.load's defaults and a pointer to the documentation."""
    text = str(error)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    own = [line for line in lines if not line.startswith(("Weights only load failed", "Check the documentation"))]
    return own[0].split(". ")[0].rstrip(".")[:200] if own else _first_line(error)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200] if text else type(error).__name__


def _is_tensor_dict(value) -> bool:
    return isinstance(value, dict) and bool(value) and all(isinstance(v, torch.Tensor) for v in value.values())


def unwrap_state_dict(loaded: dict) -> dict[str, torch.Tensor]:
    """Descend into the nesting keys until a flat {name: tensor} dict is reached."""
    current = loaded
    for _ in range(4):
        if _is_tensor_dict(current):
            return dict(current)
        for key in NESTING_KEYS:
            if isinstance(current.get(key), dict):
                current = current[key]
                break
        else:
            break
    tensors = {k: v for k, v in current.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"no weights found (top-level keys: {', '.join(map(str, list(loaded)[:8]))})")
    return tensors


def strip_prefix(state_dict: dict[str, torch.Tensor], prefix: str = "module.") -> dict[str, torch.Tensor]:
    """Drop a prefix (DataParallel's `module.`) from every key that has it."""
    return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state_dict.items()}


def load_state_dict(path: str) -> dict[str, torch.Tensor]:
    """The flat state dict of a checkpoint, as the network's own key names."""
    try:
        return strip_prefix(unwrap_state_dict(read_file(path)))
    except CheckpointError as error:
        message = str(error)
        if not message.startswith(os.path.basename(path)) and not message.startswith(path):
            message = f"{os.path.basename(path)}: {message}"
        raise CheckpointError(message) from None


def read_safetensors_metadata(path: str) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(path, framework="pt", device="cpu") as handle:
        return dict(handle.metadata() or {})


def read_metadata(path: str) -> dict[str, str]:
    """A .safetensors file's metadata (our converter writes the configuration there); {} otherwise."""
    if os.path.splitext(path)[1].lower() in SAFETENSORS_EXTENSIONS:
        try:
            return read_safetensors_metadata(path)
        except Exception:  # unreadable files are reported by load_state_dict
            return {}
    return {}


def current_umask() -> int:
    """The process's file-creation mask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def save_safetensors(state_dict: dict[str, torch.Tensor], path: str, metadata: dict[str, str] | None = None):
    """Write atomically: a crash never leaves a half-written file under the final name."""
    from safetensors.torch import save_file

    # clone: safetensors refuses tensors that share storage (tied or sliced weights)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state_dict.items()}
    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=folder, suffix=".partial")
    os.close(handle)
    try:
        save_file(tensors, temporary, metadata={k: str(v) for k, v in (metadata or {}).items()})
        # mkstemp makes the file private (0600): give it the mode any new file gets (0644 under the
        # usual umask), so that the group sharing a models folder can read it
        os.chmod(temporary, 0o666 & ~current_umask())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
