"""Inputs for the real-ComfyUI checks: test photos and a models folder of official-layout files.

The weight files hold random weights in the released layouts (facexlib's RetinaFace and ParseNet,
spandrel's GFPGAN) or are the reduced networks of ../shared/golden (official DifFace and DR2
layouts, small and fast) under the official file names; they prove the loaders and the graphs,
not the quality.

    python tests/comfyui/make_inputs.py OUT_DIR
"""
import os
import shutil
import sys

import numpy as np
import torch
from PIL import Image


def clip_frames(folder: str, frames: int = 8, size: int = 256):
    """A short clip of a real photo along a known camera path (noise, JPEG), as PNG frames; make_clip.py
    encodes them with a sound track (PyAV, in ComfyUI's environment)."""
    import skimage.data

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    from pack_import import import_pack

    import_pack()
    from diffusion_face_restore.degradations.camera_path import camera_path, render_clip

    photo = np.asarray(Image.fromarray(skimage.data.astronaut()).resize((size, size), Image.LANCZOS))
    os.makedirs(folder, exist_ok=True)
    for index, frame in enumerate(render_clip(photo, camera_path(frames, (size, size)), noise=4, jpeg=80, seed=0)):
        Image.fromarray((frame.numpy() * 255).round().astype(np.uint8)).save(os.path.join(folder, f"{index:03d}.png"))


def main(out_dir: str):
    import skimage.data
    from facexlib.detection.retinaface import RetinaFace
    from facexlib.parsing.parsenet import ParseNet

    os.makedirs(os.path.join(out_dir, "models", "facedetection"), exist_ok=True)
    Image.fromarray(skimage.data.astronaut()).save(os.path.join(out_dir, "example.png"))
    Image.fromarray(np.full((300, 400, 3), 128, np.uint8)).save(os.path.join(out_dir, "no_face.png"))
    clip_frames(os.path.join(out_dir, "clip_frames"))
    torch.manual_seed(0)
    detector = RetinaFace(network_name="mobile0.25", half=False, device="cpu")
    torch.save({"module." + k: v for k, v in detector.state_dict().items()},
               os.path.join(out_dir, "models", "facedetection", "detection_mobilenet0.25_Final.pth"))
    torch.save(ParseNet(in_size=512, out_size=512, parsing_ch=19).state_dict(),
               os.path.join(out_dir, "models", "facedetection", "parsing_parsenet.pth"))
    resnet = RetinaFace(network_name="resnet50", half=False, device="cpu")
    with torch.no_grad():  # random weights would report hundreds of huge "faces": score every anchor 0.3
        for head in resnet.ClassHead:
            head.conv1x1.weight.zero_()
            head.conv1x1.bias.copy_(torch.tensor([0.0, -0.847] * 2))
    torch.save({"module." + k: v for k, v in resnet.state_dict().items()},
               os.path.join(out_dir, "models", "facedetection", "detection_Resnet50_Final.pth"))
    golden = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "golden", "checkpoints")
    for source, folder, name in [
        ("difface/reduced/iddpm_reduced128_ema.pth", "face_diffusion", "iddpm_ffhq512_ema500000.pth"),
        ("difface/reduced/swinir_reduced128.pth", "upscale_models", "swinir_restoration512_L1.pth"),
        ("dr2/reduced/DR2_reduced.pkl", "face_diffusion", "DR2_FFHQ.pkl"),
        ("dr2/reduced/DR2_reduced.pkl", "face_diffusion", "ffhq_p2.pt"),  # P2 weighting: DR2's layout
        ("dr2/reduced/SPARNet_reduced.pth", "facerestore_models", "SPARNetHD_FFHQ_DR2aug.pth"),
    ]:
        os.makedirs(os.path.join(out_dir, "models", folder), exist_ok=True)
        shutil.copy(os.path.join(golden, source), os.path.join(out_dir, "models", folder, name))
    # GFPGANv1.4.pth's layout ({"params_ema": ...}, the clean StyleGAN2 architecture, 512 px)
    from spandrel.architectures.GFPGAN import GFPGAN

    gfpgan = GFPGAN(out_size=512, num_style_feat=512, channel_multiplier=2, num_mlp=8, input_is_latent=True,
                    different_w=True, narrow=1, sft_half=True)
    torch.save({"params_ema": gfpgan.state_dict()}, os.path.join(out_dir, "models", "facerestore_models", "GFPGANv1.4.pth"))
    # RealESRGAN_x2plus's layout (basicsr RRDBNet, pixel-unshuffle 2, {"params_ema": ...}); 2 blocks, not 23
    rrdb = {"conv_first.weight": torch.randn(64, 12, 3, 3) * 0.02, "conv_first.bias": torch.zeros(64)}
    for block in range(2):
        for dense in (1, 2, 3):
            for conv, (out_ch, in_ch) in enumerate([(32, 64), (32, 96), (32, 128), (32, 160), (64, 192)], 1):
                prefix = f"body.{block}.rdb{dense}.conv{conv}."
                rrdb[prefix + "weight"] = torch.randn(out_ch, in_ch, 3, 3) * 0.02
                rrdb[prefix + "bias"] = torch.zeros(out_ch)
    for name, out_ch in [("conv_body", 64), ("conv_up1", 64), ("conv_up2", 64), ("conv_hr", 64), ("conv_last", 3)]:
        rrdb[name + ".weight"] = torch.randn(out_ch, 64, 3, 3) * 0.02
        rrdb[name + ".bias"] = torch.zeros(out_ch)
    torch.save({"params_ema": rrdb}, os.path.join(out_dir, "models", "upscale_models", "RealESRGAN_x2plus.pth"))
    print("inputs in", out_dir)


if __name__ == "__main__":
    main(sys.argv[1])
