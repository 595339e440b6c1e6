"""FaceDetect and PasteBack: the face pipeline every restoration method runs inside."""
from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F

from ..face.color import COLOR_MATCH_MODES
from ..face.detection.haar import CascadeFilesMissing, HaarDetector
from ..face.detection.retinaface import MAX_BATCH_PIXELS, WEIGHT_FILES, WEIGHT_URLS, RetinaFaceDetector
from ..face.faces import FaceSet
from ..face.find import ALIGNED_INPUT, faces_from_aligned, find_faces
from ..face.image import check_finite, check_image_batch, image_to_numpy, rgb_view
from ..face.parsing import parse_labels, soft_parse_mask
from ..face.paste import PasteSettings, paste_faces
from ..face.preview import draw_detections, no_face_placeholder
from ..face.selection import SELECTION_MODES
from ..models import FACE_DETECTION, FACE_PARSING
from .. import runtime
from .loading import find_weights, load_managed, weights_check
from .types import CATEGORY_FACES, FACES, FP16_OVERFLOW_HINT, expect

log = logging.getLogger("diffusion_face_restore")

HAAR = HaarDetector.name
DETECTOR_CHOICES = [HAAR, "retinaface_resnet50", "retinaface_mobile0.25", ALIGNED_INPUT]
CROP_SIZE_CHOICES = ["512", "256", "1024"]
PARSING_FILES = {"parsenet": "parsing_parsenet.pth", "bisenet": "parsing_bisenet.pth"}
PARSING_URLS = {
    "parsenet": "https://github.com/xinntao/facexlib/releases/download/v0.2.2/parsing_parsenet.pth",
    "bisenet": "https://github.com/xinntao/facexlib/releases/download/v0.2.0/parsing_bisenet.pth",
}
# activation memory of one 512 px face through ParseNet (fp32), for the batch size on a GPU
PARSING_BYTES_PER_FACE = 1024 * 2 ** 20
# rough activation memory of RetinaFace-R50 per input pixel (fp32), for ComfyUI's memory planning
RETINAFACE_BYTES_PER_PIXEL = 192


def expect_faces(value) -> FaceSet:
    return expect(value, FaceSet, "the faces input", "faces output of this pack's FaceDetect node")


def detector_weights(name: str):
    """(folder, file, what, url) of a detector's weights; None for those that need none."""
    if name not in DETECTOR_CHOICES:
        raise ValueError(f"unknown detector '{name}' (choose one of {', '.join(DETECTOR_CHOICES)})")
    if name not in WEIGHT_FILES:
        return None
    return "facedetection", WEIGHT_FILES[name], f"the {name} detector", WEIGHT_URLS[name]


def parsing_weights(name: str):
    """(folder, file, what, url) of a face-parsing model's weights."""
    if name not in PARSING_FILES:
        raise ValueError(f"unknown parsing model '{name}' (choose none, parsenet or bisenet)")
    return "facedetection", PARSING_FILES[name], f"parsing '{name}'", PARSING_URLS[name]


def make_detector(name: str, min_score: float):
    if name == HAAR:
        try:
            return HaarDetector()
        except CascadeFilesMissing as error:
            raise RuntimeError(str(error)) from None
    path = find_weights(*detector_weights(name))
    descriptor, managed = load_managed(path, (FACE_DETECTION,))
    module = managed.load(memory_required=MAX_BATCH_PIXELS * RETINAFACE_BYTES_PER_PIXEL)
    log.info("FaceDetect: %s from %s on %s", descriptor.architecture, path, managed.device)
    return RetinaFaceDetector(module, name, managed.device, min_score)


class FaceDetect:
    DESCRIPTION = (
        "Finds faces in photos and cuts FFHQ-aligned crops (what DifFace, DR2 and most face restorers "
        "expect). Outputs the faces (for PasteBack), the crops as an IMAGE batch for any node, a preview "
        "of the detections and the face count. Faces are numbered per photo from left to right. A photo "
        "without faces gives no crops; PasteBack returns it unchanged. When the whole batch has no face, "
        "crops holds one grey 'no face found' placeholder so the nodes after it keep working (count is 0)."
    )
    CATEGORY = CATEGORY_FACES
    FUNCTION = "detect"
    RETURN_TYPES = (FACES, "IMAGE", "IMAGE", "INT")
    RETURN_NAMES = ("faces", "crops", "preview", "count")
    OUTPUT_TOOLTIPS = (
        "The faces: crops plus how to paste them back. Connect to PasteBack.",
        "The aligned face crops, one per face, in face order (photo by photo, left to right); one grey "
        "placeholder when no face was found.",
        "The photos with boxes, landmarks and face numbers drawn.",
        "How many faces were kept in the whole batch.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "Photos (a batch works; each may hold any number of faces)."}),
                "detector": (DETECTOR_CHOICES, {"default": HAAR, "tooltip": (
                    "opencv-haar (built-in): no download; upright frontal faces, approximate landmarks. "
                    "retinaface_resnet50 / retinaface_mobile0.25: accurate in most poses; need "
                    "detection_Resnet50_Final.pth / detection_mobilenet0.25_Final.pth in models/facedetection. "
                    "aligned input: each photo already is an FFHQ-aligned face crop (passes through).")}),
                "crop_size": (CROP_SIZE_CHOICES, {"default": "512", "tooltip": (
                    "Size of the aligned crops. DifFace and most restorers use 512; DR2's prior works at 256 "
                    "but takes 512 crops too.")}),
                "selection": (SELECTION_MODES, {"default": "all", "tooltip": (
                    "Which faces to keep in each photo: all, the largest, the one nearest the centre, or the "
                    "one numbered 'index' (left to right, from 0).")}),
                "index": ("INT", {"default": 0, "min": 0, "max": 999, "tooltip": "Face number for selection 'index' (0 = leftmost)."}),
                "min_confidence": ("FLOAT", {"default": 0.8, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip": (
                    "Drop detections scored below this. RetinaFace scores are probabilities; the built-in "
                    "detector's are a heuristic (true faces usually score above 0.9).")}),
                "min_face_size": ("INT", {"default": 16, "min": 0, "max": 8192, "tooltip": (
                    "Drop faces whose detection box is smaller than this many pixels (shorter side).")}),
                "max_faces": ("INT", {"default": 0, "min": 0, "max": 999, "tooltip": (
                    "Keep at most this many faces per photo, the largest ones (0 = no limit).")}),
            }
        }

    @classmethod
    def VALIDATE_INPUTS(cls, detector):
        """Before the graph runs: the detector exists and its weight file is in place."""
        try:
            if detector == HAAR:
                HaarDetector()
                return True
            weights = detector_weights(detector)
        except (ValueError, CascadeFilesMissing) as error:
            return str(error)
        return True if weights is None else weights_check(*weights)

    def detect(self, image, detector, crop_size, selection, index, min_confidence, min_face_size, max_faces):
        image = check_finite(check_image_batch(image, "FaceDetect's image", allow_empty=False), "FaceDetect's image")
        crop_size = int(crop_size)
        progress = runtime.Progress(image.shape[0], "FaceDetect")

        def photo_done(_):
            progress.update()
            runtime.check_cancel()

        if detector == ALIGNED_INPUT:
            face_set = faces_from_aligned(image, crop_size)
            progress.update(image.shape[0])
        else:
            face_set = find_faces(
                image,
                make_detector(detector, min_confidence),
                crop_size,
                mode=selection,
                index=index,
                min_score=min_confidence,
                min_size=min_face_size,
                max_faces=max_faces,
                on_photo=photo_done,
            )
        log.info("FaceDetect: %s", face_set.describe())
        return face_outputs(image, face_set, "FaceDetect")


def face_outputs(images: torch.Tensor, face_set: FaceSet, node: str) -> tuple:
    """FaceDetect's (and FaceTrack's) outputs on ComfyUI's output device: (faces, crops, preview, count)."""
    previews = [draw_detections(rgb_view(image_to_numpy(images[i])), face_set, i) for i in range(images.shape[0])]
    device = runtime.output_device()
    preview = torch.from_numpy(np.stack(previews)).to(device)
    crops = face_set.crops
    if len(face_set) == 0:
        # core nodes (PreviewImage, SaveImage, ...) fail on empty batches: hand on a placeholder
        log.info("%s: no face found; crops is a placeholder, PasteBack passes the photos through", node)
        crops = torch.from_numpy(no_face_placeholder(face_set.crop_size))[None]
    return (face_set, crops.to(device), preview, len(face_set))


class PasteBack:
    DESCRIPTION = (
        "Pastes restored face crops back into the photo with a soft, face-sized feathered mask; optionally "
        "limited to the face by a parsing model (hair, hands and the background stay original), colour "
        "matched to the original, and blended. Photos without faces pass through unchanged. The image may be "
        "an upscaled copy of the photo the faces were found in (e.g. a 2x background): the faces are then "
        "placed at that scale."
    )
    CATEGORY = CATEGORY_FACES
    FUNCTION = "paste"
    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("image", "mask")
    OUTPUT_TOOLTIPS = ("The photo with the faces pasted back.", "Where faces were pasted (0..1), at the output size.")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": (
                    "The photos the faces were found in, or copies resized by any factor (same aspect ratio).")}),
                "faces": (FACES, {"tooltip": "The faces output of FaceDetect."}),
                "restored_crops": ("IMAGE", {"lazy": True, "tooltip": (
                    "The restored crops, one per face in FaceDetect's order; any size (resized to the crop size). "
                    "Not used (and not computed) when no face was found.")}),
                "blend": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip": (
                    "1 = restored face, 0 = original; in between mixes them (keeps more of the person's look).")}),
                "color_match": (COLOR_MATCH_MODES, {"default": "none", "tooltip": (
                    "Match the restored face's colours to the original crop: adain (mean and contrast per "
                    "channel) or wavelet (all low frequencies, keeps the detail). Stops colour shifts.")}),
                "parsing": (["none", "parsenet", "bisenet"], {"default": "none", "tooltip": (
                    "Limit the paste to the face with a face-parsing model (parsing_parsenet.pth or "
                    "parsing_bisenet.pth in models/facedetection): hair, hat, neck, hands and background stay "
                    "original. One call per face: on a 2-core CPU about 0.3 s for bisenet, 4 s for parsenet "
                    "(DifFace's and facexlib's choice).")}),
                "keep_original_accessories": ("BOOLEAN", {"default": False, "tooltip": (
                    "With a parsing model: keep eyeglasses, earrings and necklaces from the original photo.")}),
                "mask_erosion": ("FLOAT", {"default": 0.1, "min": 0.0, "max": 0.5, "step": 0.01, "tooltip": (
                    "How far the paste mask shrinks inside the crop, as a fraction of the face size "
                    "(0.1 = facexlib's default).")}),
                "mask_feather": ("FLOAT", {"default": 0.1, "min": 0.0, "max": 0.5, "step": 0.01, "tooltip": (
                    "Width of the soft mask edge, as a fraction of the face size (0.1 = facexlib's default).")}),
            }
        }

    @classmethod
    def VALIDATE_INPUTS(cls, parsing):
        """Before the graph runs: the parsing model's file is in place (not after a long diffusion)."""
        if parsing == "none":
            return True
        try:
            return weights_check(*parsing_weights(parsing))
        except ValueError as error:
            return str(error)

    def check_lazy_status(self, image=None, faces=None, restored_crops=None, **_):
        """Ask ComfyUI for the restored crops only when there are faces to paste."""
        if restored_crops is None and isinstance(faces, FaceSet) and len(faces) > 0:
            return ["restored_crops"]
        return []

    def paste(self, image, faces, restored_crops, blend, color_match, parsing, keep_original_accessories, mask_erosion, mask_feather):
        image = check_finite(check_image_batch(image, "PasteBack's image", allow_empty=False), "PasteBack's image")
        faces = expect_faces(faces)
        result = image.detach().to("cpu", torch.float32).clone()
        masks = torch.zeros(image.shape[:3], dtype=torch.float32)
        check_paste_inputs(image, faces)
        if len(faces) == 0:
            return (result.to(runtime.output_device()), masks.to(runtime.output_device()))
        restored = check_finite(check_image_batch(restored_crops, "restored_crops"), "PasteBack's restored_crops", f"the restorer before PasteBack failed on these faces; {FP16_OVERFLOW_HINT}")
        check_restored_count(faces, restored)

        crops = resize_crops(restored, faces.crop_size)
        progress = runtime.Progress(image.shape[0] + (len(faces) if parsing != "none" else 0), "PasteBack")
        parse_masks = compute_parse_masks(crops, parsing, not keep_original_accessories, faces.crop_size, progress)
        restored_np = crops.permute(0, 2, 3, 1).contiguous().numpy()
        originals = faces.crops.numpy()
        settings = PasteSettings(blend=blend, erosion=mask_erosion, feather=mask_feather, color_match=color_match)
        for image_index in range(image.shape[0]):
            chosen = faces.faces_of_image(image_index)
            if chosen:
                source_size = faces.image_sizes[image_index]
                pasted, coverage = paste_faces(
                    result[image_index].numpy(),
                    source_size,
                    [faces.faces[i].inverse for i in chosen],
                    [restored_np[i] for i in chosen],
                    [originals[i] for i in chosen],
                    [parse_masks[i] for i in chosen] if parse_masks is not None else None,
                    settings,
                    in_place=True,
                )
                masks[image_index] = torch.from_numpy(coverage)
            progress.update()
            runtime.check_cancel()
        device = runtime.output_device()
        return (result.to(device), masks.to(device))


def check_restored_count(faces: FaceSet, restored: torch.Tensor):
    if restored.shape[0] != len(faces):
        raise ValueError(
            f"PasteBack got {restored.shape[0]} restored crop(s) for {len(faces)} face(s): connect the crops "
            "that came from the same FaceDetect (one per face, same order)"
        )


def check_paste_inputs(image: torch.Tensor, faces: FaceSet):
    if image.shape[0] != faces.num_images:
        raise ValueError(
            f"PasteBack got {image.shape[0]} photo(s) but the faces were found in {faces.num_images}: "
            "connect the same photo batch that went into FaceDetect"
        )
    source_h, source_w = faces.image_sizes[0]
    height, width = image.shape[1:3]
    if abs(width / source_w - height / source_h) * min(source_h, source_w) > 2.0:
        raise ValueError(
            f"PasteBack's image is {width}x{height} but the faces were found in a {source_w}x{source_h} photo: "
            "connect that photo or a copy resized with the same aspect ratio"
        )


def resize_crops(restored: torch.Tensor, crop_size: int) -> torch.Tensor:
    """IMAGE [N, h, w, C] -> [N, 3, S, S] float32 RGB on the CPU, resized to the crop size."""
    crops = restored.detach().to("cpu", torch.float32)
    if crops.shape[-1] != 3:
        crops = torch.from_numpy(np.stack([rgb_view(c) for c in crops.numpy()]))
    crops = crops.permute(0, 3, 1, 2)
    if crops.shape[-2:] != (crop_size, crop_size):
        shrinking = crops.shape[-1] > crop_size
        crops = F.interpolate(crops, size=(crop_size, crop_size), mode="bicubic", align_corners=False, antialias=shrinking)
    return crops.clamp(0.0, 1.0).contiguous()


def compute_parse_masks(crops: torch.Tensor, parsing: str, accessories_are_face: bool, crop_size: int, progress=None):
    """One parsing mask per crop: one network call per face on a CPU (a batch is no faster there and
    would hold Cancel back for the whole batch), as many as fit on a GPU; Cancel between calls."""
    if parsing == "none":
        return None
    path = find_weights(*parsing_weights(parsing))
    descriptor, managed = load_managed(path, (FACE_PARSING,))
    # channels-last convolutions: 3.3 instead of 4.1 s per ParseNet call on a 2-core CPU
    module = managed.load(memory_required=PARSING_BYTES_PER_FACE).to(memory_format=torch.channels_last)
    chunk = runtime.items_that_fit(PARSING_BYTES_PER_FACE, crops.shape[0], cpu_limit=1)
    masks = []
    for start in range(0, crops.shape[0], chunk):
        batch = crops[start:start + chunk].to(managed.device).contiguous(memory_format=torch.channels_last)
        labels = parse_labels(module, descriptor.architecture, batch).cpu().numpy()
        masks.extend(soft_parse_mask(label_map, crop_size, accessories_are_face) for label_map in labels)
        if progress is not None:
            progress.update(batch.shape[0])
        runtime.check_cancel()
    return masks
