"""ParseNet (from PSFRGAN), the face parser of facexlib, GFPGAN, CodeFormer and DifFace.

File: `parsing_parsenet.pth` (facexlib release v0.2.2). Input RGB normalised to [-1, 1] at 512;
outputs (19-class parsing logits, a reconstructed image). The layer widths are read from the
state dict, so variants of the same family load too.
"""
from __future__ import annotations

import re

import torch.nn.functional as F
from torch import nn

from . import FACE_PARSING, Architecture, ModelDescriptor, has_keys


class BatchNormLayer(nn.Module):
    """Holds the BatchNorm under the name `norm` (keys `<layer>.norm.norm.*`)."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels)

    def forward(self, x):
        return self.norm(x)


class ConvLayer(nn.Module):
    """[nearest x2] -> reflection pad -> conv (stride 2 for 'down') -> [BatchNorm] -> [LeakyReLU 0.2]."""

    def __init__(self, in_ch, out_ch, scale="none", batch_norm=False, activation=False):
        super().__init__()
        self.upsample = scale == "up"
        self.reflection_pad = nn.ReflectionPad2d(1)
        self.conv2d = nn.Conv2d(in_ch, out_ch, 3, 2 if scale == "down" else 1, bias=not batch_norm)
        self.norm = BatchNormLayer(out_ch) if batch_norm else None
        self.activation = activation

    def forward(self, x):
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = self.conv2d(self.reflection_pad(x))
        if self.norm is not None:
            x = self.norm(x)
        return F.leaky_relu(x, 0.2) if self.activation else x


class ResidualBlock(nn.Module):
    def __init__(self, in_ch, out_ch, scale="none"):
        super().__init__()
        self.shortcut_func = None if (scale == "none" and in_ch == out_ch) else ConvLayer(in_ch, out_ch, scale)
        self.conv1 = ConvLayer(in_ch, out_ch, "up" if scale == "up" else "none", batch_norm=True, activation=True)
        self.conv2 = ConvLayer(out_ch, out_ch, "down" if scale == "down" else "none", batch_norm=True)

    def forward(self, x):
        identity = x if self.shortcut_func is None else self.shortcut_func(x)
        return identity + self.conv2(self.conv1(x))


class ParseNet(nn.Module):
    def __init__(self, base_ch=64, encoder=(), body=(), decoder=(), parsing_ch=19):
        """encoder / body / decoder: (in, out) channels of each residual block."""
        super().__init__()
        self.encoder = nn.Sequential(
            ConvLayer(3, base_ch), *[ResidualBlock(i, o, "down") for i, o in encoder]
        )
        self.body = nn.Sequential(*[ResidualBlock(i, o) for i, o in body])
        self.decoder = nn.Sequential(*[ResidualBlock(i, o, "up") for i, o in decoder])
        last = decoder[-1][1] if decoder else (encoder[-1][1] if encoder else base_ch)
        self.out_img_conv = ConvLayer(last, 3)
        self.out_mask_conv = ConvLayer(last, parsing_ch)

    def forward(self, x):
        features = self.encoder(x)
        x = self.decoder(features + self.body(features))
        return self.out_mask_conv(x), self.out_img_conv(x)


def _block_channels(state_dict, part):
    pattern = re.compile(rf"^{part}\.(\d+)\.conv1\.conv2d\.weight$")
    blocks = sorted((int(m.group(1)), state_dict[k].shape) for k in state_dict if (m := pattern.match(k)))
    return [(shape[1], shape[0]) for _, shape in blocks]


def _detect(state_dict) -> bool:
    return has_keys(state_dict, "encoder.0.conv2d.weight", "out_mask_conv.conv2d.weight", "body.0.conv1.norm.norm.weight")


def _build(state_dict, metadata=None) -> ModelDescriptor:
    config = {
        "base_ch": state_dict["encoder.0.conv2d.weight"].shape[0],
        "encoder": _block_channels(state_dict, "encoder"),
        "body": _block_channels(state_dict, "body"),
        "decoder": _block_channels(state_dict, "decoder"),
        "parsing_ch": state_dict["out_mask_conv.conv2d.weight"].shape[0],
    }
    model = ParseNet(**config)
    model.load_state_dict(state_dict, strict=True)
    return ModelDescriptor("ParseNet", FACE_PARSING, model, config)


ARCHITECTURE = Architecture("ParseNet", FACE_PARSING, _detect, _build)
