"""FaceDetect and PasteBack: the face pipeline every restoration method runs inside (restore/faces.py)."""
from __future__ import annotations

import logging

import torch

from .. import runtime
from ..face.color import COLOR_MATCH_MODES
from ..face.faces import FaceSet
from ..face.image import check_image_batch
from ..face.preview import no_face_placeholder
from ..face.selection import SELECTION_MODES
from ..restore.checks import expect
from ..restore.faces import (CROP_SIZE_CHOICES, DEFAULT_DETECTOR, DETECTOR_CHOICES, detect_faces, detection_previews, detector_check,
                             parsing_check, paste_back)
from .types import CATEGORY_FACES, FACES

log = logging.getLogger("diffusion_face_restore")


def expect_faces(value) -> FaceSet:
    return expect(value, FaceSet, "the faces input", "faces output of this pack's FaceDetect node")


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
                "detector": (DETECTOR_CHOICES, {"default": DEFAULT_DETECTOR, "tooltip": (
                    "mtcnn (built-in, the default): no download (2 MB weights in the pack); faces from about 20 px, "
                    "frontal to three-quarter views, five landmarks regressed by the network. "
                    "retinaface_mobile0.25 (built-in): no download (1.7 MB in the pack); facexlib's MobileNet RetinaFace, "
                    "3-4x faster than mtcnn, finds the same faces; its landmarks scatter more from frame to frame. "
                    "opencv-haar (built-in): no download; upright frontal faces only, landmarks estimated from the box. "
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
        return detector_check(detector)

    def detect(self, image, detector, crop_size, selection, index, min_confidence, min_face_size, max_faces):
        image = check_image_batch(image, "FaceDetect's image", allow_empty=False)
        face_set = detect_faces(image, detector, crop_size, selection, index, min_confidence, min_face_size, max_faces)
        return face_outputs(image, face_set, "FaceDetect")


def face_outputs(images: torch.Tensor, face_set: FaceSet, node: str) -> tuple:
    """FaceDetect's (and FaceTrack's) outputs on ComfyUI's output device: (faces, crops, preview, count)."""
    device = runtime.output_device()
    preview = detection_previews(images, face_set).to(device)
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
        return parsing_check(parsing)

    def check_lazy_status(self, image=None, faces=None, restored_crops=None, **_):
        """Ask ComfyUI for the restored crops only when there are faces to paste."""
        if restored_crops is None and isinstance(faces, FaceSet) and len(faces) > 0:
            return ["restored_crops"]
        return []

    def paste(self, image, faces, restored_crops, blend, color_match, parsing, keep_original_accessories, mask_erosion, mask_feather):
        result, masks = paste_back(image, expect_faces(faces), restored_crops, blend, color_match, parsing,
                                   keep_original_accessories, mask_erosion, mask_feather)
        device = runtime.output_device()
        return (result.to(device), masks.to(device))
