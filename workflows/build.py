"""Writes the UI-format workflows of this folder from compact descriptions.

Widget values are given by name and laid out in each node's widget order, read from the node
definitions themselves, so a workflow can never hold values in the wrong slots.

    python workflows/build.py          # rewrite every workflow
    python workflows/build.py --check  # exit 1 if a committed workflow differs from its description
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from pack_import import import_pack  # noqa: E402

import_pack()
from diffusion_face_restore.models.manifest import workflow_model  # noqa: E402

# Core ComfyUI nodes used in our workflows: (socket inputs, widget names, outputs).
CORE_NODES = {
    "LoadImage": ([], ["image", "upload"], [("IMAGE", "IMAGE"), ("MASK", "MASK")]),
    "UpscaleModelLoader": ([], ["model_name"], [("UPSCALE_MODEL", "UPSCALE_MODEL")]),
    "ImageUpscaleWithModel": ([("upscale_model", "UPSCALE_MODEL"), ("image", "IMAGE")], [], [("IMAGE", "IMAGE")]),
    "SaveImage": ([("images", "IMAGE")], ["filename_prefix"], []),
    "PreviewImage": ([("images", "IMAGE")], [], []),
    "Note": ([], ["text"], []),
    "CheckpointLoaderSimple": ([], ["ckpt_name"], [("MODEL", "MODEL"), ("CLIP", "CLIP"), ("VAE", "VAE")]),
    "CLIPTextEncode": ([("clip", "CLIP")], ["text"], [("CONDITIONING", "CONDITIONING")]),
    "ControlNetLoader": ([], ["control_net_name"], [("CONTROL_NET", "CONTROL_NET")]),
    "VAEEncode": ([("pixels", "IMAGE"), ("vae", "VAE")], [], [("LATENT", "LATENT")]),
    "VAEDecode": ([("samples", "LATENT"), ("vae", "VAE")], [], [("IMAGE", "IMAGE")]),
    "KSampler": (
        [("model", "MODEL"), ("positive", "CONDITIONING"), ("negative", "CONDITIONING"), ("latent_image", "LATENT")],
        ["seed", "control_after_generate", "steps", "cfg", "sampler_name", "scheduler", "denoise"],
        [("LATENT", "LATENT")],
    ),
}
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN"}
CONTROL_SUFFIX = " control_after_generate"


def node_signature(node_type: str):
    """(socket inputs [(name, type)], widget names, outputs [(name, type)]) of a node type."""
    if node_type in CORE_NODES:
        return CORE_NODES[node_type]
    pack = import_pack()
    cls = pack.NODE_CLASS_MAPPINGS[node_type]
    sockets, widgets = [], []
    for section in ("required", "optional"):
        for name, spec in cls.INPUT_TYPES().get(section, {}).items():
            kind = spec[0]
            if isinstance(kind, (list, tuple)) or kind in WIDGET_TYPES:
                widgets.append(name)
                if kind == "INT" and spec[1].get("control_after_generate"):
                    widgets.append(name + CONTROL_SUFFIX)  # the frontend's "control after generate" value
            else:
                sockets.append((name, kind))
    names = getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES)
    return sockets, widgets, list(zip(names, cls.RETURN_TYPES))


@dataclass
class Node:
    id: int
    type: str
    pos: tuple[int, int]
    widgets: dict = field(default_factory=dict)
    size: tuple[int, int] = (320, 260)
    title: str | None = None


@dataclass
class Workflow:
    name: str
    nodes: list[Node]
    # (from node id, output name, to node id, input name)
    links: list[tuple[int, str, int, str]]
    models: list[dict] = field(default_factory=list)


def defaults_of(node_type: str) -> dict:
    pack = import_pack()
    cls = pack.NODE_CLASS_MAPPINGS[node_type]
    values = {}
    for section in cls.INPUT_TYPES().values():
        for name, spec in section.items():
            options = spec[1] if len(spec) > 1 else {}
            if isinstance(spec[0], (list, tuple)) and (spec[0] or "default" in options):
                values[name] = options.get("default", spec[0][0] if spec[0] else None)
            elif "default" in options:
                values[name] = options["default"]
            if options.get("control_after_generate"):
                values[name + CONTROL_SUFFIX] = "fixed"
    return values


def render(workflow: Workflow) -> dict:
    nodes_by_id = {n.id: n for n in workflow.nodes}
    links, inputs, outputs = [], {}, {}
    for link_id, (src, out_name, dst, in_name) in enumerate(workflow.links, start=1):
        src_outputs = node_signature(nodes_by_id[src].type)[2]
        dst_inputs = node_signature(nodes_by_id[dst].type)[0]
        out_slot = [name for name, _ in src_outputs].index(out_name)
        in_slot = [name for name, _ in dst_inputs].index(in_name)
        kind = src_outputs[out_slot][1]
        if dst_inputs[in_slot][1] != kind:
            raise ValueError(f"{workflow.name}: link {out_name} ({kind}) -> {in_name} ({dst_inputs[in_slot][1]})")
        links.append([link_id, src, out_slot, dst, in_slot, kind])
        inputs[(dst, in_slot)] = link_id
        outputs.setdefault((src, out_slot), []).append(link_id)
    rendered = []
    for order, node in enumerate(workflow.nodes):
        sockets, widget_names, node_outputs = node_signature(node.type)
        unknown = set(node.widgets) - set(widget_names)
        if unknown:
            raise ValueError(f"{workflow.name}: {node.type} has no widget {sorted(unknown)}")
        values = {} if node.type in CORE_NODES else defaults_of(node.type)
        values.update(node.widgets)
        missing = [name for name in widget_names if name not in values]
        if missing:
            raise ValueError(f"{workflow.name}: {node.type} needs values for {missing}")
        entry = {
            "id": node.id,
            "type": node.type,
            "pos": list(node.pos),
            "size": list(node.size),
            "flags": {},
            "order": order,
            "mode": 0,
            "inputs": [
                {"name": name, "type": kind, "link": inputs.get((node.id, slot))} for slot, (name, kind) in enumerate(sockets)
            ],
            "outputs": [
                {"name": name, "type": kind, "links": outputs.get((node.id, slot)), "slot_index": slot}
                for slot, (name, kind) in enumerate(node_outputs)
            ],
            "properties": {"Node name for S&R": node.type},
            "widgets_values": [values[name] for name in widget_names],
        }
        if node.title:
            entry["title"] = node.title
        rendered.append(entry)
    document = {
        "last_node_id": max(n.id for n in workflow.nodes),
        "last_link_id": len(links),
        "nodes": rendered,
        "links": links,
        "groups": [],
        "config": {},
        "extra": {},
        "version": 0.4,
    }
    if workflow.models:
        document["models"] = workflow.models
    return document


FACE_CROP_PASTE = Workflow(
    name="face_crop_paste",
    nodes=[
        Node(1, "LoadImage", (40, 120), {"image": "example.png", "upload": "image"}, (320, 340)),
        Node(2, "FaceDetect", (400, 120), {}, (340, 300)),
        Node(3, "PasteBack", (800, 120), {}, (340, 300)),
        Node(4, "SaveImage", (1180, 120), {"filename_prefix": "face_crop_paste"}, (340, 360)),
        Node(5, "PreviewImage", (400, 480), {}, (340, 300), title="Detections"),
        Node(6, "PreviewImage", (800, 480), {}, (340, 300), title="Aligned crops"),
        Node(
            7,
            "Note",
            (40, 520),
            {
                "text": (
                    "Face pipeline without restoration: FaceDetect finds the faces (built-in detector, no "
                    "download) and cuts FFHQ-aligned crops; PasteBack puts them back with a soft mask.\n\n"
                    "Put any face restorer between FaceDetect's crops and PasteBack's restored_crops. "
                    "Unchanged crops give the photo back (the pipeline is lossless to ~45-60 dB).\n\n"
                    "For better landmarks choose retinaface_resnet50 (detection_Resnet50_Final.pth in "
                    "models/facedetection)."
                )
            },
            (320, 220),
        ),
    ],
    links=[
        (1, "IMAGE", 2, "image"),
        (1, "IMAGE", 3, "image"),
        (2, "faces", 3, "faces"),
        (2, "crops", 3, "restored_crops"),
        (3, "image", 4, "images"),
        (2, "preview", 5, "images"),
        (2, "crops", 6, "images"),
    ],
)

DIFFACE_NOTE = (
    "DifFace (TPAMI 2024): SwinIR estimates the clean face, the estimate is diffused to step K of the "
    "face prior and the reverse process (DDIM, eta) runs from there.\n\n"
    "Knobs: DifFaceInit start_step K (default 100 of ddim250): larger = more generated detail, less "
    "fidelity; smaller = closer to SwinIR's estimate. DR2GuidedSampler eta (0.5): 0 = deterministic. "
    "The seed on DifFaceInit fixes every random draw (the official result for that seed).\n\n"
    "Weights: iddpm_ffhq512_ema500000.pth -> models/face_diffusion; swinir_restoration512_L1.pth -> "
    "models/upscale_models; detection_Resnet50_Final.pth and parsing_parsenet.pth -> "
    "models/facedetection. DifFace's weights are for non-commercial use only (S-Lab License 1.0).\n\n"
    "Cost: 100 UNet calls per face (about 5 min per face on a CPU; seconds on a GPU)."
)


def difface_workflow(name: str, upscaled_background: bool) -> Workflow:
    nodes = [
        Node(1, "LoadImage", (40, 120), {"image": "example.png", "upload": "image"}, (320, 340)),
        Node(2, "FaceDetect", (400, 120), {"detector": "retinaface_resnet50"}, (340, 300)),
        Node(3, "FaceDiffusionLoader", (400, 480), {"model_name": "iddpm_ffhq512_ema500000.pth"}, (340, 110)),
        Node(4, "UpscaleModelLoader", (400, 640), {"model_name": "swinir_restoration512_L1.pth"}, (340, 80)),
        Node(5, "DifFaceInit", (800, 120), {}, (340, 200)),
        Node(6, "DR2GuidedSampler", (1180, 120), {}, (340, 260)),
        Node(7, "PasteBack", (1560, 120), {"parsing": "parsenet"}, (340, 300)),
        Node(8, "SaveImage", (1940, 120), {"filename_prefix": name}, (340, 360)),
        Node(9, "PreviewImage", (800, 400), {}, (340, 300), title="SwinIR estimate"),
        Node(10, "PreviewImage", (1180, 460), {}, (340, 300), title="Restored crops"),
        Node(11, "Note", (40, 520), {"text": DIFFACE_NOTE}, (320, 360)),
    ]
    links = [
        (1, "IMAGE", 2, "image"),
        (2, "faces", 7, "faces"),
        (2, "crops", 5, "crops"),
        (3, "prior", 5, "prior"),
        (3, "prior", 6, "prior"),
        (4, "UPSCALE_MODEL", 5, "restorer"),
        (5, "state", 6, "state"),
        (6, "faces", 7, "restored_crops"),
        (7, "image", 8, "images"),
        (5, "estimate", 9, "images"),
        (6, "faces", 10, "images"),
    ]
    models = ["iddpm_ffhq512_ema500000.pth", "swinir_restoration512_L1.pth", "detection_Resnet50_Final.pth", "parsing_parsenet.pth"]
    if upscaled_background:
        nodes += [
            Node(12, "UpscaleModelLoader", (1180, 800), {"model_name": "RealESRGAN_x2plus.pth"}, (340, 80)),
            Node(13, "ImageUpscaleWithModel", (1560, 480), {}, (340, 60), title="2x background (RealESRGAN)"),
        ]
        links += [(12, "UPSCALE_MODEL", 13, "upscale_model"), (1, "IMAGE", 13, "image"), (13, "IMAGE", 7, "image")]
        models.append("RealESRGAN_x2plus.pth")
    else:
        links.append((1, "IMAGE", 7, "image"))
    return Workflow(name, nodes, links, [workflow_model(m) for m in models])


DIFFACE = difface_workflow("difface", upscaled_background=False)
DIFFACE_X2 = difface_workflow("difface_x2_background", upscaled_background=True)

DR2_NOTE = (
    "DR2 (CVPR 2023): the degraded face is diffused to step omega and denoised to tau while each sample's "
    "low frequencies (below 1/N of the size) are replaced by the input's at the same noise level: the "
    "degradation is washed out, the coarse face kept. SPARNetHD (Enhancer) then restores the detail.\n\n"
    "Knobs (DR2GuidedSampler): N and tau. Paper settings: (4, 22) mild, (8, 35) medium, (16, 35) severe "
    "degradation. Larger N and tau remove more degradation and keep less of the person. omega 0 = the "
    "paper's table (tau + 5..30).\n\n"
    "Weights: DR2_FFHQ.pkl -> models/face_diffusion and SPARNetHD_FFHQ_DR2aug.pth -> "
    "models/facerestore_models (both only on Baidu Netdisk: see the README), detection_Resnet50_Final.pth "
    "-> models/facedetection. DR2 is MIT-licensed.\n\n"
    "The Enhancer takes DR2's 256 px output and resizes it itself, as the official code does."
)
HYBRID_NOTE = (
    "DifFace's start with DR2's guidance: SwinIR's estimate is diffused to step K of DR2's prior (DifFaceInit), "
    "then DR2GuidedSampler denoises from K to tau with DR2's low-frequency guidance from the crops, and "
    "SPARNetHD adds detail.\n\n"
    "K (start_step, on the 100-step respacing) plays omega's role; N and tau as in DR2. The estimate starts "
    "the diffusion closer to a clean face than DR2's own start, so a smaller K suffices.\n\n"
    "Weights: DR2_FFHQ.pkl, SPARNetHD_FFHQ_DR2aug.pth (Baidu, see the README), swinir_restoration512_L1.pth "
    "(DifFace, non-commercial), detection_Resnet50_Final.pth."
)


def dr2_workflow(name: str, difface_start: bool) -> Workflow:
    nodes = [
        Node(1, "LoadImage", (40, 120), {"image": "example.png", "upload": "image"}, (320, 340)),
        Node(2, "FaceDetect", (400, 120), {"detector": "retinaface_resnet50"}, (340, 300)),
        Node(3, "FaceDiffusionLoader", (400, 480), {"model_name": "DR2_FFHQ.pkl"}, (340, 110)),
        Node(4, "FaceEnhancerLoader", (1180, 480), {"model_name": "SPARNetHD_FFHQ_DR2aug.pth"}, (340, 80)),
        Node(5, "DR2GuidedSampler", (800, 120), {"N": 4, "tau": 22}, (340, 260)),
        Node(6, "Enhancer", (1180, 120), {}, (340, 150)),
        Node(7, "PasteBack", (1560, 120), {}, (340, 300)),
        Node(8, "SaveImage", (1940, 120), {"filename_prefix": name}, (340, 360)),
        Node(9, "PreviewImage", (800, 480), {}, (340, 300), title="DR2 output (coarse, degradation-free)"),
        Node(10, "Note", (40, 520), {"text": HYBRID_NOTE if difface_start else DR2_NOTE}, (320, 380)),
    ]
    links = [
        (1, "IMAGE", 2, "image"),
        (1, "IMAGE", 7, "image"),
        (2, "faces", 7, "faces"),
        (2, "crops", 5, "guide"),
        (3, "prior", 5, "prior"),
        (5, "faces_prior_size", 6, "crops"),
        (4, "enhancer", 6, "enhancer"),
        (6, "faces", 7, "restored_crops"),
        (7, "image", 8, "images"),
        (5, "faces_prior_size", 9, "images"),
    ]
    models = ["DR2_FFHQ.pkl", "SPARNetHD_FFHQ_DR2aug.pth", "detection_Resnet50_Final.pth"]
    if difface_start:
        nodes += [
            Node(11, "UpscaleModelLoader", (400, 640), {"model_name": "swinir_restoration512_L1.pth"}, (340, 80)),
            Node(12, "DifFaceInit", (400, 800), {"start_step": 40, "respacing": "100"}, (340, 200)),
        ]
        links += [(2, "crops", 12, "crops"), (3, "prior", 12, "prior"), (11, "UPSCALE_MODEL", 12, "restorer"), (12, "state", 5, "state")]
        models.append("swinir_restoration512_L1.pth")
    return Workflow(name, nodes, links, [workflow_model(m) for m in models])


DR2 = dr2_workflow("dr2", difface_start=False)
HYBRID = dr2_workflow("difface_dr2_hybrid", difface_start=True)

DR_BFR_NOTE = (
    "DR-BFR (2024): a Degradation Representation Module measures how each face is degraded; its tokens "
    "join the prompt in the cross-attention context and a ControlNet sees the degraded crop, steering "
    "Stable Diffusion 1.5 to the clean face.\n\n"
    "DR-BFR released no code or weights: train both with this pack (README, 'Training DR-BFR'): "
    "'python dfr.py train-drm' then 'python dfr.py train-controlnet' write drm_projector.safetensors "
    "(-> models/degradation_models) and dr_controlnet.safetensors (-> models/controlnet), for the SD1.5 "
    "checkpoint you trained against.\n\n"
    "Knobs: ControlNet strength (1.0; lower = more freedom for SD, less fidelity), KSampler steps and cfg. "
    "The crops are VAE-encoded only to give KSampler one latent per face (denoise 1.0 starts from noise). "
    "The Degradation Encoder's estimate output (text: blur, downscale, noise, JPEG quality per face) can go "
    "to any text display node; it is also written to the console."
)

DR_BFR = Workflow(
    name="dr_bfr",
    nodes=[
        Node(1, "LoadImage", (40, 120), {"image": "example.png", "upload": "image"}, (320, 340)),
        Node(2, "FaceDetect", (400, 120), {}, (340, 300)),
        Node(3, "DegradationModelLoader", (400, 480), {"model_name": "drm_projector.safetensors"}, (340, 80)),
        Node(4, "DegradationEncoder", (800, 480), {}, (340, 100)),
        Node(5, "CheckpointLoaderSimple", (40, 560), {"ckpt_name": "v1-5-pruned-emaonly-fp16.safetensors"}, (320, 100)),
        Node(6, "CLIPTextEncode", (400, 640), {"text": "a high quality, sharp photo of a face, detailed skin"}, (340, 120), title="Positive"),
        Node(7, "CLIPTextEncode", (400, 800), {"text": "blurry, noisy, jpeg artifacts, low quality"}, (340, 120), title="Negative"),
        Node(8, "ControlNetLoader", (800, 640), {"control_net_name": "dr_controlnet.safetensors"}, (340, 80)),
        Node(9, "DR-ControlNetApply", (1180, 480), {}, (340, 200)),
        Node(10, "VAEEncode", (800, 120), {}, (240, 60), title="One latent per face"),
        Node(11, "KSampler", (1560, 120), {"seed": 0, "control_after_generate": "fixed", "steps": 30, "cfg": 5.0,
                                            "sampler_name": "dpmpp_2m", "scheduler": "karras", "denoise": 1.0}, (320, 260)),
        Node(12, "VAEDecode", (1940, 120), {}, (240, 60)),
        Node(13, "PasteBack", (2220, 120), {}, (340, 300)),
        Node(14, "SaveImage", (2600, 120), {"filename_prefix": "dr_bfr"}, (340, 360)),
        Node(15, "PreviewImage", (1940, 480), {}, (340, 300), title="Restored crops"),
        Node(16, "Note", (40, 980), {"text": DR_BFR_NOTE}, (360, 360)),
    ],
    links=[
        (1, "IMAGE", 2, "image"),
        (1, "IMAGE", 13, "image"),
        (2, "faces", 13, "faces"),
        (2, "crops", 4, "crops"),
        (3, "degradation_model", 4, "degradation_model"),
        (5, "CLIP", 6, "clip"),
        (5, "CLIP", 7, "clip"),
        (6, "CONDITIONING", 9, "positive"),
        (7, "CONDITIONING", 9, "negative"),
        (8, "CONTROL_NET", 9, "control_net"),
        (2, "crops", 9, "crops"),
        (4, "degradation", 9, "degradation"),
        (2, "crops", 10, "pixels"),
        (5, "VAE", 10, "vae"),
        (5, "MODEL", 11, "model"),
        (9, "positive", 11, "positive"),
        (9, "negative", 11, "negative"),
        (10, "LATENT", 11, "latent_image"),
        (11, "LATENT", 12, "samples"),
        (5, "VAE", 12, "vae"),
        (12, "IMAGE", 13, "restored_crops"),
        (13, "image", 14, "images"),
        (12, "IMAGE", 15, "images"),
    ],
    models=[workflow_model("v1-5-pruned-emaonly-fp16.safetensors")],
)

WORKFLOWS = [FACE_CROP_PASTE, DIFFACE, DIFFACE_X2, DR2, HYBRID, DR_BFR]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args()
    stale = []
    for workflow in WORKFLOWS:
        path = os.path.join(HERE, workflow.name + ".json")
        text = json.dumps(render(workflow), indent=2) + "\n"
        if args.check:
            with open(path, encoding="utf-8") as handle:
                if handle.read() != text:
                    stale.append(path)
        else:
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text)
            print("wrote", path)
    if stale:
        sys.exit("out of date (run python workflows/build.py): " + ", ".join(stale))


if __name__ == "__main__":
    main()
