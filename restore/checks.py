"""Input checks shared by the restoration steps: one line that says what is wrong and what to connect;
widget values read as ComfyUI reads them, within their limits (the workflow batch's validation,
headless/validate.py, and the pipelines' --set values)."""
from __future__ import annotations

import math

# why a diffusion output can hold NaN: said wherever such pixels are refused
FP16_OVERFLOW_HINT = "a face prior in fp16 can overflow: set FaceDiffusionLoader's precision to bf16 or fp32"


def expect(value, cls, what: str, source: str):
    """`value` if it is a `cls`, else a one-line error that says which output to connect."""
    if not isinstance(value, cls):
        raise TypeError(f"{what} got a {type(value).__name__}: connect the {source}")
    return value


def input_specs(cls) -> dict[str, tuple[str, object, dict]]:
    """name -> (section, type, options) of a node class's inputs (required and optional)."""
    sections = cls.INPUT_TYPES() if hasattr(cls, "INPUT_TYPES") else {}
    specs = {}
    for section in ("required", "optional"):
        for name, spec in sections.get(section, {}).items():
            options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            specs[name] = (section, spec[0], options)
    return specs


SHOWN_CHOICES = 8


def choices_of(kind, options: dict):
    """The choices of a COMBO input (a list type, or "COMBO" with options), else None."""
    if isinstance(kind, (list, tuple)):
        return list(kind)
    if kind == "COMBO":
        return list(options.get("options", []))
    return None


def shown(choices: list) -> str:
    listed = ", ".join(map(str, choices[:SHOWN_CHOICES]))
    return (listed + (f", ... ({len(choices)} in all)" if len(choices) > SHOWN_CHOICES else "")) if choices else "none"


def check_value(name: str, kind, options: dict, value, own_check: bool = False):
    """(the value as the node receives it, None) or (None, what is wrong in a few words): a widget
    value read as ComfyUI reads it, with its limits (INT as an int, FLOAT as a float)."""
    choices = choices_of(kind, options)
    if choices is not None:
        if own_check or value in choices:
            return value, None
        return None, f"{name} {value!r} is not among its choices ({shown(choices)})"
    if kind in ("INT", "FLOAT"):
        if isinstance(value, bool) or isinstance(value, (list, dict)) or value is None:
            return None, f"{name} {value!r} is not a number"
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            return None, f"{name} {value!r} is not a number"
        if not math.isfinite(number):
            return None, f"{name} {value!r} is not a finite number"
        if kind == "INT":
            try:
                number = int(value) if not isinstance(value, float) else int(number)
            except (TypeError, ValueError):
                return None, f"{name} {value!r} is not a whole number"
            if isinstance(value, float) and not value.is_integer():
                return None, f"{name} {value!r} is not a whole number"
        if not own_check:
            low, high = options.get("min"), options.get("max")
            if low is not None and number < low:
                return None, f"{name} {value!r} is below its minimum {low}"
            if high is not None and number > high:
                return None, f"{name} {value!r} is above its maximum {high}"
        return number, None
    if kind == "BOOLEAN":
        if isinstance(value, bool):
            return value, None
        if value in (0, 1) and not isinstance(value, float):
            return bool(value), None
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true", None
        return None, f"{name} {value!r} is not true or false"
    if kind == "STRING":
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value), None
        return None, f"{name} {value!r} is not text"
    return value, None  # a socket type given a value: the node receives it as it is
