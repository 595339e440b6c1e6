#!/usr/bin/env bash
# Runs the pack in a real ComfyUI server and its real frontend (../shared/tools/comfy-harness).
# Needs a harness built once (see ../shared/tools/comfy-harness/README.md):
#   COMFYUI_GIT_DIR=<ComfyUI git dir> HARNESS_DIR=<dir> bash ../shared/tools/comfy-harness/setup.sh
#   $HARNESS_DIR/venv/bin/pip install -r requirements.txt
# then, with the Python that has the test requirements (torch, facexlib, scikit-image, diffusers):
#   PYTHON=.venv/bin/python HARNESS_DIR=<dir> bash tests/comfyui/run.sh [OUT_DIR]
# The pack is copied into a folder named diffusion-face-restore (the template browser's category).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
checkout="$(cd "$here/../.." && pwd)"
harness="${HARNESS_TOOLS:-$checkout/../shared/tools/comfy-harness}"
out="${1:-$(mktemp -d)}"
python="${PYTHON:-python3}"
if ! "$python" -c "import torch, facexlib, skimage" 2>/dev/null; then
  echo "tests/comfyui/run.sh: $python cannot import torch, facexlib and scikit-image; set PYTHON to the" \
       "interpreter of the pack's test environment (e.g. PYTHON=.venv/bin/python, set up as the README's" \
       "Development section says)" >&2
  exit 2
fi
comfy_python="${COMFY_PYTHON:-${HARNESS_DIR:?set HARNESS_DIR to the harness build (or COMFYUI_DIR and COMFY_PYTHON)}/venv/bin/python}"
pack="$out/pack/diffusion-face-restore"
rm -rf "$out/pack" && mkdir -p "$pack"
(cd "$checkout" && git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf -) | tar -xf - -C "$pack"
"$python" "$here/make_inputs.py" "$out/inputs"
# the video check's clip: a real photo along a known camera path, with a sound track (PyAV)
"$comfy_python" "$here/make_clip.py" "$out/inputs/clip_frames" "$out/inputs/clip.mp4"
# DR-BFR: SD1.5-architecture model, our exported ControlNet and DRM bundle (random weights); the
# single-file checkpoint is written by ComfyUI's own code, with the Python that runs ComfyUI
"$python" "$here/make_drbfr_models.py" "$out/inputs"
mkdir -p "$out/inputs/models/checkpoints"
"$comfy_python" "$here/diffusers_to_checkpoint.py" "${COMFYUI_DIR:-$HARNESS_DIR/ComfyUI}" \
  "$out/inputs/sd15_diffusers" "$out/inputs/models/checkpoints/v1-5-pruned-emaonly-fp16.safetensors" 2>/dev/null
rm -rf "$out/inputs/sd15_diffusers"
workflows=()
for workflow in "$pack"/workflows/*.json; do
  # DR-BFR samples 30 SD1.5 steps at 512 px: loaded below, not queued on a CPU (a 3-step copy is)
  case "$(basename "$workflow")" in DR-BFR*) ;; *) workflows+=(--ui-workflow "$workflow") ;; esac
done
python3 "$harness/comfy_run.py" --pack "$pack" \
  --nodes FaceDetect,FaceTrack,FaceTemporalBlend,PasteBack,FaceDiffusionLoader,DifFaceInit,DR2GuidedSampler,FaceEnhancerLoader,Enhancer,DegradationModelLoader,DegradationEncoder,DR-ControlNetApply \
  --input "$out/inputs/example.png" --input "$out/inputs/no_face.png" --input "$out/inputs/clip.mp4" \
  --models-dir "$out/inputs/models" \
  --prompt "$here/face_pipeline_api.json" --prompt "$here/no_face_api.json" --prompt "$here/mtcnn_api.json" \
  --prompt "$here/retinaface_parsing_api.json" --prompt "$here/difface_api.json" --prompt "$here/difface_fast_api.json" \
  --prompt "$here/dr2_hybrid_api.json" --prompt "$here/retinaface_builtin_api.json" \
  --prompt "$here/dr_bfr_api.json" --prompt "$here/video_dr2_api.json" \
  "${workflows[@]}" --out "$out/results" --summary "$out/results/summary.json"
# the restored clip keeps the input's frame count, size, fps and sound
"$comfy_python" - "$out/results" "$out/inputs/clip.mp4" <<'PY'
import glob, sys, av
def describe(path):
    with av.open(path) as container:
        video = container.streams.video[0]
        frames = sum(1 for _ in container.decode(video=0))
        return frames, (video.width, video.height), float(video.average_rate), len(container.streams.audio)
saved = glob.glob(f"{sys.argv[1]}/prompt_video_dr2_api_outputs/*.mp4")
assert len(saved) == 1, saved
source, result = describe(sys.argv[2]), describe(saved[0])
assert result == source and result[3] == 1, (source, result)
print("video restored: frames, size, fps and sound as the input's:", result)
# the built-in MTCNN detector (weights in the pack, none in the models folder) found the astronaut's
# face: one crop, not the grey "no face found" placeholder
import numpy as np
from PIL import Image
crops = glob.glob(f"{sys.argv[1]}/prompt_mtcnn_api_outputs/api_mtcnn_crops*.png")
assert len(crops) == 1 and np.asarray(Image.open(crops[0])).std() > 20, crops
print("MTCNN found the face:", crops[0])
# the built-in RetinaFace (weights in the pack too): the astronaut's face in FaceDetect, and one face in
# every frame of the clip through FaceTrack and FaceTemporalBlend
crops = glob.glob(f"{sys.argv[1]}/prompt_retinaface_builtin_api_outputs/api_retinaface_builtin_crops*.png")
assert len(crops) == 1 and np.asarray(Image.open(crops[0])).std() > 20, crops
tracked = glob.glob(f"{sys.argv[1]}/prompt_retinaface_builtin_api_outputs/api_retinaface_builtin_track_crops*.png")
assert len(tracked) == source[0] and all(np.asarray(Image.open(c)).std() > 20 for c in tracked), tracked
print("the built-in RetinaFace found the face and tracked it through", len(tracked), "frames")
PY
# dfr.py batch --workflow: every template, copies using the built-in MTCNN (the random-weight
# RetinaFace here finds no face), the DR-BFR template with 3 KSampler steps (not 30) and the DR-BFR
# API prompt, queued in ComfyUI above and here, then run headless with ComfyUI's own Python (the same
# torch build) on the same photo and models, ComfyUI's own nodes (KSampler, CheckpointLoaderSimple,
# CLIPTextEncode, ControlNetLoader, VAEEncode/Decode) through the same ComfyUI: the same pixels, bit for bit
"$python" "$here/headless_compare.py" prepare "$pack" "$out/inputs/mtcnn_workflows" >/dev/null
mtcnn_workflows=()
for workflow in "$out/inputs/mtcnn_workflows"/*.json; do mtcnn_workflows+=(--ui-workflow "$workflow"); done
python3 "$harness/comfy_run.py" --pack "$pack" --input "$out/inputs/example.png" --input "$out/inputs/clip.mp4" \
  --models-dir "$out/inputs/models" "${mtcnn_workflows[@]}" --out "$out/results" --summary "$out/results/summary_mtcnn_workflows.json"
headless=()
for workflow in "$pack"/workflows/*.json "$out/inputs/mtcnn_workflows"/*.json; do
  case "$(basename "$workflow")" in DR-BFR*) ;; *) headless+=("$workflow") ;; esac
done
"$comfy_python" "$here/headless_compare.py" compare "$pack" "$out/results" "$out/inputs/example.png" "$out/inputs/clip.mp4" \
  "$out/inputs/models" "${COMFYUI_DIR:-$HARNESS_DIR/ComfyUI}" "${headless[@]}" "$here/dr_bfr_api.json"
python3 "$harness/comfy_run.py" --pack "$pack" --input "$out/inputs/example.png" --models-dir "$out/inputs/models" \
  --ui-workflow "$pack/workflows/DR-BFR restoration with your trained ControlNet.json" --no-queue \
  --out "$out/results_dr_bfr_ui" --summary "$out/results_dr_bfr_ui/summary.json"
# missing weight files: the graph is refused before anything runs, every missing file named at once
set +e
python3 "$harness/comfy_run.py" --pack "$pack" --input "$out/inputs/example.png" \
  --prompt "$here/missing_weights_api.json" --out "$out/expected_error" --summary "$out/expected_error/summary.json" >/dev/null
set -e
"$python" - "$out/expected_error/summary.json" <<'PY'
import json, sys
prompt = json.load(open(sys.argv[1]))["prompts"][0]
errors = json.dumps(prompt.get("node_errors") or {})
assert prompt["status"] == "rejected", prompt
for name in ("detection_Resnet50_Final.pth", "DR2_FFHQ.pkl", "SPARNetHD_FFHQ_DR2aug.pth", "parsing_parsenet.pth"):
    assert name in errors, (name, errors)
print("refused before running, naming all four missing files:", len(prompt["node_errors"]), "nodes")
PY
# the template browser shows every template with its thumbnail (a URL left by an earlier run
# into the same folder would point at a server that is gone)
rm -f "$out/url.txt"
python3 "$harness/comfy_run.py" --pack "$pack" --models-dir "$out/inputs/models" --serve --url-file "$out/url.txt" \
  --out "$out/results_templates" >/dev/null 2>&1 &
server=$!
for _ in $(seq 120); do [ -s "$out/url.txt" ] && break; sleep 1; done
# (its report beside the screenshot: the server writes summary.json into the same folder when it stops)
"$comfy_python" "$here/template_browser.py" "$(cat "$out/url.txt")" diffusion-face-restore "$out/results_templates" \
  > "$out/results_templates/template_browser.json" || { kill "$server"; exit 1; }
kill "$server"
echo "template browser: $out/results_templates/template_browser.png ($out/results_templates/template_browser.json)"
