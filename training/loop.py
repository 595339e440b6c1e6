"""The training loop both DR-BFR stages share: steps, a CSV log, checkpoints, a time budget."""
from __future__ import annotations

import csv
import os
import time

from ..runtime import TerminalProgress
from .checkpoints import Resumable


def run_steps(run: Resumable, config, name: str, losses_of_one_step, columns: tuple[str, ...], log=print):
    """Optimise until config.steps (or config.max_minutes): `losses_of_one_step()` returns a dict of
    scalar tensors with "loss" (the one that is minimised) and the other `columns`. Writes
    out_dir/log.csv every config.log_every steps, a checkpoint every config.checkpoint_every steps
    and one at the end."""
    log_path = os.path.join(config.out_dir, "log.csv")
    new_log = not os.path.exists(log_path)
    started = time.monotonic()
    progress = TerminalProgress(config.steps, name, run.step)
    with open(log_path, "a", newline="") as log_file:
        writer = csv.writer(log_file)
        if new_log:
            writer.writerow(["step", *columns, "seconds"])
        while run.step < config.steps:
            losses = losses_of_one_step()
            run.optimizer.zero_grad(set_to_none=True)
            losses["loss"].backward()
            run.optimizer.step()
            run.step += 1
            values = {k: float(v.detach()) for k, v in losses.items()}
            run.history.append(values["loss"])
            progress.update(1, f"loss {values['loss']:.4f}")
            if run.step % config.log_every == 0 or run.step == 1:
                writer.writerow([run.step, *(f"{values[k]:.5f}" for k in columns), f"{time.monotonic() - started:.1f}"])
                log_file.flush()
            if run.step % config.checkpoint_every == 0:
                run.save()
            if config.max_minutes and time.monotonic() - started > 60 * config.max_minutes:
                log(f"{name}: time budget of {config.max_minutes} min reached at step {run.step}")
                break
    run.save()
