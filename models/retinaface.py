"""RetinaFace (ResNet-50 and MobileNet-0.25), in facexlib's checkpoint layout.

Files: `detection_Resnet50_Final.pth` and `detection_mobilenet0.25_Final.pth` from facexlib's
releases. Keys: `body.*` (the backbone up to its last used stage, torchvision names for ResNet-50),
`fpn.*`, `ssh1..3.*`, and per level `ClassHead.i`, `BboxHead.i`, `LandmarkHead.i`.

The network returns, per prior box: box offsets (4), face/background probabilities (2) and
landmark offsets (10); decoding lives in face/detection/retinaface.py.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import FACE_DETECTION, Architecture, ModelDescriptor, has_keys

ANCHORS_PER_POSITION = 2


def conv_bn(in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1, leaky: float | None = 0.0, groups: int = 1):
    """Conv (no bias) + BatchNorm (+ LeakyReLU unless leaky is None) as one Sequential: keys .0 .1."""
    layers = [
        nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_ch),
    ]
    if leaky is not None:
        layers.append(nn.LeakyReLU(leaky, inplace=True))
    return nn.Sequential(*layers)


def depthwise_separable(in_ch: int, out_ch: int, stride: int, leaky: float = 0.1):
    """MobileNet block: depthwise 3x3 (keys .0 .1), then pointwise 1x1 (keys .3 .4)."""
    return nn.Sequential(
        *conv_bn(in_ch, in_ch, 3, stride, leaky, groups=in_ch), *conv_bn(in_ch, out_ch, 1, 1, leaky)
    )


class Bottleneck(nn.Module):
    """torchvision's ResNet-50 bottleneck (stride on the 3x3 conv)."""

    def __init__(self, in_ch: int, width: int, stride: int):
        super().__init__()
        out_ch = width * 4
        self.conv1 = nn.Conv2d(in_ch, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_ch, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.downsample = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(out + shortcut)


class ResNet50Body(nn.Module):
    """ResNet-50 stem and stages; returns the outputs of layer2, layer3 and layer4 (strides 8, 16, 32)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        in_ch = 64
        for index, (width, blocks, stride) in enumerate([(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)], 1):
            layers = []
            for block in range(blocks):
                layers.append(Bottleneck(in_ch, width, stride if block == 0 else 1))
                in_ch = width * 4
            setattr(self, f"layer{index}", nn.Sequential(*layers))

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        c2 = self.layer2(self.layer1(x))
        c3 = self.layer3(c2)
        return [c2, c3, self.layer4(c3)]


class MobileNet025Body(nn.Module):
    """MobileNet-V1 x0.25; returns the outputs of its three stages (strides 8, 16, 32)."""

    def __init__(self):
        super().__init__()
        self.stage1 = nn.Sequential(
            conv_bn(3, 8, 3, 2, leaky=0.1),
            depthwise_separable(8, 16, 1),
            depthwise_separable(16, 32, 2),
            depthwise_separable(32, 32, 1),
            depthwise_separable(32, 64, 2),
            depthwise_separable(64, 64, 1),
        )
        self.stage2 = nn.Sequential(depthwise_separable(64, 128, 2), *[depthwise_separable(128, 128, 1) for _ in range(5)])
        self.stage3 = nn.Sequential(depthwise_separable(128, 256, 2), depthwise_separable(256, 256, 1))

    def forward(self, x):
        s1 = self.stage1(x)
        s2 = self.stage2(s1)
        return [s1, s2, self.stage3(s2)]


class FeaturePyramid(nn.Module):
    def __init__(self, in_channels: list[int], out_ch: int):
        super().__init__()
        leaky = 0.1 if out_ch <= 64 else 0.0
        self.output1 = conv_bn(in_channels[0], out_ch, 1, leaky=leaky)
        self.output2 = conv_bn(in_channels[1], out_ch, 1, leaky=leaky)
        self.output3 = conv_bn(in_channels[2], out_ch, 1, leaky=leaky)
        self.merge1 = conv_bn(out_ch, out_ch, 3, leaky=leaky)
        self.merge2 = conv_bn(out_ch, out_ch, 3, leaky=leaky)

    def forward(self, features):
        p1, p2, p3 = self.output1(features[0]), self.output2(features[1]), self.output3(features[2])
        p2 = self.merge2(p2 + F.interpolate(p3, size=p2.shape[-2:], mode="nearest"))
        p1 = self.merge1(p1 + F.interpolate(p2, size=p1.shape[-2:], mode="nearest"))
        return [p1, p2, p3]


class ContextModule(nn.Module):
    """SSH context module: 3x3, 5x5 and 7x7 receptive fields (stacked 3x3 convs), concatenated."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        leaky = 0.1 if out_ch <= 64 else 0.0
        self.conv3X3 = conv_bn(in_ch, out_ch // 2, leaky=None)
        self.conv5X5_1 = conv_bn(in_ch, out_ch // 4, leaky=leaky)
        self.conv5X5_2 = conv_bn(out_ch // 4, out_ch // 4, leaky=None)
        self.conv7X7_2 = conv_bn(out_ch // 4, out_ch // 4, leaky=leaky)
        self.conv7x7_3 = conv_bn(out_ch // 4, out_ch // 4, leaky=None)

    def forward(self, x):
        branch5 = self.conv5X5_1(x)
        branch7 = self.conv7X7_2(branch5)
        return F.relu(torch.cat([self.conv3X3(x), self.conv5X5_2(branch5), self.conv7x7_3(branch7)], dim=1))


class Head(nn.Module):
    def __init__(self, in_ch: int, values_per_anchor: int):
        super().__init__()
        self.values = values_per_anchor
        self.conv1x1 = nn.Conv2d(in_ch, ANCHORS_PER_POSITION * values_per_anchor, 1)

    def forward(self, x):
        out = self.conv1x1(x).permute(0, 2, 3, 1)
        return out.reshape(out.shape[0], -1, self.values)


class RetinaFace(nn.Module):
    def __init__(self, backbone: str = "resnet50", out_channels: int | None = None):
        super().__init__()
        if backbone == "resnet50":
            self.body, in_channels = ResNet50Body(), [512, 1024, 2048]
            out_channels = out_channels or 256
        elif backbone == "mobilenet0.25":
            self.body, in_channels = MobileNet025Body(), [64, 128, 256]
            out_channels = out_channels or 64
        else:
            raise ValueError(f"unknown RetinaFace backbone {backbone!r}")
        self.backbone = backbone
        self.fpn = FeaturePyramid(in_channels, out_channels)
        self.ssh1 = ContextModule(out_channels, out_channels)
        self.ssh2 = ContextModule(out_channels, out_channels)
        self.ssh3 = ContextModule(out_channels, out_channels)
        self.ClassHead = nn.ModuleList(Head(out_channels, 2) for _ in range(3))
        self.BboxHead = nn.ModuleList(Head(out_channels, 4) for _ in range(3))
        self.LandmarkHead = nn.ModuleList(Head(out_channels, 10) for _ in range(3))

    def forward(self, x):
        """x: [B, 3, H, W] BGR in 0..255 minus the mean (104, 117, 123).

        Returns box offsets [B, P, 4], face probabilities [B, P, 2], landmark offsets [B, P, 10].
        """
        pyramid = self.fpn(self.body(x))
        features = [self.ssh1(pyramid[0]), self.ssh2(pyramid[1]), self.ssh3(pyramid[2])]
        boxes = torch.cat([head(f) for head, f in zip(self.BboxHead, features)], dim=1)
        logits = torch.cat([head(f) for head, f in zip(self.ClassHead, features)], dim=1)
        landmarks = torch.cat([head(f) for head, f in zip(self.LandmarkHead, features)], dim=1)
        return boxes, F.softmax(logits, dim=-1), landmarks


def _detect(state_dict) -> bool:
    return has_keys(state_dict, "fpn.output1.0.weight", "ssh1.conv3X3.0.weight", "ClassHead.0.conv1x1.weight")


def _build(state_dict, metadata=None) -> ModelDescriptor:
    backbone = "resnet50" if "body.layer1.0.conv1.weight" in state_dict else "mobilenet0.25"
    out_channels = state_dict["fpn.output1.0.weight"].shape[0]
    model = RetinaFace(backbone, out_channels)
    model.load_state_dict(state_dict, strict=True)
    name = "RetinaFace-ResNet50" if backbone == "resnet50" else "RetinaFace-MobileNet0.25"
    return ModelDescriptor(name, FACE_DETECTION, model, {"backbone": backbone, "out_channels": out_channels})


ARCHITECTURE = Architecture("RetinaFace", FACE_DETECTION, _detect, _build)
