"""What a batch promises its user, shared by the pipeline batch (restore/photos.py) and the workflow
batch (headless/): the output folder checked before any work, every input's outcome in
`OUTPUT/manifest.jsonl` (done with its outputs, or failed with a one-line reason), one bad input
never stopping the run, and a stop (Ctrl-C, SIGTERM) that says how far it got.

An input counts as done when its manifest line says so and its outputs exist, or, for an input
with a single output, when that output exists (a run killed between writing it and its line): a
run killed at any point and started again loses no finished input and runs none twice. Failed
inputs are tried again on the next run.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import tempfile
import threading

MANIFEST = "manifest.jsonl"


class BatchStopped(Exception):
    """The run was stopped (Ctrl-C, SIGTERM) between or during inputs; the manifest holds every
    input finished before. `result` is the run's {"done", "skipped", "failed"} so far."""

    def __init__(self, result: dict, left: int):
        self.result, self.left = result, left
        super().__init__(f"stopped: {len(result['done'])} done and {len(result['failed'])} failed in this run, {left} not run; "
                         "run the same command again to resume")


def failure_reason(error: BaseException) -> str:
    """One line saying why an input failed: the message of the pack's own errors (ValueError,
    FileNotFoundError, which say what to do), else the kind of error and its first line."""
    import torch

    if isinstance(error, (MemoryError, torch.OutOfMemoryError)):
        return (f"out of memory ({type(error).__name__}); a smaller {'photo' if isinstance(error, MemoryError) else 'batch'} "
                "or a machine with more memory is needed (see --max-megapixels)")
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if type(error) in (ValueError, FileNotFoundError) or type(error).__module__.startswith("diffusion_face_restore"):
        return text or type(error).__name__
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def prepare_output_folder(input_dir: str, output_dir: str):
    """Before any work: the output folder exists (made if missing), is a folder, is not the input
    folder (its outputs would be taken for inputs, or replace them) and can be written; else a
    one-line ValueError saying what to change."""
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise ValueError(f"the output {output_dir} is a file, not a folder: give a folder for the results")
    if os.path.isdir(input_dir) and os.path.isdir(output_dir) and os.path.samefile(input_dir, output_dir):
        raise ValueError(f"the output folder is the input folder ({input_dir}): results would replace the photos or be taken "
                         "for them; give another folder (a subfolder is fine)")
    try:
        os.makedirs(output_dir, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=output_dir, prefix=".dfr-write-check-"):
            pass
    except OSError as error:
        raise ValueError(f"cannot write to the output folder {output_dir} ({error.strerror or error}); give a folder you can "
                         "write to") from None


def read_manifest(output_dir: str) -> dict[str, dict]:
    """The last recorded outcome of every input (a line cut short by a kill is ignored)."""
    records = {}
    path = os.path.join(output_dir, MANIFEST)
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(record, dict) and "photo" in record:
                    records[record["photo"]] = record
    return records


def append_manifest(output_dir: str, record: dict):
    with open(os.path.join(output_dir, MANIFEST), "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def is_done(record: dict | None, output_dir: str, single_output: str | None) -> bool:
    if record and record.get("status") == "done":
        return all(os.path.exists(os.path.join(output_dir, name)) for name in record["outputs"])
    return single_output is not None and os.path.exists(os.path.join(output_dir, single_output))


@contextlib.contextmanager
def stops_deferred():
    """Ctrl-C and SIGTERM held back until the block ends, so that a stop never falls between an
    input's manifest line and the run's count of it: while the block runs, a stop is only noted, and
    at its end it is raised again for the handlers in place before. (Blocking the signals in the main
    thread is not enough: the kernel hands a signal sent to the process to another thread, torch's or
    Ray's, and Python still runs the handler in the main thread, inside the block.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived = []
    # a handler set outside Python (getsignal None) could not be put back: such a signal is left alone
    handlers = {stop: signal.signal(stop, lambda signum, frame: arrived.append(signum))
                for stop in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(stop) is not None}
    try:
        yield
    finally:
        for stop, handler in handlers.items():
            signal.signal(stop, handler)
        if arrived:
            signal.raise_signal(arrived[0])


def record_outcome(output_dir: str, record: dict, result: dict, report=print):
    """Append an input's outcome to the manifest and the run's result (together: a stop waits for
    both); a failure is reported."""
    with stops_deferred():
        append_manifest(output_dir, record)
        result["done" if record["status"] == "done" else "failed"].append(record["photo"])
    if record["status"] == "failed":
        report(f"{record['photo']}: {record['reason']}")


def stop_on_sigterm():
    """From here on, SIGTERM stops the run as Ctrl-C does (KeyboardInterrupt in the main thread),
    so a service manager's stop leaves the manifest complete and a one-line message."""
    if threading.current_thread() is not threading.main_thread():
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def plan_inputs(input_dir: str, inputs: list[str], output_dir: str, single_output, report=print, what: str = "") -> tuple[list[str], dict]:
    """Before any work: the output folder checked (prepare_output_folder), then the inputs still to
    run and the result so far ({"done", "skipped", "failed"}). `single_output(name)`: an input's one
    output file, or None where it writes several; inputs written just before a kill are recorded
    as done now."""
    prepare_output_folder(input_dir, output_dir)
    records = read_manifest(output_dir)
    single = {name: single_output(name) for name in inputs}
    todo = [name for name in inputs if not is_done(records.get(name), output_dir, single[name])]
    result = {"done": [], "skipped": [name for name in inputs if name not in todo], "failed": []}
    for name in result["skipped"]:  # written, but the run was stopped before its line: recorded now
        if records.get(name, {}).get("status") != "done":
            append_manifest(output_dir, {"photo": name, "status": "done", "outputs": [single[name]], "found_after_restart": True})
    report(f"{len(inputs)} input(s) in {input_dir}: {len(result['skipped'])} already done, {len(todo)} to run{what}")
    return todo, result


def run_inputs(todo: list[str], process, output_dir: str, result: dict, report=print, description: str = "") -> dict:
    """process(name) -> the manifest record of each input, in turn, recorded as it finishes; Ctrl-C
    or SIGTERM raises BatchStopped with the result so far (the input in progress left to the next
    run)."""
    from ..runtime import TerminalProgress

    progress = TerminalProgress(len(todo), description)
    try:
        for name in todo:
            record_outcome(output_dir, process(name), result, report)
            progress.update(1, name)
    except KeyboardInterrupt:
        raise BatchStopped(result, len(todo) - len(result["done"]) - len(result["failed"])) from None
    return result
