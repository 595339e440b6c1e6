#!/usr/bin/env python3
"""diffusion-face-restore's command line (run it with the Python that runs ComfyUI).

    python dfr.py convert FILE [OUTPUT] [--head-channels N] [--image-size N] [--force]
        Convert a checkpoint (.pth/.pt/.pkl/.safetensors, as released) to .safetensors with the
        configuration in its metadata. --head-channels and --image-size describe UNet variants
        whose head width or native size differ from the official files (64 and 8 px per level).

    python dfr.py verify NAME... [--models-dir DIR]
        Check placed weight files (by manifest name, e.g. DR2_FFHQ.pkl) in their folders under
        ComfyUI/models (or DIR, or $DFR_MODELS_DIR): size and sha256 where published, and that
        the file loads as the network it should be.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pack_import import import_pack  # noqa: E402


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
    from diffusion_face_restore.nodes import runtime

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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="dfr.py", description="diffusion-face-restore tools")
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
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
