"""The shipped workflow templates (workflows/*.json), written from compact descriptions.

Widget values are given by name and laid out in each node's widget order, read from the node
definitions themselves, so a workflow can never hold values in the wrong slots. Each workflow opens
at a zoom that reads at 1600 x 1000 (`extra.ds`), lists every weight file it needs with a distinct
entry for ComfyUI's Missing Models dialog, and says in its note how to fetch them.

    python dfr.py workflows --write  # rewrite every workflow
    python dfr.py workflows --check  # exit 1 if a committed workflow differs from its description

ComfyUI's template browser titles each card with the file's name, so the names are written to be
read there. The cards' thumbnails (same name, .jpg) are made by benchmarks/readme_pictures.py.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from ..models.manifest import workflow_model
from ..restore.pipelines import DIFFACE_FAST_NAME, DR2_FAST_NAME, FAST_DIFFACE_SAMPLER, FAST_DR2_SAMPLER

WORKFLOWS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "workflows")

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
    # ComfyUI's video nodes (comfy_extras/nodes_video.py); CreateVideo's fps is a widget fed by a link
    "LoadVideo": ([], ["file", "upload"], [("VIDEO", "VIDEO")]),
    "GetVideoComponents": ([("video", "VIDEO")], [], [("images", "IMAGE"), ("audio", "AUDIO"), ("fps", "FLOAT")]),
    "CreateVideo": ([("images", "IMAGE"), ("audio", "AUDIO"), ("fps", "FLOAT", "widget")], ["fps"], [("VIDEO", "VIDEO")]),
    "SaveVideo": ([("video", "VIDEO")], ["filename_prefix", "format", "codec"], []),
    "KSampler": (
        [("model", "MODEL"), ("positive", "CONDITIONING"), ("negative", "CONDITIONING"), ("latent_image", "LATENT")],
        ["seed", "control_after_generate", "steps", "cfg", "sampler_name", "scheduler", "denoise"],
        [("LATENT", "LATENT")],
    ),
}
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
SEED_NAMES = ("seed", "noise_seed")
CONTROL_SUFFIX = " control_after_generate"

# The view a workflow opens with: readable (litegraph stops drawing widget text below ~0.6) and
# the whole graph inside a 1600 x 1000 window; the layouts below fit 1850 x 1100 canvas pixels.
OPEN_SCALE = 0.8
OPEN_MARGIN = (60, 50)  # screen pixels left of and above the graph (the sidebar, the menu bar)

COLUMN = 360  # layout grid: one node column, in canvas pixels
WIDTH = 330


def column(index: int) -> int:
    return 20 + COLUMN * index


def node_signature(node_type: str, cls=None):
    """(socket inputs [(name, type)], widget names, outputs [(name, type)]) of a node type (of the
    pack, a core node of the table above, or `cls`)."""
    if node_type in CORE_NODES:
        return CORE_NODES[node_type]
    if cls is None:
        from ..nodes import NODE_CLASS_MAPPINGS

        cls = NODE_CLASS_MAPPINGS[node_type]
    sockets, widgets = [], []
    for section in ("required", "optional"):
        for name, spec in cls.INPUT_TYPES().get(section, {}).items():
            kind, options = spec[0], (spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {})
            if isinstance(kind, (list, tuple)) or kind in WIDGET_TYPES:
                widgets.append(name)
                # the frontend's "control after generate" value: asked for, or any seed / noise_seed
                if kind == "INT" and (options.get("control_after_generate") or name in SEED_NAMES):
                    widgets.append(name + CONTROL_SUFFIX)
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
    size: tuple[int, int] = (WIDTH, 260)
    title: str | None = None


@dataclass
class Workflow:
    name: str  # the file name without .json: the template browser's card title
    nodes: list[Node]
    # (from node id, output name, to node id, input name)
    links: list[tuple[int, str, int, str]]
    models: list[str] = field(default_factory=list)  # manifest names of the weight files

    @property
    def path(self) -> str:
        return os.path.join(WORKFLOWS_DIR, self.name + ".json")


def defaults_of(node_type: str) -> dict:
    from ..nodes import NODE_CLASS_MAPPINGS

    cls = NODE_CLASS_MAPPINGS[node_type]
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


def opening_view(nodes: list[Node]) -> dict:
    """`extra.ds`: the graph's top-left corner at OPEN_MARGIN, at OPEN_SCALE."""
    left, top = min(n.pos[0] for n in nodes), min(n.pos[1] for n in nodes)
    # the frontend draws canvas point p at (p + offset) * scale
    offset = [OPEN_MARGIN[0] / OPEN_SCALE - left, OPEN_MARGIN[1] / OPEN_SCALE - top]
    return {"ds": {"scale": OPEN_SCALE, "offset": offset}}


def render(workflow: Workflow) -> dict:
    nodes_by_id = {n.id: n for n in workflow.nodes}
    links, inputs, outputs = [], {}, {}
    for link_id, (src, out_name, dst, in_name) in enumerate(workflow.links, start=1):
        src_outputs = node_signature(nodes_by_id[src].type)[2]
        dst_inputs = node_signature(nodes_by_id[dst].type)[0]
        out_slot = [name for name, _ in src_outputs].index(out_name)
        in_slot = [socket[0] for socket in dst_inputs].index(in_name)
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
                {"name": socket[0], "type": socket[1], "link": inputs.get((node.id, slot)),
                 **({"widget": {"name": socket[0]}} if len(socket) > 2 else {})}
                for slot, socket in enumerate(sockets)
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
        "extra": opening_view(workflow.nodes),
        "version": 0.4,
    }
    if workflow.models:
        document["models"] = [workflow_model(name) for name in workflow.models]
    return document


def fetch_note(name: str) -> str:
    """The paragraph every note ends with: how to get the weight files of this workflow."""
    return (
        "Missing files? In the pack's folder (custom_nodes/<pack>) run:\n"
        f"  python dfr.py download --workflow \"workflows/{name}.json\"\n"
        "It fetches every file this workflow needs into ComfyUI/models, checked, and prints the manual steps "
        "for the few no script can fetch. (ComfyUI's Missing Models dialog downloads only .safetensors from "
        "Hugging Face or Civitai, so it cannot fetch these .pth files itself.)"
    )


def with_fetch_note(text: str, name: str) -> str:
    return text + "\n\n" + fetch_note(name)


# --- the workflows ---------------------------------------------------------------------------------

FACE_CROP_PASTE_NAME = "Face crop and paste - no weights needed"
FACE_CROP_PASTE = Workflow(
    name=FACE_CROP_PASTE_NAME,
    nodes=[
        Node(1, "LoadImage", (column(0), 20), {"image": "example.png", "upload": "image"}, (WIDTH, 340)),
        Node(2, "FaceDetect", (column(1), 20), {}, (WIDTH, 300)),
        Node(3, "PasteBack", (column(2), 20), {}, (WIDTH, 300)),
        Node(4, "SaveImage", (column(3), 20), {"filename_prefix": "face_crop_paste"}, (WIDTH, 360)),
        Node(5, "PreviewImage", (column(1), 380), {}, (WIDTH, 300), title="Detections"),
        Node(6, "PreviewImage", (column(2), 380), {}, (WIDTH, 300), title="Aligned crops"),
        Node(
            7,
            "Note",
            (column(0), 420),
            {
                "text": (
                    "Face pipeline without restoration: FaceDetect finds the faces (built-in detector, no "
                    "download) and cuts FFHQ-aligned crops; PasteBack puts them back with a soft mask.\n\n"
                    "Put any face restorer between FaceDetect's crops and PasteBack's restored_crops. "
                    "Unchanged crops give the photo back (the round trip keeps 47-63 dB, no seam).\n\n"
                    "For better landmarks choose retinaface_resnet50 (detection_Resnet50_Final.pth in "
                    "models/facedetection: python dfr.py download detection_Resnet50_Final.pth)."
                )
            },
            (WIDTH, 260),
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

DIFFACE_NAME = "DifFace restoration"
DIFFACE_X2_NAME = "DifFace restoration with a 2x background"
DIFFACE_NOTE = (
    "DifFace (TPAMI 2024): SwinIR estimates the clean face, the estimate is diffused to step K of the "
    "face prior and the reverse process (DDIM, eta) runs from there.\n\n"
    "Knobs: DifFaceInit start_step K (default 100 of ddim250): larger = more generated detail, less "
    "fidelity; smaller = closer to SwinIR's estimate. The seed on DifFaceInit fixes every random draw "
    "(the official result for that seed). DR2GuidedSampler has only a state here, so it runs DifFace: "
    "eta (0.5; 0 = deterministic) and respacing count; its seed, N, tau and omega are DR2's and do nothing "
    "in this wiring.\n\n"
    "Weights: iddpm_ffhq512_ema500000.pth -> models/face_diffusion; swinir_restoration512_L1.pth -> "
    "models/upscale_models; detection_Resnet50_Final.pth and parsing_parsenet.pth -> "
    "models/facedetection. DifFace's weights are for non-commercial use only (S-Lab License 1.0).\n\n"
    "Cost: 100 UNet calls per face (about 5 min per face on a CPU; seconds on a GPU)."
)
DIFFACE_FAST_NOTE = (
    "DifFace, faster: SwinIR's estimate is diffused to K (100 of ddim250, t = 400) as in the paper, then "
    "DR2GuidedSampler runs SEEDS-2 (sampler seeds-2, eta 0.5, 10 UNet calls on its tuned time grid, spacing "
    "auto) instead of the official 100 DDIM(0.5) steps, and the prior's convolutions run channels-last: "
    "about 12x faster than 'DifFace restoration' on a 2-core CPU.\n\n"
    "What it reproduces: DifFace's own sampler. eta is DDIM's for every sampler; the stochastic solvers get "
    "eta^2 of the reverse SDE's noise, the process DDIM(eta) converges to. On an exact reference (a face prior "
    "known in closed form; README, 'Few-step sampling'), judged on start faces of people the setting was not "
    "chosen on, these 10 calls land as close to what DDIM(0.5) gives with many steps as the official 100 steps "
    "do (README: the protocol's tables, both image sizes). The grid was tuned on other faces. eta 1 samples "
    "the posterior (DDPM), eta 0 is deterministic.\n\n"
    "Knobs: steps (UNet calls; fewer is faster and farther from DifFace's distribution: 8 within 1.3x, 6 "
    "within 2.1x of the official's distance), sampler (er-sde and sa-solver reach 2x at 6 calls), eta, "
    "DifFaceInit start_step K as in DifFace. N, tau and omega do nothing in this wiring.\n\n"
    "Weights: as 'DifFace restoration' (non-commercial S-Lab License 1.0 for DifFace's files).\n\n"
    "Cost: 10 UNet calls per face (about 30 s per face on a 2-core CPU)."
)
DIFFACE_X2_NOTE = (
    "DifFace as the official whole-image mode runs it: the faces are restored as in 'DifFace restoration', "
    "and the rest of the photo is upscaled 2x by RealESRGAN_x2plus (ImageUpscaleWithModel); PasteBack puts "
    "the restored faces onto that 2x background, so the result is twice the photo's size.\n\n"
    "Knobs: as in DifFace (DifFaceInit start_step K, DR2GuidedSampler eta; the sampler's seed, N, tau and "
    "omega do nothing with only a state connected). RealESRGAN has no knobs.\n\n"
    "Weights: iddpm_ffhq512_ema500000.pth -> models/face_diffusion; swinir_restoration512_L1.pth and "
    "RealESRGAN_x2plus.pth (BSD-3-Clause) -> models/upscale_models; detection_Resnet50_Final.pth and "
    "parsing_parsenet.pth -> models/facedetection. DifFace's weights are non-commercial (S-Lab 1.0).\n\n"
    "Cost: 100 UNet calls per face plus RealESRGAN (about 1 min per megapixel on a CPU)."
)


def difface_workflow(name: str, upscaled_background: bool, fast: bool = False) -> Workflow:
    loader = {"model_name": "iddpm_ffhq512_ema500000.pth"}
    sampler = {}
    if fast:  # the setting benchmarks/sampler_accuracy.py picks
        loader["convolutions"] = "channels-last (faster)"
        sampler = dict(FAST_DIFFACE_SAMPLER)
    note = DIFFACE_FAST_NOTE if fast else DIFFACE_X2_NOTE if upscaled_background else DIFFACE_NOTE
    nodes = [
        Node(1, "LoadImage", (column(0), 20), {"image": "example.png", "upload": "image"}, (WIDTH, 340)),
        Node(2, "FaceDetect", (column(1), 20), {"detector": "retinaface_resnet50"}, (WIDTH, 300)),
        Node(3, "FaceDiffusionLoader", (column(1), 380), loader, (WIDTH, 130)),
        Node(4, "UpscaleModelLoader", (column(1), 550), {"model_name": "swinir_restoration512_L1.pth"}, (WIDTH, 80)),
        Node(5, "DifFaceInit", (column(2), 20), {}, (WIDTH, 220)),
        Node(6, "DR2GuidedSampler", (column(3), 20), sampler, (WIDTH, 400)),
        Node(7, "PasteBack", (column(4), 20), {"parsing": "parsenet"}, (WIDTH, 300)),
        Node(8, "SaveImage", (column(4), 380), {"filename_prefix": name}, (WIDTH, 360)),
        Node(9, "PreviewImage", (column(2), 300), {}, (WIDTH, 300), title="SwinIR estimate"),
        Node(10, "PreviewImage", (column(3), 470), {}, (WIDTH, 300), title="Restored crops"),
        Node(11, "Note", (column(0), 420), {"text": with_fetch_note(note, name)}, (WIDTH, 620)),
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
            Node(12, "UpscaleModelLoader", (column(1), 650), {"model_name": "RealESRGAN_x2plus.pth"}, (WIDTH, 80)),
            Node(13, "ImageUpscaleWithModel", (column(2), 640), {}, (WIDTH, 60), title="2x background (RealESRGAN)"),
        ]
        links += [(12, "UPSCALE_MODEL", 13, "upscale_model"), (1, "IMAGE", 13, "image"), (13, "IMAGE", 7, "image")]
        models.append("RealESRGAN_x2plus.pth")
    else:
        links.append((1, "IMAGE", 7, "image"))
    return Workflow(name, nodes, links, models)


DIFFACE = difface_workflow(DIFFACE_NAME, upscaled_background=False)
DIFFACE_X2 = difface_workflow(DIFFACE_X2_NAME, upscaled_background=True)
DIFFACE_FAST = difface_workflow(DIFFACE_FAST_NAME, upscaled_background=False, fast=True)

DR2_NAME = "DR2 restoration"
DR2_P2_NAME = "DR2 restoration without Baidu - P2 prior and GFPGAN"
HYBRID_NAME = "DifFace start with DR2 guidance"
DR2_METHOD = (
    "DR2 (CVPR 2023): the degraded face is diffused to step omega and denoised to tau while each sample's "
    "low frequencies (below 1/N of the size) are replaced by the input's at the same noise level: the "
    "degradation is washed out, the coarse face kept. An enhancer then restores the detail.\n\n"
    "Knobs (DR2GuidedSampler): N and tau. Paper settings: (4, 22) mild, (8, 35) medium, (16, 35) severe "
    "degradation. Larger N and tau remove more degradation and keep less of the person. omega 0 = the "
    "paper's table (tau + 5..30). eta is DifFace's and does nothing here."
)
DR2_NOTE = DR2_METHOD + (
    "\n\nEnhancer: SPARNetHD, DR2's own (its fidelity widget is CodeFormer's and does nothing here). The "
    "Enhancer takes DR2's 256 px output and resizes it itself, as the official code does.\n\n"
    "Weights: DR2_FFHQ.pkl -> models/face_diffusion and SPARNetHD_FFHQ_DR2aug.pth -> "
    "models/facerestore_models (both only on Baidu Netdisk: see the README; no Baidu account? use the "
    "'without Baidu' workflow), detection_Resnet50_Final.pth -> models/facedetection. DR2 is MIT-licensed."
)
DR2_P2_NOTE = DR2_METHOD + (
    "\n\nThis is DR2's method on a sibling prior, not the authors' exact weights: ffhq_p2.pt (P2 weighting, "
    "CVPR 2022) is an FFHQ-256 diffusion model with exactly DR2's architecture and schedule, published on "
    "Google Drive; GFPGAN v1.4 (GitHub) replaces DR2's SPARNetHD as the enhancer (fidelity does nothing for "
    "GFPGAN). Results differ from the paper's.\n\n"
    "Weights: ffhq_p2.pt -> models/face_diffusion; GFPGANv1.4.pth -> models/facerestore_models; "
    "detection_Resnet50_Final.pth -> models/facedetection."
)
HYBRID_NOTE = (
    "DifFace's start with DR2's guidance: SwinIR's estimate is diffused to step K of DR2's prior (DifFaceInit), "
    "then DR2GuidedSampler denoises from K to tau with DR2's low-frequency guidance from the crops, and "
    "SPARNetHD adds detail.\n\n"
    "K (start_step, on the 100-step respacing) plays omega's role (the sampler's omega and seed do nothing "
    "here: the state's noise source continues); N and tau as in DR2. The estimate starts the diffusion "
    "closer to a clean face than DR2's own start, so a smaller K suffices.\n\n"
    "Faster: DifFaceInit respacing 50 with start_step 20 (10 UNet calls instead of 19) stays near the "
    "100-step result on the exact reference (README, 'Few-step sampling'); respacing 25 drifts further.\n\n"
    "Weights: DR2_FFHQ.pkl, SPARNetHD_FFHQ_DR2aug.pth (Baidu, see the README), swinir_restoration512_L1.pth "
    "(DifFace, non-commercial), detection_Resnet50_Final.pth."
)


DR2_FAST_NOTE = DR2_METHOD + (
    "\n\nFaster: the same official loop on 25 of the 1000 steps instead of 100 (DR2GuidedSampler respacing "
    "25; omega and tau keep their place on DR2's 0..99 scale): 6 UNet calls instead of 21 for N 4, tau 22, "
    "omega 42, with the prior's convolutions channels-last. What it reproduces: DR2's own 100-step loop; on "
    "an exact reference (a face prior known in closed form; README, 'Few-step sampling') its outputs lie "
    "0.24 (Frechet) from the 100-step loop's, where another seed of that loop lies 0.18 and respacing 10 "
    "(3 calls) 1.02.\n\n"
    "Enhancer: SPARNetHD, DR2's own (its fidelity widget does nothing here).\n\n"
    "Weights: DR2_FFHQ.pkl -> models/face_diffusion and SPARNetHD_FFHQ_DR2aug.pth -> "
    "models/facerestore_models (both only on Baidu Netdisk: see the README), detection_Resnet50_Final.pth -> "
    "models/facedetection. DR2 is MIT-licensed."
)


def dr2_workflow(name: str, prior: str, enhancer: str, note: str, difface_start: bool = False, fast: bool = False) -> Workflow:
    loader, sampler = {"model_name": prior}, {"N": 4, "tau": 22}
    if fast:
        loader["convolutions"] = "channels-last (faster)"
        sampler.update(FAST_DR2_SAMPLER)
    nodes = [
        Node(1, "LoadImage", (column(0), 20), {"image": "example.png", "upload": "image"}, (WIDTH, 340)),
        Node(2, "FaceDetect", (column(1), 20), {"detector": "retinaface_resnet50"}, (WIDTH, 300)),
        Node(3, "FaceDiffusionLoader", (column(1), 380), loader, (WIDTH, 130 if fast else 110)),
        Node(4, "FaceEnhancerLoader", (column(3), 240), {"model_name": enhancer}, (WIDTH, 80)),
        Node(5, "DR2GuidedSampler", (column(2), 20), sampler, (WIDTH, 400)),
        Node(6, "Enhancer", (column(3), 20), {}, (WIDTH, 170)),
        Node(7, "PasteBack", (column(4), 20), {}, (WIDTH, 300)),
        Node(8, "SaveImage", (column(4), 380), {"filename_prefix": name}, (WIDTH, 360)),
        Node(9, "PreviewImage", (column(3), 380), {}, (WIDTH, 300), title="DR2 output (coarse, degradation-free)"),
        Node(10, "Note", (column(0), 420), {"text": with_fetch_note(note, name)}, (WIDTH, 620)),
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
    models = [prior, enhancer, "detection_Resnet50_Final.pth"]
    if difface_start:
        nodes += [
            Node(11, "UpscaleModelLoader", (column(1), 530), {"model_name": "swinir_restoration512_L1.pth"}, (WIDTH, 80)),
            Node(12, "DifFaceInit", (column(2), 470), {"start_step": 40, "respacing": "100"}, (WIDTH, 220)),
        ]
        links += [(2, "crops", 12, "crops"), (3, "prior", 12, "prior"), (11, "UPSCALE_MODEL", 12, "restorer"), (12, "state", 5, "state")]
        models.append("swinir_restoration512_L1.pth")
    return Workflow(name, nodes, links, models)


DR2 = dr2_workflow(DR2_NAME, "DR2_FFHQ.pkl", "SPARNetHD_FFHQ_DR2aug.pth", DR2_NOTE)
DR2_P2 = dr2_workflow(DR2_P2_NAME, "ffhq_p2.pt", "GFPGANv1.4.pth", DR2_P2_NOTE)
HYBRID = dr2_workflow(HYBRID_NAME, "DR2_FFHQ.pkl", "SPARNetHD_FFHQ_DR2aug.pth", HYBRID_NOTE, difface_start=True)
DR2_FAST = dr2_workflow(DR2_FAST_NAME, "DR2_FFHQ.pkl", "SPARNetHD_FFHQ_DR2aug.pth", DR2_FAST_NOTE, fast=True)

DR_BFR_NAME = "DR-BFR restoration with your trained ControlNet"
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


def dr_bfr_workflow() -> Workflow:
    name = DR_BFR_NAME
    return Workflow(
        name=name,
        nodes=[
            Node(1, "LoadImage", (column(0), 20), {"image": "example.png", "upload": "image"}, (WIDTH, 340)),
            Node(2, "FaceDetect", (column(1), 20), {}, (WIDTH, 300)),
            Node(3, "DegradationModelLoader", (column(1), 380), {"model_name": "drm_projector.safetensors"}, (WIDTH, 80)),
            Node(4, "DegradationEncoder", (column(2), 240), {}, (WIDTH, 100)),
            Node(5, "CheckpointLoaderSimple", (column(1), 500), {"ckpt_name": "v1-5-pruned-emaonly-fp16.safetensors"}, (WIDTH, 100)),
            Node(6, "CLIPTextEncode", (column(1), 650), {"text": "a high quality, sharp photo of a face, detailed skin"}, (WIDTH, 120),
                 title="Positive"),
            Node(7, "CLIPTextEncode", (column(1), 820), {"text": "blurry, noisy, jpeg artifacts, low quality"}, (WIDTH, 120),
                 title="Negative"),
            Node(8, "ControlNetLoader", (column(2), 390), {"control_net_name": "dr_controlnet.safetensors"}, (WIDTH, 80)),
            Node(9, "DR-ControlNetApply", (column(2), 520), {}, (WIDTH, 260)),
            Node(10, "VAEEncode", (column(2), 20), {}, (WIDTH, 60), title="One latent per face"),
            Node(11, "KSampler", (column(3), 20), {"seed": 0, "control_after_generate": "fixed", "steps": 30, "cfg": 5.0,
                                                  "sampler_name": "dpmpp_2m", "scheduler": "karras", "denoise": 1.0}, (WIDTH, 270)),
            Node(12, "VAEDecode", (column(3), 340), {}, (WIDTH, 60)),
            Node(13, "PasteBack", (column(4), 20), {}, (WIDTH, 300)),
            Node(14, "SaveImage", (column(4), 380), {"filename_prefix": "dr_bfr"}, (WIDTH, 360)),
            Node(15, "PreviewImage", (column(3), 450), {}, (WIDTH, 300), title="Restored crops"),
            Node(16, "Note", (column(0), 420), {"text": with_fetch_note(DR_BFR_NOTE, name)}, (WIDTH, 560)),
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
        models=["v1-5-pruned-emaonly-fp16.safetensors", "drm_projector.safetensors", "dr_controlnet.safetensors"],
    )


DR_BFR = dr_bfr_workflow()

VIDEO_DR2_NAME = "Video restoration with DR2 - tracked faces, no flicker"
VIDEO_DR2_NOTE = (
    "Every face of a clip, restored with DR2 without flicker: Load Video -> Get Video Components (frames, "
    "audio, fps) -> FaceTrack -> DR2GuidedSampler -> Enhancer (SPARNetHD) -> PasteBack -> Create Video (the "
    "audio passes through) -> Save Video.\n\n"
    "FaceTrack follows each person through the frames (one id per person, gaps of up to max_gap frames "
    "bridged) and smooths the landmarks with a zero-lag forward-backward Kalman smoother (smoothing 0.5), so "
    "crops and paste masks stop jittering. DR2GuidedSampler draws each person's noise from the seed and "
    "their id (same_noise_per_person on), so the prior invents the same detail in every frame. DR2 runs on "
    "respacing 25 (6 UNet calls per face and frame; on the exact reference its outputs match the 100-step "
    "loop's).\n\n"
    "Knobs: FaceTrack smoothing (0 = per-frame detection), max_gap; DR2's N and tau. FaceTemporalBlend is "
    "not in this graph: once the noise is shared it removes little flicker, and on a real clip it smears "
    "motion (3.4 grey levels at strength 0.3; see the README's Video section).\n\n"
    "Memory: the whole clip is one IMAGE batch in ComfyUI; for long clips use 'python dfr.py batch dr2 "
    "clip.mp4 out.mp4' (chunks, resumable).\n\n"
    "Weights: as 'DR2 restoration' (DR2_FFHQ.pkl, SPARNetHD_FFHQ_DR2aug.pth on Baidu; see the README), "
    "detection_Resnet50_Final.pth."
)


def video_dr2_workflow() -> Workflow:
    name = VIDEO_DR2_NAME
    return Workflow(
        name=name,
        nodes=[
            Node(1, "LoadVideo", (column(0), 20), {"file": "clip.mp4", "upload": "image"}, (WIDTH, 360)),
            Node(2, "GetVideoComponents", (column(1), 20), {}, (WIDTH, 90)),
            Node(3, "FaceTrack", (column(1), 150), {"detector": "retinaface_resnet50"}, (WIDTH, 300)),
            Node(4, "FaceDiffusionLoader", (column(1), 500), {"model_name": "DR2_FFHQ.pkl"}, (WIDTH, 130)),
            Node(5, "DR2GuidedSampler", (column(2), 20), {"N": 4, "tau": 22, "respacing": "25", "same_noise_per_person": True},
                 (WIDTH, 430)),
            Node(6, "FaceEnhancerLoader", (column(2), 500), {"model_name": "SPARNetHD_FFHQ_DR2aug.pth"}, (WIDTH, 80)),
            Node(7, "Enhancer", (column(3), 20), {}, (WIDTH, 170)),
            Node(8, "PasteBack", (column(3), 240), {}, (WIDTH, 300)),
            Node(9, "CreateVideo", (column(4), 20), {"fps": 30.0}, (WIDTH, 100)),
            Node(10, "SaveVideo", (column(4), 170), {"filename_prefix": "video/restored", "format": "auto", "codec": "auto"}, (WIDTH, 400)),
            Node(11, "Note", (column(0), 430), {"text": with_fetch_note(VIDEO_DR2_NOTE, name)}, (WIDTH, 640)),
        ],
        links=[
            (1, "VIDEO", 2, "video"),
            (2, "images", 3, "images"),
            (3, "crops", 5, "guide"),
            (3, "faces", 5, "faces"),
            (4, "prior", 5, "prior"),
            (5, "faces_prior_size", 7, "crops"),
            (6, "enhancer", 7, "enhancer"),
            (2, "images", 8, "image"),
            (3, "faces", 8, "faces"),
            (7, "faces", 8, "restored_crops"),
            (8, "image", 9, "images"),
            (2, "audio", 9, "audio"),
            (2, "fps", 9, "fps"),
            (9, "VIDEO", 10, "video"),
        ],
        models=["DR2_FFHQ.pkl", "SPARNetHD_FFHQ_DR2aug.pth", "detection_Resnet50_Final.pth"],
    )


VIDEO_DR2 = video_dr2_workflow()

WORKFLOWS = [FACE_CROP_PASTE, DIFFACE, DIFFACE_FAST, DIFFACE_X2, DR2, DR2_FAST, DR2_P2, HYBRID, DR_BFR, VIDEO_DR2]


def workflow_text(workflow: Workflow) -> str:
    return json.dumps(render(workflow), indent=2) + "\n"


def write_workflows(check: bool = False, report=print) -> list[str]:
    """Write (or, with check, compare) every workflow; returns the paths that differ (check) or were written.

    A .json in workflows/ that no description makes counts as differing: ComfyUI would serve it.
    """
    described = {os.path.basename(w.path) for w in WORKFLOWS}
    changed = [os.path.join(WORKFLOWS_DIR, f) for f in sorted(os.listdir(WORKFLOWS_DIR)) if f.endswith(".json") and f not in described]
    for workflow in WORKFLOWS:
        text = workflow_text(workflow)
        if check:
            if not os.path.exists(workflow.path) or open(workflow.path, encoding="utf-8").read() != text:
                changed.append(workflow.path)
        else:
            with open(workflow.path, "w", encoding="utf-8") as handle:
                handle.write(text)
            report(f"wrote {workflow.path}")
            changed.append(workflow.path)
    return changed
