"""Inputs for the real-ComfyUI checks: test photos and a models folder of official-layout files.

The weight files hold random weights in the released layouts (facexlib's RetinaFace and ParseNet
architectures); they prove the loaders and the graph, not the quality.

    python tests/comfyui/make_inputs.py OUT_DIR
"""
import os
import sys

import numpy as np
import torch
from PIL import Image


def main(out_dir: str):
    import skimage.data
    from facexlib.detection.retinaface import RetinaFace
    from facexlib.parsing.parsenet import ParseNet

    os.makedirs(os.path.join(out_dir, "models", "facedetection"), exist_ok=True)
    Image.fromarray(skimage.data.astronaut()).save(os.path.join(out_dir, "example.png"))
    Image.fromarray(np.full((300, 400, 3), 128, np.uint8)).save(os.path.join(out_dir, "no_face.png"))
    torch.manual_seed(0)
    detector = RetinaFace(network_name="mobile0.25", half=False, device="cpu")
    torch.save({"module." + k: v for k, v in detector.state_dict().items()},
               os.path.join(out_dir, "models", "facedetection", "detection_mobilenet0.25_Final.pth"))
    torch.save(ParseNet(in_size=512, out_size=512, parsing_ch=19).state_dict(),
               os.path.join(out_dir, "models", "facedetection", "parsing_parsenet.pth"))
    print("inputs in", out_dir)


if __name__ == "__main__":
    main(sys.argv[1])
