"""`dfr.py batch --workflow` against a real ComfyUI: the workflow templates (and copies whose FaceDetect
or FaceTrack uses the built-in MTCNN, so that the harness's random-weight RetinaFace finding no face does not
leave the restorers idle; the DR-BFR template with 3 KSampler steps instead of 30, for a CPU) and API
prompts queued in the real ComfyUI, then run headless on the same photo (or clip) and models, ComfyUI's
own nodes (KSampler, CheckpointLoaderSimple, ...) through the same ComfyUI attached to the process: every
saved image (the decoded frames of the saved video) must be the same, bit for bit.

    python headless_compare.py prepare PACK_DIR OUT_DIR        writes OUT_DIR/*.json (the copies)
    python headless_compare.py compare PACK_DIR RESULTS_DIR PHOTO CLIP MODELS_DIR COMFYUI_DIR WORKFLOW...
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import sys
import tempfile

import numpy as np
from PIL import Image

TRACKERS = ("FaceDetect", "FaceTrack")
FEW_STEPS = 3  # the DR-BFR copy's KSampler steps (the template's 30 SD1.5 steps at 512 px take long on a CPU)


def prepare(pack: str, out: str):
    os.makedirs(out, exist_ok=True)
    for path in sorted(glob.glob(os.path.join(pack, "workflows", "*.json"))):
        with open(path, encoding="utf-8") as handle:
            workflow = json.load(handle)
        samplers = [n for n in workflow["nodes"] if n["type"] == "KSampler"]
        detects = [n for n in workflow["nodes"] if n["type"] in TRACKERS]
        if samplers:
            for node in samplers:
                node["widgets_values"][2] = FEW_STEPS  # seed, control after generate, steps, ...
            name = f"{FEW_STEPS} steps " + os.path.basename(path)
        elif detects and detects[0]["widgets_values"][0] != "mtcnn (built-in)":
            for node in detects:
                node["widgets_values"][0] = "mtcnn (built-in)"
            name = "mtcnn " + os.path.basename(path)
        else:
            continue
        target = os.path.join(out, name)
        with open(target, "w", encoding="utf-8") as handle:
            json.dump(workflow, handle)
        print(target)


def comfy_outputs(results: str, stem: str, prefixes: list[str]) -> list[str]:
    """ComfyUI's saved file of each save node (by its filename prefix), queued as a UI workflow or
    as an API prompt."""
    folders = [os.path.join(results, f"{kind}_{stem}_outputs") for kind in ("ui", "prompt")]
    saved = [p for folder in folders for p in glob.glob(os.path.join(folder, "*"))
             if "_temp_" not in os.path.basename(p) and p.endswith((".png", ".mp4"))]
    if len(prefixes) == 1:
        assert len(saved) == 1, (stem, saved)
        return saved
    found = []
    for prefix in prefixes:
        mine = [p for p in saved if os.path.basename(p).startswith(os.path.basename(prefix) + "_")]
        assert len(mine) == 1, (stem, prefix, saved)
        found += mine
    return found


def pixels(path: str) -> tuple[np.ndarray, int]:
    """An image's pixels, or a video's decoded frames [T, H, W, 3], and its number of sound streams."""
    if not path.endswith(".mp4"):
        return np.asarray(Image.open(path).convert("RGB")), 0
    import av

    with av.open(path) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)]), len(container.streams.audio)


def compare(pack: str, results: str, photo: str, clip: str, models: str, comfyui: str, workflows: list[str]):
    sys.path.insert(0, pack)
    from pack_import import import_pack

    import_pack()
    from diffusion_face_restore import runtime
    from diffusion_face_restore.headless.batch import WorkflowBatch, run_workflow_batch
    from diffusion_face_restore.restore.outcomes import read_manifest

    runtime.set_models_dir(models)
    with tempfile.TemporaryDirectory() as work:
        inputs = os.path.join(work, "in")
        os.makedirs(inputs)
        Image.open(photo).save(os.path.join(inputs, "example.png"))
        shutil.copy(clip, os.path.join(inputs, "clip.mp4"))
        for index, path in enumerate(workflows):
            stem = os.path.splitext(os.path.basename(path))[0]
            out = os.path.join(work, str(index))
            batch = WorkflowBatch(path, comfyui)
            prefixes = [batch.graph[node].inputs["filename_prefix"] for node in batch.saves]
            theirs_files = comfy_outputs(results, stem, prefixes)
            source = os.path.join(inputs, "clip.mp4") if batch.reads_video else inputs  # a clip, or a folder of one photo
            result = run_workflow_batch(path, source, out, report=lambda *_: None, comfyui=comfyui)
            (name,) = result["done"]
            record = read_manifest(out)[name]
            assert len(record["outputs"]) == len(theirs_files), (stem, record["outputs"], theirs_files)
            for ours_file, theirs_file in zip(record["outputs"], theirs_files):
                theirs, sound = pixels(theirs_file)
                ours, our_sound = pixels(os.path.join(out, ours_file))
                assert ours.shape == theirs.shape and np.array_equal(ours, theirs), (stem, np.abs(ours.astype(int) - theirs).max())
                assert our_sound == sound, (stem, our_sound, sound)
                if stem.startswith(("mtcnn ", f"{FEW_STEPS} steps ")):
                    assert record["faces"] >= 1, (stem, record["faces"])
                what = f"{ours.shape[0]} frames, {sound} sound stream(s), " if ours.ndim == 4 else ""
                print(f"headless = ComfyUI, bit for bit: {stem}, {os.path.basename(theirs_file)} "
                      f"({what}{ours.shape[-2]}x{ours.shape[-3]}, {record['faces']} face(s))")


if __name__ == "__main__":
    if sys.argv[1] == "prepare":
        prepare(sys.argv[2], sys.argv[3])
    else:
        compare(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7], sys.argv[8:])
