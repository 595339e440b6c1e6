"""ComfyUI nodes: schemas, ComfyUI types in and out, and one call into restore/, where the work happens."""
from .diffusion_nodes import DifFaceInit, DR2GuidedSampler, FaceDiffusionLoader
from .drbfr_nodes import DegradationEncoder, DegradationModelLoader, DRControlNetApply
from .enhancer_nodes import Enhancer, FaceEnhancerLoader
from .face_nodes import FaceDetect, PasteBack
from .video_nodes import FaceTemporalBlend, FaceTrack

NODE_CLASS_MAPPINGS = {
    "FaceDetect": FaceDetect,
    "PasteBack": PasteBack,
    "FaceTrack": FaceTrack,
    "FaceTemporalBlend": FaceTemporalBlend,
    "FaceDiffusionLoader": FaceDiffusionLoader,
    "DifFaceInit": DifFaceInit,
    "DR2GuidedSampler": DR2GuidedSampler,
    "FaceEnhancerLoader": FaceEnhancerLoader,
    "Enhancer": Enhancer,
    "DegradationModelLoader": DegradationModelLoader,
    "DegradationEncoder": DegradationEncoder,
    "DR-ControlNetApply": DRControlNetApply,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "FaceDetect": "Face Detect (aligned crops)",
    "PasteBack": "Paste Faces Back",
    "FaceTrack": "Face Track (video, smoothed)",
    "FaceTemporalBlend": "Face Temporal Blend (video)",
    "FaceDiffusionLoader": "Load Face Diffusion Prior",
    "DifFaceInit": "DifFace Init (diffused estimate)",
    "DR2GuidedSampler": "DR2 Guided Sampler (DR2 / DifFace)",
    "FaceEnhancerLoader": "Load Face Enhancer",
    "Enhancer": "Face Enhancer (SPARNetHD, GFPGAN, CodeFormer...)",
    "DegradationModelLoader": "Load Degradation Model (DR-BFR)",
    "DegradationEncoder": "Degradation Encoder (DR-BFR)",
    "DR-ControlNetApply": "Apply DR-BFR ControlNet",
}
