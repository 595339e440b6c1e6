"""`dfr.py batch --workflow` against a real ComfyUI: the workflow templates (and copies whose FaceDetect
or FaceTrack uses the built-in MTCNN, so that the harness's random-weight RetinaFace finding no face does not
leave the restorers idle) queued through the real frontend, then run headless on the same photo (or
clip) and models: the saved images (the decoded frames of the saved video) must be the same, bit for
bit.

    python headless_compare.py prepare PACK_DIR OUT_DIR        writes OUT_DIR/*.json (the MTCNN copies)
    python headless_compare.py compare PACK_DIR RESULTS_DIR PHOTO CLIP MODELS_DIR WORKFLOW...
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

HEADLESS = ("LoadImage", "SaveImage", "PreviewImage", "UpscaleModelLoader", "ImageUpscaleWithModel", "Note",
            "LoadVideo", "GetVideoComponents", "CreateVideo", "SaveVideo")
TRACKERS = ("FaceDetect", "FaceTrack")


def runnable_templates(pack: str) -> list[str]:
    sys.path.insert(0, pack)
    from pack_import import import_pack

    import_pack()
    from diffusion_face_restore.nodes import NODE_CLASS_MAPPINGS

    chosen = []
    for path in sorted(glob.glob(os.path.join(pack, "workflows", "*.json"))):
        with open(path, encoding="utf-8") as handle:
            types = {n["type"] for n in json.load(handle)["nodes"]}
        if all(t in NODE_CLASS_MAPPINGS or t in HEADLESS for t in types):
            chosen.append(path)
    return chosen


def prepare(pack: str, out: str):
    os.makedirs(out, exist_ok=True)
    for path in runnable_templates(pack):
        with open(path, encoding="utf-8") as handle:
            workflow = json.load(handle)
        detects = [n for n in workflow["nodes"] if n["type"] in TRACKERS]
        if not detects or detects[0]["widgets_values"][0] == "mtcnn (built-in)":
            continue
        for node in detects:
            node["widgets_values"][0] = "mtcnn (built-in)"
        target = os.path.join(out, "mtcnn " + os.path.basename(path))
        with open(target, "w", encoding="utf-8") as handle:
            json.dump(workflow, handle)
        print(target)


def comfy_output(results: str, stem: str) -> str:
    saved = [p for p in glob.glob(os.path.join(results, f"ui_{stem}_outputs", "*")) if "_temp_" not in os.path.basename(p)
             and p.endswith((".png", ".mp4"))]
    assert len(saved) == 1, (stem, saved)
    return saved[0]


def pixels(path: str) -> tuple[np.ndarray, int]:
    """An image's pixels, or a video's decoded frames [T, H, W, 3], and its number of sound streams."""
    if not path.endswith(".mp4"):
        return np.asarray(Image.open(path).convert("RGB")), 0
    import av

    with av.open(path) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)]), len(container.streams.audio)


def compare(pack: str, results: str, photo: str, clip: str, models: str, workflows: list[str]):
    sys.path.insert(0, pack)
    from pack_import import import_pack

    import_pack()
    from diffusion_face_restore import runtime
    from diffusion_face_restore.headless.batch import read_manifest, run_workflow_batch

    runtime.set_models_dir(models)
    with tempfile.TemporaryDirectory() as work:
        inputs = os.path.join(work, "in")
        os.makedirs(inputs)
        Image.open(photo).save(os.path.join(inputs, "example.png"))
        shutil.copy(clip, os.path.join(inputs, "clip.mp4"))
        for index, path in enumerate(workflows):
            stem = os.path.splitext(os.path.basename(path))[0]
            out = os.path.join(work, str(index))
            theirs, sound = pixels(comfy_output(results, stem))
            source = os.path.join(inputs, "clip.mp4") if theirs.ndim == 4 else inputs  # a clip, or a folder of one photo
            result = run_workflow_batch(path, source, out, report=lambda *_: None)
            (name,) = result["done"]
            record = read_manifest(out)[name]
            ours, our_sound = pixels(os.path.join(out, record["outputs"][0]))
            assert ours.shape == theirs.shape and np.array_equal(ours, theirs), (stem, np.abs(ours.astype(int) - theirs).max())
            assert our_sound == sound, (stem, our_sound, sound)
            if stem.startswith("mtcnn "):
                assert record["faces"] >= 1, (stem, record["faces"])
            what = f"{ours.shape[0]} frames, {sound} sound stream(s), " if ours.ndim == 4 else ""
            print(f"headless = ComfyUI, bit for bit: {stem} ({what}{ours.shape[-2]}x{ours.shape[-3]}, {record['faces']} face(s))")


if __name__ == "__main__":
    if sys.argv[1] == "prepare":
        prepare(sys.argv[2], sys.argv[3])
    else:
        compare(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7:])
