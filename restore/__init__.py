"""Restoring faces without ComfyUI: the pipelines of the shipped workflows, and the steps they are made of.

Restore a folder of photos (or a video file) the way a shipped workflow does:

    from diffusion_face_restore import restore
    restore.set_models_dir("path/to/ComfyUI/models")   # or $DFR_MODELS_DIR
    restore.restore_folder("difface-fast", "photos/", "restored/")
    restore.restore_video("dr2", "clip.mp4", "restored.mp4")

or photo by photo, with the models loaded once:

    pipeline = restore.Pipeline("dr2", {"sampler.respacing": "25"})   # "section.widget": value
    restored = pipeline(restore.load_photo("old.jpg"), seed=0)        # IMAGE [1, H, W, 3] in 0..1
    restore.save_photo(restored, "old.png")

The steps, for graphs of your own (the nodes call exactly these): detect_faces / track_faces, load_prior,
difface_start, sample_faces, load_face_enhancer / enhance_faces, paste_back. Images are ComfyUI IMAGE
tensors: float32 [batch, height, width, channels] in 0..1. Nothing here imports ComfyUI; inside ComfyUI
the same functions use its model management, progress bar and cancel button.
"""
from ..runtime import set_models_dir
from .enhancers import FaceEnhancer, enhance_faces, load_face_enhancer, load_upscale_model
from .faces import blend_over_time, detect_faces, paste_back, track_faces
from .photos import list_photos, load_photo, restore_folder, save_photo, seed_for
from .pipelines import PIPELINES, Pipeline
from .priors import FacePrior, load_prior
from .sampling import difface_start, sample_faces
from .video import restore_video

__all__ = [
    "PIPELINES", "FaceEnhancer", "FacePrior", "Pipeline", "blend_over_time", "detect_faces", "difface_start",
    "enhance_faces", "list_photos", "load_face_enhancer", "load_photo", "load_prior", "load_upscale_model", "paste_back",
    "restore_folder", "restore_video", "sample_faces", "save_photo", "seed_for", "set_models_dir", "track_faces",
]
