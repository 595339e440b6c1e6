"""BiSeNet face parser (ResNet-18 context path), facexlib's `parsing_bisenet.pth` (release v0.2.0).

Input RGB normalised with the ImageNet mean and std at 512; the first output is the 19-class
parsing logits at the input size (CelebAMask-HQ labels, as ParseNet).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import FACE_PARSING, Architecture, ModelDescriptor, has_keys


class ConvBNReLU(nn.Module):
    def __init__(self, in_ch, out_ch, kernel=3):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, 1, kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class BasicBlock(nn.Module):
    def __init__(self, in_ch, out_ch, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.downsample = None
        if in_ch != out_ch or stride != 1:
            self.downsample = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))

    def forward(self, x):
        residual = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(shortcut + residual)


class ResNet18(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.layer1 = nn.Sequential(BasicBlock(64, 64), BasicBlock(64, 64))
        self.layer2 = nn.Sequential(BasicBlock(64, 128, 2), BasicBlock(128, 128))
        self.layer3 = nn.Sequential(BasicBlock(128, 256, 2), BasicBlock(256, 256))
        self.layer4 = nn.Sequential(BasicBlock(256, 512, 2), BasicBlock(512, 512))

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        feat8 = self.layer2(self.layer1(x))
        feat16 = self.layer3(feat8)
        return feat8, feat16, self.layer4(feat16)


class AttentionRefinement(nn.Module):
    def __init__(self, in_ch, out_ch):
        super().__init__()
        self.conv = ConvBNReLU(in_ch, out_ch)
        self.conv_atten = nn.Conv2d(out_ch, out_ch, 1, bias=False)
        self.bn_atten = nn.BatchNorm2d(out_ch)

    def forward(self, x):
        features = self.conv(x)
        attention = torch.sigmoid(self.bn_atten(self.conv_atten(features.mean((2, 3), keepdim=True))))
        return features * attention


class ContextPath(nn.Module):
    def __init__(self):
        super().__init__()
        self.resnet = ResNet18()
        self.arm16 = AttentionRefinement(256, 128)
        self.arm32 = AttentionRefinement(512, 128)
        self.conv_head32 = ConvBNReLU(128, 128)
        self.conv_head16 = ConvBNReLU(128, 128)
        self.conv_avg = ConvBNReLU(512, 128, kernel=1)

    def forward(self, x):
        feat8, feat16, feat32 = self.resnet(x)
        global_context = self.conv_avg(feat32.mean((2, 3), keepdim=True))
        up32 = self.arm32(feat32) + F.interpolate(global_context, feat32.shape[-2:], mode="nearest")
        up32 = self.conv_head32(F.interpolate(up32, feat16.shape[-2:], mode="nearest"))
        up16 = self.arm16(feat16) + up32
        up16 = self.conv_head16(F.interpolate(up16, feat8.shape[-2:], mode="nearest"))
        return feat8, up16, up32


class FeatureFusion(nn.Module):
    def __init__(self, in_ch, out_ch):
        super().__init__()
        self.convblk = ConvBNReLU(in_ch, out_ch, kernel=1)
        self.conv1 = nn.Conv2d(out_ch, out_ch // 4, 1, bias=False)
        self.conv2 = nn.Conv2d(out_ch // 4, out_ch, 1, bias=False)

    def forward(self, spatial, context):
        features = self.convblk(torch.cat([spatial, context], dim=1))
        attention = torch.sigmoid(self.conv2(F.relu(self.conv1(features.mean((2, 3), keepdim=True)))))
        return features * attention + features


class Output(nn.Module):
    def __init__(self, in_ch, mid_ch, classes):
        super().__init__()
        self.conv = ConvBNReLU(in_ch, mid_ch)
        self.conv_out = nn.Conv2d(mid_ch, classes, 1, bias=False)

    def forward(self, x):
        return self.conv_out(self.conv(x))


class BiSeNet(nn.Module):
    def __init__(self, classes=19):
        super().__init__()
        self.cp = ContextPath()
        self.ffm = FeatureFusion(256, 256)
        self.conv_out = Output(256, 256, classes)
        self.conv_out16 = Output(128, 64, classes)
        self.conv_out32 = Output(128, 64, classes)

    def forward(self, x):
        """Returns the main parsing logits and the two auxiliary ones, all at the input size."""
        size = x.shape[-2:]
        feat8, context8, context16 = self.cp(x)
        outputs = (self.conv_out(self.ffm(feat8, context8)), self.conv_out16(context8), self.conv_out32(context16))
        return tuple(F.interpolate(o, size, mode="bilinear", align_corners=True) for o in outputs)


def _detect(state_dict) -> bool:
    return has_keys(state_dict, "cp.resnet.conv1.weight", "ffm.convblk.conv.weight", "conv_out.conv_out.weight")


def _build(state_dict, metadata=None) -> ModelDescriptor:
    classes = state_dict["conv_out.conv_out.weight"].shape[0]
    model = BiSeNet(classes)
    model.load_state_dict(state_dict, strict=True)
    return ModelDescriptor("BiSeNet", FACE_PARSING, model, {"classes": classes})


ARCHITECTURE = Architecture("BiSeNet", FACE_PARSING, _detect, _build)
