"""ComfyUI nodes: schemas plus short execute methods; the work happens in face/, models/, diffusion/."""
from .face_nodes import FaceDetect, PasteBack

NODE_CLASS_MAPPINGS = {
    "FaceDetect": FaceDetect,
    "PasteBack": PasteBack,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "FaceDetect": "Face Detect (aligned crops)",
    "PasteBack": "Paste Faces Back",
}
