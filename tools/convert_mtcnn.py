"""Write the pack's copy of MTCNN's weights (face/detection/mtcnn.safetensors) from facenet-pytorch's.

facenet-pytorch (MIT) ships the original MTCNN weights converted to PyTorch as three state dicts
(data/pnet.pt, rnet.pt, onet.pt, 2 MB together). Its package pins an old torch, so the pack does not
depend on it: this script reads the files of an installed copy (`pip install --no-deps
facenet-pytorch==2.6.0`, or a wheel unpacked by hand) and writes one safetensors file with the keys
models/mtcnn.py recognises (`pnet.*`, `rnet.*`, `onet.*`). tests/test_detection_mtcnn.py checks
that the shipped file holds exactly those tensors.

    python -m diffusion_face_restore.tools.convert_mtcnn [FACENET_PYTORCH_DIR]   # installed package
    python tools/convert_mtcnn.py [FACENET_PYTORCH_DIR]                          # from a checkout
"""
from __future__ import annotations

import importlib.util
import os
import sys

import torch
from safetensors.torch import save_file

NETWORKS = ("pnet", "rnet", "onet")
SHIPPED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "face", "detection", "mtcnn.safetensors")


def facenet_pytorch_dir() -> str:
    spec = importlib.util.find_spec("facenet_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("facenet-pytorch is not installed: pip install --no-deps facenet-pytorch==2.6.0")
    return list(spec.submodule_search_locations)[0]


def facenet_state_dict(package_dir: str) -> dict[str, torch.Tensor]:
    """facenet-pytorch's three networks as one state dict with `pnet.` / `rnet.` / `onet.` prefixes."""
    merged = {}
    for network in NETWORKS:
        state_dict = torch.load(os.path.join(package_dir, "data", f"{network}.pt"), map_location="cpu", weights_only=True)
        merged.update({f"{network}.{key}": value.float().contiguous() for key, value in state_dict.items()})
    return merged


def main(argv: list[str]) -> int:
    package_dir = argv[0] if argv else facenet_pytorch_dir()
    save_file(facenet_state_dict(package_dir), SHIPPED, metadata={"source": "facenet-pytorch 2.6.0 data/{pnet,rnet,onet}.pt (MIT)"})
    print(f"wrote {SHIPPED}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
