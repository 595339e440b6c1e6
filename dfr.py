#!/usr/bin/env python3
"""diffusion-face-restore's command line: `python dfr.py ...` in a checkout (with the Python that runs
ComfyUI), or `dfr ...` where the package is installed (pip install ".[torch]").

    python dfr.py convert FILE [OUTPUT] [--head-channels N] [--image-size N] [--force]
        Convert a checkpoint (.pth/.pt/.pkl/.safetensors, as released) to .safetensors with the
        configuration in its metadata. --head-channels and --image-size describe UNet variants
        whose head width or native size differ from the official files (64 and 8 px per level).

    python dfr.py verify NAME... [--models-dir DIR]
        Check placed weight files (by manifest name, e.g. DR2_FFHQ.pkl) in their folders under the
        models folder (DIR, or $DFR_MODELS_DIR, or ComfyUI/models when the pack is in
        ComfyUI/custom_nodes, else ~/.local/share/diffusion-face-restore/models): size and sha256
        where published, and that the file loads as the network it should be.

    python dfr.py download [NAME ...] [--workflow FILE ...] [--models-dir DIR] [--offline]
        Fetch weight files of the manifest (by name, or those a workflow uses) into their folders:
        resumes partial files, checks sha256 where published, refuses wrong files. --offline (or
        DFR_OFFLINE=1) only reports what is missing. Files on Baidu (DR2) get the manual steps.
        $DFR_MANIFEST: a manifest of your own in models/manifest.json's layout (a mirror's URLs).

    python dfr.py batch PIPELINE INPUT OUTPUT [--download] [--seed S] [--models-dir DIR] [--set KEY=VALUE ...] [--chunk-frames N] [--max-megapixels N]
        Restore a folder of photos (or extracted video frames) without the UI: PIPELINE is difface,
        difface-fast (SEEDS-2, 10 UNet calls: DifFace's own DDIM(0.5) distribution), dr2, dr2-fast (respacing 25:
        6 UNet calls), dr2-p2 (DR2 without Baidu: the P2 prior and GFPGAN) or hybrid,
        with the defaults of its workflow (--set sampler.tau=35, detect.detector=...).
        Resumable: photos whose output exists are skipped. Each photo's seed: S + crc32(file name).
        INPUT may be a video file (OUTPUT: the video to write): faces are tracked through the clip,
        each person gets the same noise in every frame, frames are restored N at a time and an
        interrupted run resumes from its last finished chunk (OUTPUT.work/). --download first
        fetches the weight files the pipeline lacks, as `download` does; a file no script can fetch
        (DR2's, on Baidu) stops it before any photo, naming the pipelines that need none.

    python dfr.py batch --workflow FILE.json INPUT OUTPUT [--models-dir DIR] [--comfyui DIR] [--max-megapixels N]
        Run a workflow saved from ComfyUI (UI or API format) on every photo of INPUT, exactly as queued
        in ComfyUI with the photo in its Load Image node (a workflow with Load Video: INPUT is a video or
        a folder of videos): the pack's nodes, Load/Save/Preview Image, Load Upscale Model, Upscale Image
        (using Model) and the video nodes (Load Video, Get Video Components, Create Video, Save Video) run
        headless; ComfyUI's own nodes (KSampler, CheckpointLoaderSimple, CLIPTextEncode, VAE, ControlNet,
        LoRA, latent nodes: DR-BFR) run with ComfyUI's code, from the ComfyUI the pack sits in or --comfyui
        DIR (run with ComfyUI's Python); any other node type is refused before anything runs. What its Save Image (Save Video)
        node receives goes to OUTPUT/<photo>.png (<clip>.mp4);
        OUTPUT/manifest.jsonl records each photo (outputs, faces found, or why it failed). Resumable:
        finished photos are skipped, failed ones tried again. --ray local|auto|ADDRESS spreads the photos
        over a Ray cluster (one worker per GPU, else --ray-workers CPU workers; the same manifest).

    python dfr.py workflows [--write | --check]
        List the workflow templates (also in an installed package: `batch --workflow NAME` runs one by
        its name) and the weight files each needs. In a checkout, --write writes them in workflows/ from
        their descriptions (tools/workflow_templates.py), --check reports those that differ. Their
        thumbnails: benchmarks/readme_pictures.py.

    python dfr.py train-drm CONFIG.json [--set KEY=VALUE ...]
        DR-BFR stage 1: train the Degradation Representation Module on a folder of HQ faces
        (training/configs/ has examples). Resumes from the newest checkpoint in out_dir.

    python dfr.py train-controlnet CONFIG.json [--set KEY=VALUE ...]
        DR-BFR stage 2: train the ControlNet and the token projector against a frozen Stable
        Diffusion (a diffusers folder; needs `pip install diffusers transformers`). Resumes too.
"""
from __future__ import annotations

import argparse
import importlib
import math
import os
import sys


def import_pack():
    """The pack as the package diffusion_face_restore: the installed one when this runs as the `dfr`
    command (diffusion_face_restore.dfr), else this checkout, whatever its folder is called."""
    if __package__:
        return importlib.import_module(__package__)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from pack_import import import_pack as import_checkout

    return import_checkout()


def convert(args) -> int:
    import_pack()
    from diffusion_face_restore.models.checkpoint import CheckpointError
    from diffusion_face_restore.models.convert import convert_to_safetensors

    overrides = {}
    if args.head_channels:
        overrides["num_head_channels"] = args.head_channels
    if args.image_size:
        overrides["image_size"] = args.image_size
    try:
        written = convert_to_safetensors(args.file, args.output, overrides or None, args.force)
    except CheckpointError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {written}")
    return 0


def verify(args) -> int:
    import_pack()
    from diffusion_face_restore.models.manifest import manifest_entry, verify_file
    from diffusion_face_restore import runtime

    if args.models_dir:
        runtime.set_models_dir(args.models_dir)
    failures = 0
    for name in args.names:
        try:
            entry = manifest_entry(name)
        except KeyError as error:
            print(f"{name}: {error.args[0]}", file=sys.stderr)
            failures += 1
            continue
        path = runtime.find_model_file(entry["folder"], name)
        if path is None:
            where = ", ".join(runtime.model_search_paths(entry["folder"]))
            print(f"{name}: not found in models/{entry['folder']} ({where})" + (f"; {entry['manual']}" if entry.get("manual") else f"; get it from {entry['url']}"), file=sys.stderr)
            failures += 1
            continue
        problems = verify_file(path, entry)
        if problems:
            failures += 1
            print(f"{name}: {path}: " + "; ".join(problems), file=sys.stderr)
        else:
            print(f"{name}: ok ({path})")
    return 1 if failures else 0


MODELS_DIR_DEFAULT = "$DFR_MODELS_DIR, ComfyUI/models when the pack is in ComfyUI/custom_nodes, else ~/.local/share/diffusion-face-restore/models"


def default_models_dir(given: str | None) -> str:
    """--models-dir, or the default (MODELS_DIR_DEFAULT)."""
    from diffusion_face_restore import runtime

    if given:
        return given
    return os.path.dirname(runtime.model_search_paths("checkpoints")[0])


def download(args) -> int:
    import_pack()
    from diffusion_face_restore.models.download import DownloadError, download as fetch, names_in_workflow
    from diffusion_face_restore.models.manifest import manifest_entry

    from diffusion_face_restore.headless.graph import WorkflowError, workflow_path

    names = list(args.names)
    for workflow in args.workflow:
        try:
            names += names_in_workflow(workflow_path(workflow))
        except WorkflowError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
    if not names:
        print("name files (see models/manifest.json) or give --workflow FILE", file=sys.stderr)
        return 2
    models_dir = default_models_dir(args.models_dir)
    failures = 0
    for name in dict.fromkeys(names):
        try:
            fetch(manifest_entry(name), models_dir, offline=args.offline)
        except (KeyError, DownloadError) as error:
            print(error.args[0], file=sys.stderr)  # the message names the file
            failures += 1
    return 1 if failures else 0


PIPELINE_NAMES = ["difface", "difface-fast", "dr2", "dr2-fast", "dr2-p2", "hybrid"]


def batch(args) -> int:
    if args.workflow:
        return batch_workflow(args)
    if args.ray or args.comfyui:
        print(f"error: {'--ray' if args.ray else '--comfyui'} goes with a saved workflow (--workflow FILE.json); the pipelines "
              "run on this machine without ComfyUI", file=sys.stderr)
        return 1
    import_pack()
    from diffusion_face_restore import runtime
    from diffusion_face_restore.models.download import DownloadError
    from diffusion_face_restore.restore.photos import restore_folder
    from diffusion_face_restore.restore.pipelines import MissingWeights, download_missing_weights
    from diffusion_face_restore.headless.validate import checked_overrides
    from diffusion_face_restore.restore.video import is_video, restore_video

    runtime.set_models_dir(default_models_dir(args.models_dir))

    def work():
        overrides = checked_overrides(args.pipeline, parse_overrides(args.set))  # before anything: one line
        if args.download:  # before any photo: a file that cannot be fetched stops the run here
            download_missing_weights(args.pipeline, overrides)
        if is_video(args.input_dir):
            output = args.output_dir
            if os.path.isdir(output) or output.endswith(os.sep):
                output = os.path.join(output, os.path.splitext(os.path.basename(args.input_dir))[0] + ".mp4")
            result = restore_video(args.pipeline, args.input_dir, output, args.seed, overrides, args.chunk_frames)
            print(f"restored {result['frames']} frames in {result['chunks']} chunks ({result['resumed_chunks']} finished before) -> {output}")
            return None
        return restore_folder(args.pipeline, args.input_dir, args.output_dir, args.seed, overrides, max_pixels=args.max_pixels)

    hint = lambda error: "; add --download to fetch those a script can" if isinstance(error, MissingWeights) else ""  # noqa: E731
    return run_batch(work, args.output_dir, "restored", (ValueError, FileNotFoundError, DownloadError), hint)


def batch_workflow(args) -> int:
    import_pack()
    from diffusion_face_restore import runtime
    from diffusion_face_restore.headless.batch import run_workflow_batch
    from diffusion_face_restore.headless.graph import workflow_path

    if args.set or args.download:
        print("error: --set and --download go with a PIPELINE; a workflow carries its own settings "
              f"(fetch its files first with {runtime.command('download --workflow FILE')})", file=sys.stderr)
        return 1
    runtime.set_models_dir(default_models_dir(args.models_dir))

    def work():
        workflow = workflow_path(args.workflow)
        if args.ray:
            from diffusion_face_restore.headless.distributed import run_workflow_batch_on_ray

            return run_workflow_batch_on_ray(workflow, args.input_dir, args.output_dir, args.ray, args.ray_workers,
                                             comfyui=args.comfyui, max_pixels=args.max_pixels)
        return run_workflow_batch(workflow, args.input_dir, args.output_dir, comfyui=args.comfyui, max_pixels=args.max_pixels)

    return run_batch(work, args.output_dir)


def run_batch(work, output_dir: str, done: str = "done", refusals=(ValueError, FileNotFoundError), hint=lambda error: "") -> int:
    """Run a batch (work() -> its result, or None where it reported itself) and end it as a batch
    ends: a refusal in one line (exit 1), a stop in one line (exit 130; SIGTERM stops as Ctrl-C
    does), else the summary."""
    from diffusion_face_restore.restore.outcomes import BatchStopped, stop_on_sigterm

    stop_on_sigterm()
    try:
        result = work()
    except refusals as error:
        print(f"error: {error}{hint(error)}", file=sys.stderr)
        return 1
    except BatchStopped as stopped:
        print(stopped, file=sys.stderr)
        return 130
    except KeyboardInterrupt:  # before the photos' loop (loading, checking), or in a video's chunks
        print("stopped; what finished is kept: run the same command again to resume", file=sys.stderr)
        return 130
    return 0 if result is None else summary(result, output_dir, done)


def summary(result: dict, output_dir: str, done: str = "done") -> int:
    """The batch's last line, and its exit status: 1 when any input failed."""
    from diffusion_face_restore.restore.outcomes import MANIFEST

    print(f"{done} {len(result['done'])}, skipped {len(result['skipped'])} (already done), failed {len(result['failed'])}; "
          f"every input's outcome: {os.path.join(output_dir, MANIFEST)}")
    return 1 if result["failed"] else 0


def positive_number(text: str) -> float:
    """An option's value that must be a finite number above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number above 0")
    return value


def parse_overrides(pairs: list[str]) -> dict:
    """KEY=VALUE strings -> settings; VALUE is read as JSON where it parses (numbers, lists, true)."""
    import json

    values = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise SystemExit(f"--set wants KEY=VALUE, got {pair!r}")
        try:
            values[key] = json.loads(raw)
        except json.JSONDecodeError:
            values[key] = raw
    return values


def workflows(args) -> int:
    import_pack()
    from diffusion_face_restore import runtime
    from diffusion_face_restore.headless.graph import template_names
    from diffusion_face_restore.models.download import names_in_workflow
    from diffusion_face_restore.tools.workflow_templates import WORKFLOWS_DIR, write_workflows

    if not (args.write or args.check):
        for name in template_names():
            files = names_in_workflow(os.path.join(WORKFLOWS_DIR, name + ".json"))
            print(f"{name}\n    weight files: {', '.join(files) if files else 'none'}")
        example = runtime.command('batch --workflow "NAME" INPUT OUTPUT')
        print(f"(in {WORKFLOWS_DIR}; run one by its name: {example})")
        return 0
    if runtime.installed_as_package():
        print("error: the templates are written from their descriptions in a checkout of the pack, not in an installed package",
              file=sys.stderr)
        return 1
    changed = write_workflows(check=args.check)
    if args.check and changed:
        print(f"out of date (run {runtime.command('workflows --write')}): " + ", ".join(changed), file=sys.stderr)
        return 1
    return 0


def train(args) -> int:
    import json

    import_pack()
    from diffusion_face_restore.training.config import Stage1Config, Stage2Config

    with open(args.config, encoding="utf-8") as handle:
        values = {**json.load(handle), **parse_overrides(args.set)}
    try:
        if args.command == "train-drm":
            from diffusion_face_restore.training.stage1 import train_stage1

            result = train_stage1(Stage1Config.from_dict(values))
            print(f"DRM bundle: {result['bundle']} (step {result['step']})")
        else:
            from diffusion_face_restore.training.stage2 import train_stage2

            result = train_stage2(Stage2Config.from_dict(values))
            print(f"ControlNet: {result['controlnet']} -> ComfyUI/models/controlnet")
            print(f"DRM + projector: {result['bundle']} -> ComfyUI/models/degradation_models")
    except (ValueError, FileNotFoundError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="dfr" if __package__ else "dfr.py", description="diffusion-face-restore tools")
    commands = parser.add_subparsers(dest="command", required=True)
    convert_parser = commands.add_parser("convert", help="convert a checkpoint to .safetensors with our metadata")
    convert_parser.add_argument("file")
    convert_parser.add_argument("output", nargs="?")
    convert_parser.add_argument("--head-channels", type=int, help="UNet: channels per attention head (official: 64)")
    convert_parser.add_argument("--image-size", type=int, help="UNet: native image size (official: read from depth)")
    convert_parser.add_argument("--force", action="store_true", help="replace an existing output")
    convert_parser.set_defaults(run=convert)
    verify_parser = commands.add_parser("verify", help="check placed weight files against the manifest")
    verify_parser.add_argument("names", nargs="+", metavar="NAME")
    verify_parser.add_argument("--models-dir", help="the folder holding facedetection/, face_diffusion/, ...")
    verify_parser.set_defaults(run=verify)
    download_parser = commands.add_parser("download", help="fetch weight files of the manifest, verified and resumable")
    download_parser.add_argument("names", nargs="*", metavar="NAME")
    download_parser.add_argument("--workflow", action="append", default=[],
                                 help="fetch what this workflow (UI or API JSON, or a template's name) uses")
    download_parser.add_argument("--models-dir", help=f"ComfyUI's models folder (default: {MODELS_DIR_DEFAULT})")
    download_parser.add_argument("--offline", action="store_true", help="download nothing; report what is missing")
    download_parser.set_defaults(run=download)
    batch_parser = commands.add_parser("batch", help="restore a folder of photos with a pipeline or a saved workflow, headless")
    batch_parser.add_argument("places", nargs="+", metavar="[PIPELINE] INPUT OUTPUT", help=(
        f"PIPELINE: one of {', '.join(PIPELINE_NAMES)} (not with --workflow); INPUT: a folder of photos, or a video "
        "file; OUTPUT: the output folder, or for a video the output video (or a folder)"))
    batch_parser.add_argument("--workflow", metavar="FILE.json",
                              help="run this workflow saved from ComfyUI (UI or API format), or a template by its name (dfr workflows "
                                   "lists them), on every photo of INPUT instead of a pipeline")
    batch_parser.add_argument("--ray", metavar="local|auto|ADDRESS",
                              help="with --workflow: run on a Ray cluster (local: start one here for this run; auto: the one "
                                   "`ray start` set up; or its address); needs pip install \"diffusion-face-restore[ray]\"")
    batch_parser.add_argument("--ray-workers", type=int, default=2,
                              help="Ray workers where the cluster has no GPUs (one CPU each; with GPUs: one worker per GPU)")
    batch_parser.add_argument("--comfyui", metavar="DIR",
                              help="with --workflow: the ComfyUI folder whose own nodes (KSampler, CheckpointLoaderSimple, ...) "
                                   "the workflow uses (default: the ComfyUI the pack is in, or $COMFYUI_DIR)")
    batch_parser.add_argument("--chunk-frames", type=int, default=24, help="video: frames restored at a time (bounds the memory)")
    batch_parser.add_argument("--seed", type=int, default=0, help="base seed; each photo gets seed + crc32(its file name)")
    batch_parser.add_argument("--models-dir", help=f"ComfyUI's models folder (default: {MODELS_DIR_DEFAULT})")
    batch_parser.add_argument("--max-megapixels", type=positive_number, metavar="N",
                              help="the largest photo the batch reads, in megapixels (default: what fits this machine's memory "
                                   "at about 100 bytes per pixel, at least Pillow's 89 MP); a larger photo fails with its own line")
    batch_parser.add_argument("--download", action="store_true",
                              help="first fetch the weight files the pipeline lacks (verified, resumable), then restore")
    batch_parser.add_argument("--set", action="append", default=[], metavar="SECTION.WIDGET=VALUE",
                              help="change a setting, e.g. sampler.tau=35 or detect.detector='opencv-haar (built-in)'")
    batch_parser.set_defaults(run=batch)
    workflows_parser = commands.add_parser("workflows", help="list the workflow templates (batch --workflow takes their names)")
    workflows_parser.add_argument("--write", action="store_true", help="in a checkout: write the templates from their descriptions")
    workflows_parser.add_argument("--check", action="store_true", help="in a checkout: compare instead of writing; exit 1 if any differs")
    workflows_parser.set_defaults(run=workflows)
    for name, help_text in (("train-drm", "DR-BFR stage 1: train the degradation representation module"),
                            ("train-controlnet", "DR-BFR stage 2: train the ControlNet and the DR token projector")):
        train_parser = commands.add_parser(name, help=help_text)
        train_parser.add_argument("config", help="a JSON file of settings (training/configs/ has examples)")
        train_parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a setting")
        train_parser.set_defaults(run=train)
    args = parser.parse_args(argv)
    if args.command == "batch":
        wanted = 2 if args.workflow else 3
        if len(args.places) != wanted or (not args.workflow and args.places[0] not in PIPELINE_NAMES):
            batch_parser.error("give PIPELINE INPUT OUTPUT, or --workflow FILE.json INPUT OUTPUT" +
                               ("" if args.workflow or args.places[0] in PIPELINE_NAMES else f" (PIPELINE is one of {', '.join(PIPELINE_NAMES)})"))
        args.pipeline = None if args.workflow else args.places[0]
        args.input_dir, args.output_dir = args.places[-2:]
        args.max_pixels = None if args.max_megapixels is None else int(args.max_megapixels * 1e6)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
