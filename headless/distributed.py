"""The workflow batch on a Ray cluster: the same checks, outputs and manifest as on one machine
(headless/batch.py), the photos spread over workers that each load the workflow's models once.

- `ray`: "local" starts a Ray instance on this machine for the run; "auto" joins the cluster
  `ray start` set up here; anything else is a cluster address (ray://host:10001 or host:6379).
- Workers: one per GPU where the cluster has GPUs (each actor holds one), else `workers` actors of
  one CPU each. Each worker reads the photos and writes the outputs itself: INPUT, OUTPUT and the
  models folder must be the same paths on every node (a shared file system), and the pack must be
  importable there (installed, or this checkout at the same path); a workflow with ComfyUI's own
  nodes needs the same ComfyUI folder on every node too.
- Photos are handed out as workers finish (two in flight per worker); the driver writes the
  manifest as results arrive. A worker that dies is restarted by Ray and its photo given again; a
  photo whose output it had already written is not run twice. Killing the whole run and starting it
  again resumes as on one machine.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys

from .. import runtime
from ..restore.outcomes import BatchStopped, record_outcome, stop_on_sigterm
from .batch import WorkflowBatch, plan_batch

IN_FLIGHT_PER_WORKER = 2
RAY_MISSING = 'the --ray option needs Ray on this machine: pip install "diffusion-face-restore[ray]" (or pip install -r requirements-ray.txt)'


def import_pack_in_worker(package_dir: str):
    """Import the pack in a Ray worker under the name diffusion_face_restore, from the same folder
    as the driver's (an installed package, or a checkout of any folder name)."""
    spec = importlib.util.find_spec("diffusion_face_restore")
    if spec is not None and spec.origin and os.path.dirname(spec.origin) == package_dir:
        importlib.import_module("diffusion_face_restore")
        return
    sys.path.insert(0, package_dir)
    from pack_import import import_pack

    import_pack()


class PhotoWorker:
    """One Ray actor: the workflow loaded once, photos run one at a time."""

    def __init__(self, workflow_path: str, models_dir: str | None, package_dir: str, comfyui: str | None = None,
                 max_pixels: int | None = None):
        import_pack_in_worker(package_dir)
        from diffusion_face_restore import runtime as worker_runtime
        from diffusion_face_restore.headless.batch import WorkflowBatch as Batch

        worker_runtime.set_models_dir(models_dir)
        self.batch = Batch(workflow_path, comfyui, max_pixels)

    def run(self, name: str, input_dir: str, output_dir: str) -> dict:
        from diffusion_face_restore.headless.batch import process_photo as process

        return process(self.batch, name, input_dir, output_dir)

    def pid(self) -> int:
        return os.getpid()


def start_ray(address: str, ray):
    if address == "local":
        ray.init(include_dashboard=False, log_to_driver=False)
    else:
        ray.init(address=address, log_to_driver=False)


def run_workflow_batch_on_ray(workflow_path: str, input_dir: str, output_dir: str, address: str = "local", workers: int = 2,
                              report=print, on_started=None, comfyui: str | None = None, max_pixels: int | None = None) -> dict:
    """As run_workflow_batch, on a Ray cluster. on_started(actors) is called once the workers exist
    (tests use it to kill one)."""
    try:
        import ray
    except ImportError:
        raise ValueError(RAY_MISSING) from None
    workflow_path, input_dir, output_dir = (os.path.abspath(p) for p in (workflow_path, input_dir, output_dir))
    models_dir = runtime.models_dir_given() or runtime.models_root()  # the driver's choice, before ComfyUI's folders apply
    batch = WorkflowBatch(workflow_path, comfyui, max_pixels)  # every check before a worker starts
    comfyui = os.path.abspath(comfyui) if comfyui else runtime.find_comfyui()
    input_dir, todo, result = plan_batch(batch, input_dir, output_dir, report)
    if not todo:
        return result
    started_here = not ray.is_initialized()
    if started_here:
        start_ray(address, ray)
        stop_on_sigterm()  # Ray's driver installs its own SIGTERM handler (it logs and exits): ours again
    try:
        gpus = int(ray.cluster_resources().get("GPU", 0))
        count = gpus or max(1, workers)
        # the workers import the pack themselves (PhotoWorker.__init__): send this module's code along
        # rather than its name, which means nothing to a fresh worker until the pack is imported
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
        remote = ray.remote(num_gpus=1 if gpus else 0, num_cpus=0 if gpus else 1, max_restarts=-1, max_task_retries=-1)(PhotoWorker)
        package_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        actors = [remote.remote(workflow_path, models_dir, package_dir, comfyui, max_pixels) for _ in range(count)]
        report(f"{count} Ray worker(s) ({'one GPU each' if gpus else 'one CPU each'})")
        if on_started is not None:
            on_started(actors)
        progress = runtime.TerminalProgress(len(todo), os.path.basename(workflow_path) + " on Ray")
        waiting, pending = list(todo), {}
        free = [actor for actor in actors for _ in range(IN_FLIGHT_PER_WORKER)]
        try:
            while waiting or pending:
                while waiting and free:
                    actor, name = free.pop(0), waiting.pop(0)
                    pending[actor.run.remote(name, input_dir, output_dir)] = (actor, name)
                ready, _ = ray.wait(list(pending), num_returns=1)
                actor, name = pending.pop(ready[0])
                try:
                    record = ray.get(ready[0])
                except ray.exceptions.RayError as error:  # a worker gone for good: give the photo to another
                    report(f"{name}: worker lost ({type(error).__name__}); handed to another worker")
                    actors = [a for a in actors if a is not actor]
                    if not actors:
                        raise ValueError("every Ray worker was lost; run the same command again to resume") from None
                    free = [a for a in free if a is not actor]
                    waiting.insert(0, name)
                    free.append(actors[0])
                    continue
                record_outcome(output_dir, record, result, report)
                free.append(actor)
                progress.update(1, name)
                runtime.check_cancel()
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: photos in flight are left to the next run
            for reference in pending:
                ray.cancel(reference)
            raise BatchStopped(result, len(waiting) + len(pending)) from None
    finally:
        if started_here:
            ray.shutdown()
    return result
