"""MTCNN's three networks (Zhang et al., "Joint Face Detection and Alignment using Multi-task Cascaded
Convolutional Networks", 2016), with the layer names of facenet-pytorch's PyTorch conversion of the
original weights, so its files load strictly (keys `pnet.*`, `rnet.*`, `onet.*` in one state dict;
tools/convert_mtcnn.py writes the pack's copy from facenet-pytorch's three files).

- P-Net, fully convolutional: for every 12 x 12 window (stride 2) a face probability and a box
  correction;
- R-Net on 24 x 24 crops of P-Net's candidates: probability and box correction;
- O-Net on 48 x 48 crops: probability, box correction and five landmarks (x1..x5, y1..y5, as
  fractions of the box).

The dense layers were converted from TensorFlow, whose feature maps are laid out (H, W, C): the
flattening goes through (W, H, C) order, as the conversion expects (`x.permute(0, 3, 2, 1)`).
"""
from __future__ import annotations

import torch
from torch import nn

from . import FACE_DETECTION, Architecture, ModelDescriptor, has_keys


class PNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, 1)  # face / not face
        self.conv4_2 = nn.Conv2d(32, 4, 1)  # box correction

    def forward(self, x):
        """x: [B, 3, H, W] RGB, (pixel - 127.5) / 128. Returns box corrections [B, 4, h, w] and face
        probabilities [B, h, w], one per 12 x 12 window at stride 2."""
        x = self.prelu1(self.conv1(x))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(self.pool1(x)))))
        return self.conv4_2(x), torch.softmax(self.conv4_1(x), dim=1)[:, 1]


def flatten_as_tensorflow(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)


class RNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x):
        """x: [B, 3, 24, 24] as PNet's. Returns box corrections [B, 4] and face probabilities [B]."""
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu4(self.dense4(flatten_as_tensorflow(self.prelu3(self.conv3(x)))))
        return self.dense5_2(x), torch.softmax(self.dense5_1(x), dim=1)[:, 1]


class ONet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)  # landmarks: x of the five points, then y

    def forward(self, x):
        """x: [B, 3, 48, 48] as PNet's. Returns box corrections [B, 4], landmarks [B, 10] and face
        probabilities [B]."""
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu5(self.dense5(flatten_as_tensorflow(self.prelu4(self.conv4(x)))))
        return self.dense6_2(x), self.dense6_3(x), torch.softmax(self.dense6_1(x), dim=1)[:, 1]


class MTCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.pnet, self.rnet, self.onet = PNet(), RNet(), ONet()


def _detect(state_dict) -> bool:
    return has_keys(state_dict, "pnet.conv4_1.weight", "rnet.dense5_1.weight", "onet.dense6_3.weight")


def _build(state_dict, metadata=None) -> ModelDescriptor:
    model = MTCNN()
    model.load_state_dict(state_dict, strict=True)
    # tiny networks whose scores feed thresholds: kept in float32
    return ModelDescriptor("MTCNN", FACE_DETECTION, model, {}, supports_fp16=False, supports_bf16=False)


ARCHITECTURE = Architecture("MTCNN", FACE_DETECTION, _detect, _build)
