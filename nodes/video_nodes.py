"""FaceTrack and FaceTemporalBlend: restoring the faces of a clip (an IMAGE batch of frames)."""
from __future__ import annotations

from .. import runtime
from ..face.image import check_image_batch
from ..restore.faces import CROP_SIZE_CHOICES, TRACKING_DETECTORS, blend_over_time, track_faces
from .face_nodes import FaceDetect, expect_faces, face_outputs
from .types import CATEGORY_FACES, FACES


class FaceTrack:
    DESCRIPTION = (
        "FaceDetect for a clip: the frames of an IMAGE batch (e.g. Get Video Components' images) are searched "
        "for faces, the faces are linked into tracks (one id per person, short gaps bridged; a hard cut ends every "
        "track, and after it a face keeps its id only if it looks like the person who left), and each track's "
        "landmarks are smoothed over time with a zero-lag forward-backward Kalman smoother, so the alignment, "
        "the crops and the paste mask stop jittering. Outputs the same FACES as FaceDetect (with track ids): "
        "DifFaceInit, DR2GuidedSampler, Enhancer and PasteBack work unchanged."
    )
    CATEGORY = CATEGORY_FACES
    FUNCTION = "track"
    RETURN_TYPES = (FACES, "IMAGE", "IMAGE", "INT")
    RETURN_NAMES = ("faces", "crops", "preview", "count")
    OUTPUT_TOOLTIPS = (
        "The faces of every frame with their track ids; connect to PasteBack (and to the samplers' faces input "
        "for the same noise per person).",
        "The aligned crops, frame by frame, left to right within a frame (smoothed alignment).",
        "The frames with boxes, landmarks and person numbers drawn.",
        "How many faces in all frames together.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        detect = FaceDetect.INPUT_TYPES()["required"]
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "The frames of a clip, in order (an IMAGE batch)."}),
                "detector": (TRACKING_DETECTORS, detect["detector"][1]),
                "crop_size": (CROP_SIZE_CHOICES, detect["crop_size"][1]),
                "min_confidence": detect["min_confidence"],
                "min_face_size": detect["min_face_size"],
                "max_faces": (detect["max_faces"][0], {**detect["max_faces"][1], "tooltip": (
                    "Keep at most this many faces per frame, the largest ones (0 = no limit).")}),
                "smoothing": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.05, "tooltip": (
                    "How strongly the landmarks are smoothed over time (0 = not at all, gaps still bridged). "
                    "Zero lag: the smoother runs forward and backward through the clip. A face that does not "
                    "move is never moved.")}),
                "max_gap": ("INT", {"default": 5, "min": 0, "max": 120, "tooltip": (
                    "Frames a face may go undetected and still be filled in from its track (landmarks "
                    "interpolated). A face away longer is left out of those frames; see reidentify_within.")}),
                "min_track_length": ("INT", {"default": 3, "min": 1, "max": 1000, "tooltip": (
                    "Drop tracks detected in fewer frames than this (one-frame false alarms).")}),
            },
            "optional": {  # optional: API prompts saved before it existed still validate
                "reidentify_within": ("INT", {"default": 60, "min": 0, "max": 1000, "tooltip": (
                    "A face that was away (missed, hidden, out of the picture) for up to this many frames keeps "
                    "its id when it comes back looking like the person who left (texture and colour of the "
                    "aligned face), so same_noise_per_person stays per person. 60 = 2 s at 30 fps; 0 = "
                    "every return after max_gap is a new person.")}),
            }
        }

    VALIDATE_INPUTS = FaceDetect.VALIDATE_INPUTS

    def track(self, images, detector, crop_size, min_confidence, min_face_size, max_faces, smoothing, max_gap, min_track_length,
              reidentify_within=60):
        images = check_image_batch(images, "FaceTrack's images", allow_empty=False)
        face_set = track_faces(images, detector, crop_size, min_confidence, min_face_size, max_faces, smoothing, max_gap, min_track_length,
                               reidentify_within)
        return face_outputs(images, face_set, "FaceTrack")


class FaceTemporalBlend:
    DESCRIPTION = (
        "Evens out what a restorer changes from frame to frame: each person's restored crops (aligned, so the "
        "face sits still in them) are blended with their previous frame's, a short recursive average along the "
        "track. Off (0) by default: it trades flicker for motion blur on the moving parts of a face (mouth, "
        "eyes); see the README's measurements."
    )
    CATEGORY = CATEGORY_FACES
    FUNCTION = "blend"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("crops",)
    OUTPUT_TOOLTIPS = ("The blended crops, in the same order, for PasteBack.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "restored_crops": ("IMAGE", {"tooltip": "The restored crops of FaceTrack's faces (one per face, same order)."}),
                "faces": (FACES, {"tooltip": "FaceTrack's faces: which crops belong to which person and frame."}),
                "strength": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 0.95, "step": 0.05, "tooltip": (
                    "Weight of the previous frame in the recursive blend (0 = off). Measured (README): 0.3 removes a "
                    "quarter of the flicker a restorer with independent noise makes, and shifts a real moving face "
                    "by about 3 grey levels (smeared speech, head turns).")}),
            }
        }

    def blend(self, restored_crops, faces, strength):
        faces = expect_faces(faces)
        blended = blend_over_time(restored_crops, faces, strength)
        if strength <= 0 or len(faces) == 0:  # passed through where they are
            return (blended,)
        return (blended.to(runtime.output_device()),)
