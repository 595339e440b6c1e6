"""Faces in photos and clips: find and align them, paste restored crops back, track them over frames.

Plain functions over face/ and models/ with their input checks; FaceDetect, PasteBack, FaceTrack and
FaceTemporalBlend are these functions with a ComfyUI schema around them.
"""
from __future__ import annotations

import dataclasses
import logging
import os

import numpy as np
import torch
import torch.nn.functional as F

from .. import runtime
from ..face.detection.haar import CascadeFilesMissing, HaarDetector
from ..face.detection.mtcnn import MTCNNDetector
from ..face.detection.retinaface import MAX_BATCH_PIXELS, WEIGHT_FILES, WEIGHT_URLS, RetinaFaceDetector
from ..face.faces import FaceSet
from ..face.find import ALIGNED_INPUT, detect_frames, faces_from_aligned, faces_from_tracks, find_faces
from ..face.image import check_finite, check_image_batch, image_to_numpy, rgb_view, to_uint8
from ..face.parsing import parse_labels, soft_parse_mask
from ..face.paste import PasteSettings, paste_faces
from ..face.preview import draw_detections
from ..face.shots import shot_starts
from ..face.temporal import blend_along_tracks
from ..face.tracking import link_tracks, smooth_tracks
from ..models import FACE_DETECTION, FACE_PARSING
from .checks import FP16_OVERFLOW_HINT
from .weights import find_weights, load_managed, weights_check

log = logging.getLogger("diffusion_face_restore")

HAAR = HaarDetector.name
MTCNN = MTCNNDetector.name
# facexlib's detection_mobilenet0.25_Final.pth network, shipped with the pack (batch norm folded)
RETINAFACE_BUILTIN = "retinaface_mobile0.25 (built-in)"
# the zero-download default: MTCNN finds a face in every frame of the shared clips where the Haar
# cascade finds a third; Haar stays a choice (benchmarks/detector_quality.py)
DEFAULT_DETECTOR = MTCNN
DETECTOR_CHOICES = [HAAR, MTCNN, RETINAFACE_BUILTIN, "retinaface_resnet50", "retinaface_mobile0.25", ALIGNED_INPUT]
# the built-in networks' weights ship with the pack (tools/convert_mtcnn.py, tools/convert_retinaface.py;
# licences beside them)
BUILTIN_FOLDER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "face", "detection")
MTCNN_WEIGHTS = os.path.join(BUILTIN_FOLDER, "mtcnn.safetensors")
RETINAFACE_BUILTIN_WEIGHTS = os.path.join(BUILTIN_FOLDER, "retinaface_mobile0.25.safetensors")
BUILTIN_WEIGHTS = {MTCNN: MTCNN_WEIGHTS, RETINAFACE_BUILTIN: RETINAFACE_BUILTIN_WEIGHTS}
TRACKING_DETECTORS = [d for d in DETECTOR_CHOICES if d != ALIGNED_INPUT]
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


# --- detectors --------------------------------------------------------------------------------------

def detector_weights(name: str):
    """(folder, file, what, url) of a detector's weights; None for those that need none."""
    if name not in DETECTOR_CHOICES:
        raise ValueError(f"unknown detector '{name}' (choose one of {', '.join(DETECTOR_CHOICES)})")
    if name not in WEIGHT_FILES:
        return None
    return "facedetection", WEIGHT_FILES[name], f"the {name} detector", WEIGHT_URLS[name]


def detector_check(name: str):
    """True when the detector can run (its weight file in place), else what is wrong, in one line."""
    try:
        if name == HAAR:
            HaarDetector()
            return True
        if name in BUILTIN_WEIGHTS:
            path = BUILTIN_WEIGHTS[name]
            return True if os.path.isfile(path) else f"{path} is missing: reinstall the pack"
        weights = detector_weights(name)
    except (ValueError, CascadeFilesMissing) as error:
        return str(error)
    return True if weights is None else weights_check(*weights)


def make_detector(name: str, min_score: float):
    if name == HAAR:
        try:
            return HaarDetector()
        except CascadeFilesMissing as error:
            raise RuntimeError(str(error)) from None
    if name == MTCNN:
        _, managed = load_managed(MTCNN_WEIGHTS, (FACE_DETECTION,))
        return MTCNNDetector(managed.load(), managed.device)
    path = BUILTIN_WEIGHTS.get(name) or find_weights(*detector_weights(name))
    descriptor, managed = load_managed(path, (FACE_DETECTION,))
    module = managed.load(memory_required=MAX_BATCH_PIXELS * RETINAFACE_BYTES_PER_PIXEL)
    log.info("FaceDetect: %s from %s on %s", descriptor.architecture, path, managed.device)
    return RetinaFaceDetector(module, name, managed.device, min_score)


def tick_per_photo(photos: int, description: str):
    """An on_photo callback: a progress tick and a cancel point after each photo (or frame)."""
    progress = runtime.Progress(photos, description)

    def photo_done(_):
        progress.update()
        runtime.check_cancel()

    return photo_done


def detect_faces(image: torch.Tensor, detector: str = DEFAULT_DETECTOR, crop_size: int | str = 512, selection: str = "all", index: int = 0,
                 min_confidence: float = 0.8, min_face_size: int = 16, max_faces: int = 0) -> FaceSet:
    """The faces of a photo batch (IMAGE [B, H, W, C] in 0..1), FFHQ-aligned crops at crop_size.

    Progress per photo; Cancel between photos (in ComfyUI).
    """
    image = check_finite(check_image_batch(image, "FaceDetect's image", allow_empty=False), "FaceDetect's image")
    crop_size = int(crop_size)
    if detector == ALIGNED_INPUT:
        face_set = faces_from_aligned(image, crop_size)
        runtime.Progress(image.shape[0], "FaceDetect").update(image.shape[0])
    else:
        face_set = find_faces(image, make_detector(detector, min_confidence), crop_size, mode=selection, index=index,
                              min_score=min_confidence, min_size=min_face_size, max_faces=max_faces,
                              on_photo=tick_per_photo(image.shape[0], "FaceDetect"))
    log.info("FaceDetect: %s", face_set.describe())
    return face_set


def track_faces(images: torch.Tensor, detector: str = DEFAULT_DETECTOR, crop_size: int | str = 512, min_confidence: float = 0.8,
                min_face_size: int = 16, max_faces: int = 0, smoothing: float = 0.5, max_gap: int = 5,
                min_track_length: int = 3, reidentify_within: int = 60) -> FaceSet:
    """The faces of a clip's frames (IMAGE [T, H, W, C]), linked into tracks (one id per person, also
    after a face was away for up to `reidentify_within` frames) and smoothed over time, with their
    aligned crops. A hard cut (face.shots) ends every track: after it a face keeps its id only by
    re-identification; the cuts are the FaceSet's shot_starts (FaceTemporalBlend restarts there)."""
    images = check_finite(check_image_batch(images, "FaceTrack's images", allow_empty=False), "FaceTrack's images")
    detections = detect_frames(images, make_detector(detector, min_confidence), min_score=min_confidence,
                               min_size=min_face_size, max_faces=max_faces, with_appearance=True,
                               on_photo=tick_per_photo(images.shape[0], "FaceTrack"))
    starts = shot_starts(to_uint8(rgb_view(image_to_numpy(frame))) for frame in images)
    tracks = link_tracks(detections, max_gap, reidentify_within=reidentify_within, shot_starts=starts)
    tracked = smooth_tracks(tracks, images.shape[0], smoothing, min_track_length)
    face_set = dataclasses.replace(faces_from_tracks(images, tracked, int(crop_size), f"{detector}, tracked"), shot_starts=starts)
    cuts = f", {len(starts)} cut(s) at frame(s) {', '.join(map(str, starts))}" if starts else ""
    log.info("FaceTrack: %s, %d person(s)%s", face_set.describe(), len(set(face_set.tracks)), cuts)
    return face_set


def blend_over_time(restored_crops: torch.Tensor, faces: FaceSet, strength: float) -> torch.Tensor:
    """Each person's restored crops blended with their previous frame's (a recursive average along
    the track, `strength` the previous frame's weight; 0 = unchanged)."""
    crops = check_finite(check_image_batch(restored_crops, "restored_crops"), "FaceTemporalBlend's restored_crops")
    if crops.shape[0] != len(faces):
        raise ValueError(f"FaceTemporalBlend got {crops.shape[0]} crops for {len(faces)} faces: connect the crops of these faces")
    if strength <= 0 or len(faces) == 0:
        return crops
    return blend_along_tracks(crops.detach().cpu().float(), [(f.image_index, f.track) for f in faces.faces], float(strength),
                              faces.shot_starts)


def detection_previews(images: torch.Tensor, face_set: FaceSet) -> torch.Tensor:
    """The photos (IMAGE) with each face's box, landmarks and number (or track id) drawn, as an IMAGE."""
    previews = [draw_detections(rgb_view(image_to_numpy(images[i])), face_set, i) for i in range(images.shape[0])]
    return torch.from_numpy(np.stack(previews))


# --- paste back -------------------------------------------------------------------------------------

def parsing_weights(name: str):
    """(folder, file, what, url) of a face-parsing model's weights."""
    if name not in PARSING_FILES:
        raise ValueError(f"unknown parsing model '{name}' (choose none, parsenet or bisenet)")
    return "facedetection", PARSING_FILES[name], f"parsing '{name}'", PARSING_URLS[name]


def parsing_check(name: str):
    """True when the parsing model's file is in place (or none is used), else the one-line message."""
    if name == "none":
        return True
    try:
        return weights_check(*parsing_weights(name))
    except ValueError as error:
        return str(error)


def paste_back(image: torch.Tensor, faces: FaceSet, restored_crops: torch.Tensor | None, blend: float = 1.0,
               color_match: str = "none", parsing: str = "none", keep_original_accessories: bool = False,
               mask_erosion: float = 0.1, mask_feather: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """(photos with the restored crops pasted back, paste masks [B, H, W]), float32 on the CPU.

    `image` may be a resized copy of the photos the faces were found in; photos without faces pass
    through unchanged (restored_crops may then be None).
    """
    image = check_finite(check_image_batch(image, "PasteBack's image", allow_empty=False), "PasteBack's image")
    result = image.detach().to("cpu", torch.float32).clone()
    masks = torch.zeros(image.shape[:3], dtype=torch.float32)
    check_paste_inputs(image, faces)
    if len(faces) == 0:
        return result, masks
    restored = check_finite(check_image_batch(restored_crops, "restored_crops"), "PasteBack's restored_crops",
                            f"the restorer before PasteBack failed on these faces; {FP16_OVERFLOW_HINT}")
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
    return result, masks
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
