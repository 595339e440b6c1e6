#!/usr/bin/env bash
# Runs the pack in a real ComfyUI server and its real frontend (../shared/tools/comfy-harness).
# Needs a harness built once (see ../shared/tools/comfy-harness/README.md):
#   COMFYUI_GIT_DIR=<ComfyUI git dir> HARNESS_DIR=<dir> bash ../shared/tools/comfy-harness/setup.sh
#   $HARNESS_DIR/venv/bin/pip install -r requirements.txt
# then: HARNESS_DIR=<dir> bash tests/comfyui/run.sh [OUT_DIR]
# The python running make_inputs.py needs the test requirements (facexlib, scikit-image).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
pack="$(cd "$here/../.." && pwd)"
harness="${HARNESS_TOOLS:-$pack/../shared/tools/comfy-harness}"
out="${1:-$(mktemp -d)}"
python="${PYTHON:-python3}"
"$python" "$here/make_inputs.py" "$out/inputs"
# DR-BFR: SD1.5-architecture model, our exported ControlNet and DRM bundle (random weights); the
# single-file checkpoint is written by ComfyUI's own code, with the Python that runs ComfyUI
"$python" "$here/make_drbfr_models.py" "$out/inputs"
mkdir -p "$out/inputs/models/checkpoints"
"${COMFY_PYTHON:-$HARNESS_DIR/venv/bin/python}" "$here/diffusers_to_checkpoint.py" "${COMFYUI_DIR:-$HARNESS_DIR/ComfyUI}" \
  "$out/inputs/sd15_diffusers" "$out/inputs/models/checkpoints/v1-5-pruned-emaonly-fp16.safetensors" 2>/dev/null
rm -rf "$out/inputs/sd15_diffusers"
workflows=()
for workflow in "$pack"/workflows/*.json; do
  # dr_bfr.json samples 30 SD1.5 steps at 512 px: loaded and converted below, not queued on a CPU
  [ "$(basename "$workflow")" = dr_bfr.json ] || workflows+=(--ui-workflow "$workflow")
done
python3 "$harness/comfy_run.py" --pack "$pack" \
  --nodes FaceDetect,PasteBack,FaceDiffusionLoader,DifFaceInit,DR2GuidedSampler,FaceEnhancerLoader,Enhancer,DegradationModelLoader,DegradationEncoder,DR-ControlNetApply \
  --input "$out/inputs/example.png" --input "$out/inputs/no_face.png" \
  --models-dir "$out/inputs/models" \
  --prompt "$here/face_pipeline_api.json" --prompt "$here/no_face_api.json" \
  --prompt "$here/retinaface_parsing_api.json" --prompt "$here/difface_api.json" --prompt "$here/dr2_hybrid_api.json" \
  --prompt "$here/dr_bfr_api.json" \
  "${workflows[@]}" --out "$out/results" --summary "$out/results/summary.json"
python3 "$harness/comfy_run.py" --pack "$pack" --input "$out/inputs/example.png" --models-dir "$out/inputs/models" \
  --ui-workflow "$pack/workflows/dr_bfr.json" --no-queue --out "$out/results_dr_bfr_ui" --summary "$out/results_dr_bfr_ui/summary.json"
# a missing weight file must fail with the one-line message that names file, folder and URL
set +e
python3 "$harness/comfy_run.py" --pack "$pack" --input "$out/inputs/example.png" \
  --prompt "$here/missing_weights_api.json" --out "$out/expected_error" --summary "$out/expected_error/summary.json" >/dev/null
set -e
"$python" - "$out/expected_error/summary.json" <<'PY'
import json, sys
prompt = json.load(open(sys.argv[1]))["prompts"][0]
message = (prompt.get("execution_error") or {}).get("exception_message", "")
assert prompt["status"] == "error" and "detection_Resnet50_Final.pth" in message, prompt
print("expected error:", message.strip())
PY
