"""A terminal progress line for long runs (training, headless restoration)."""
from __future__ import annotations

import os
import sys
import threading
import time

_lock = threading.Lock()


class TerminalProgress:
    """`update()` redraws one stderr line (only on a terminal, or with DFR_PROGRESS=1)."""

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
        with _lock:
            sys.stderr.write(f"\r{self.description} [{'#' * filled}{'.' * (width - filled)}] {self.current}/{self.total} {elapsed:.0f}s {note}")
            if self.current >= self.total:
                sys.stderr.write("\n")
            sys.stderr.flush()
