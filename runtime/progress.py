"""Progress bars: ComfyUI's (with preview images) inside ComfyUI, a terminal line outside it.

Used by the nodes, the restoration pipelines and training alike.
"""
from __future__ import annotations

import os
import sys
import threading
import time

import torch

from .host import comfy_progress_bar

PREVIEW_MAX_SIZE = 512

_terminal_lock = threading.Lock()


class TerminalProgress:
    """A progress line for long runs without ComfyUI (headless restoration, training).

    `update()` redraws one stderr line, only on a terminal or with DFR_PROGRESS=1.
    """

    def __init__(self, total: int, description: str = "", start: int = 0):
        self.total, self.current, self.description = max(1, int(total)), int(start), description
        self.started = time.monotonic()
        self.enabled = sys.stderr.isatty() or os.environ.get("DFR_PROGRESS") == "1"

    def update(self, steps: int = 1, note: str = ""):
        self.current = min(self.total, self.current + steps)
        if not self.enabled:
            return
        width = 30
        filled = int(width * self.current / self.total)
        elapsed = time.monotonic() - self.started
        with _terminal_lock:
            sys.stderr.write(f"\r{self.description} [{'#' * filled}{'.' * (width - filled)}] {self.current}/{self.total} {elapsed:.0f}s {note}")
            if self.current >= self.total:
                sys.stderr.write("\n")
            sys.stderr.flush()


class Progress:
    """A progress bar: ComfyUI's (with preview images) or a terminal one."""

    def __init__(self, total: int, description: str = ""):
        self.total = max(1, int(total))
        self.current = 0
        self._bar = comfy_progress_bar(self.total)
        self._terminal = TerminalProgress(self.total, description) if self._bar is None else None

    def update(self, steps: int = 1, preview: torch.Tensor | None = None):
        """Advance; `preview` is an optional [H, W, 3] image in 0..1 shown in the UI."""
        self.current = min(self.total, self.current + steps)
        if self._bar is not None:
            self._bar.update_absolute(self.current, self.total, _preview_tuple(preview) if preview is not None else None)
        else:
            self._terminal.update(steps)


def _preview_tuple(image: torch.Tensor):
    from PIL import Image

    array = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    return "JPEG", Image.fromarray(array[..., :3]), PREVIEW_MAX_SIZE
