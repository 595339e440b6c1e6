"""Resumable training checkpoints: written atomically, read back with weights_only=True."""
from __future__ import annotations

import glob
import os
import re

import numpy as np
import torch


def save_checkpoint(out_dir: str, step: int, state: dict, keep: int = 2) -> str:
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"checkpoint_{step:08d}.pt")
    temporary = path + ".partial"
    torch.save(state, temporary)
    os.replace(temporary, path)
    for old in checkpoints(out_dir)[:-keep]:
        os.remove(old)
    return path


def checkpoints(out_dir: str) -> list[str]:
    found = glob.glob(os.path.join(out_dir, "checkpoint_*.pt"))
    return sorted(found, key=lambda p: int(re.search(r"checkpoint_(\d+)\.pt$", p).group(1)))


def latest_checkpoint(out_dir: str) -> dict | None:
    found = checkpoints(out_dir)
    if not found:
        return None
    return torch.load(found[-1], map_location="cpu", weights_only=True)


class Resumable:
    """What a training run checkpoints and resumes: named modules, the optimizer, the numpy and torch
    random generators (so a resumed run draws what an uninterrupted one would), the step, the losses."""

    def __init__(self, out_dir: str, modules: dict, optimizer, seed: int):
        self.out_dir, self.modules, self.optimizer = out_dir, modules, optimizer
        self.rng = np.random.default_rng(seed)
        self.generator = torch.Generator().manual_seed(seed)
        self.step, self.history = 0, []

    def resume(self) -> bool:
        state = latest_checkpoint(self.out_dir)
        if state is None:
            return False
        for name, module in self.modules.items():
            module.load_state_dict(state[name])
        self.optimizer.load_state_dict(state["optimizer"])
        self.rng.bit_generator.state = state["numpy_rng"]
        self.generator.set_state(state["torch_rng"])
        self.step, self.history = int(state["step"]), list(state.get("history", []))
        return True

    def save(self) -> str:
        state = {name: module.state_dict() for name, module in self.modules.items()}
        state.update(optimizer=self.optimizer.state_dict(), step=self.step, numpy_rng=self.rng.bit_generator.state,
                     torch_rng=self.generator.get_state(), history=self.history)
        return save_checkpoint(self.out_dir, self.step, state)
