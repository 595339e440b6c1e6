"""SPARNet / SPARNetHD (Face-SPARNet), DR2's enhancement module, in its official key layout.

File: `SPARNetHD_FFHQ_DR2aug.pth` (DR2's release): SPARNetHD2D, instance norm, LeakyReLU 0.2,
a single-channel ("spar") hourglass attention map per residual block, spectral norm on every
convolution. The released dict stores each conv as `weight_orig`, `weight_u`, `weight_v` (bias
first); in evaluation the weight is weight_orig / sigma with sigma = u . (W v) from the *stored*
u and v (no power iteration) — folded into a plain weight once, at load (reference B.5).

Widths, depths, hourglass depths, norm (instance / batch), activation (LeakyReLU / PReLU) and
attention (2-D / 3-D) are read from the state dict, so the family's variants load too.
Input RGB in [-1, 1] at 512; output on the same scale, not clamped.
"""
from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import nn

from . import FACE_RESTORATION, Architecture, ModelDescriptor, has_keys


class Norm(nn.Module):
    """Holds the norm under `norm` (keys `<layer>.norm.*`)."""

    def __init__(self, channels: int, kind: str):
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels, affine=True) if kind == "in" else nn.BatchNorm2d(channels)

    def forward(self, x):
        return self.norm(x)


class Activation(nn.Module):
    """LeakyReLU 0.2, or PReLU (keys `<layer>.func.weight`)."""

    def __init__(self, channels: int, kind: str):
        super().__init__()
        self.kind = kind
        if kind == "prelu":
            self.func = nn.PReLU(channels)

    def forward(self, x):
        return self.func(x) if self.kind == "prelu" else F.leaky_relu(x, 0.2)


class ConvLayer(nn.Module):
    """[nearest x2] -> reflection pad -> conv (stride 2 for 'down') -> [norm] -> [activation].

    The conv has a bias only when there is no norm (as in the official ConvLayer).
    """

    def __init__(self, in_ch, out_ch, scale="none", norm=None, activation=None):
        super().__init__()
        self.upsample = scale == "up"
        self.reflection_pad = nn.ReflectionPad2d(1)
        self.conv2d = nn.Conv2d(in_ch, out_ch, 3, 2 if scale == "down" else 1, bias=norm is None)
        if norm is not None:
            self.norm = Norm(out_ch, norm)
        if activation is not None:
            self.relu = Activation(out_ch, activation)

    def forward(self, x):
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = self.conv2d(self.reflection_pad(x))
        if hasattr(self, "norm"):
            x = self.norm(x)
        return self.relu(x) if hasattr(self, "relu") else x


class HourGlass(nn.Module):
    """Simplified hourglass producing a sigmoid attention map (1 channel: 'spar'; c: 'spar3d')."""

    def __init__(self, depth, c_in, c_out, norm, activation, c_mid=64):
        super().__init__()
        self.depth = depth
        if depth:
            self._add_level(depth, c_in, c_mid, norm, activation)
            self.out_block = nn.Sequential(ConvLayer(c_mid, c_out), nn.Sigmoid())

    def _add_level(self, level, c_in, c_mid, norm, activation):
        """Registered in the official (recursive) order, so the state dict keys come in its order."""
        c1 = c_in if level == self.depth else c_mid
        self.add_module(f"b1_{level}", ConvLayer(c1, c_mid, norm=norm, activation=activation))
        self.add_module(f"b2_{level}", ConvLayer(c1, c_mid, "down", norm, activation))
        if level > 1:
            self._add_level(level - 1, c_in, c_mid, norm, activation)
        else:
            self.add_module("b2_plus_1", ConvLayer(c_mid, c_mid, norm=norm, activation=activation))
        self.add_module(f"b3_{level}", ConvLayer(c_mid, c_mid, "up", norm, activation))

    def _forward(self, level, x):
        upper = self._modules[f"b1_{level}"](x)
        lower = self._modules[f"b2_{level}"](x)
        lower = self._forward(level - 1, lower) if level > 1 else self._modules["b2_plus_1"](lower)
        lower = self._modules[f"b3_{level}"](lower)
        if lower.shape[2:] != upper.shape[2:]:
            lower = F.interpolate(lower, upper.shape[2:])
        return upper + lower

    def forward(self, x):
        if not self.depth:
            return x
        return x * self.out_block(self._forward(self.depth, x))


class ResidualBlock(nn.Module):
    """out = shortcut(x) + A(conv2(conv1(act(norm(x))))), A = hourglass attention."""

    def __init__(self, c_in, c_out, scale, hg_depth, c_attention, norm, activation):
        super().__init__()
        self.shortcut_func = None if (scale == "none" and c_in == c_out) else ConvLayer(c_in, c_out, scale)
        self.preact_func = nn.Sequential(Norm(c_in, norm), Activation(c_in, activation))
        self.conv1 = ConvLayer(c_in, c_out, "up" if scale == "up" else "none", norm, activation)
        self.conv2 = ConvLayer(c_out, c_out, "down" if scale == "down" else "none", norm)
        self.att_func = HourGlass(hg_depth, c_out, c_attention, norm, activation)

    def forward(self, x):
        identity = x if self.shortcut_func is None else self.shortcut_func(x)
        return identity + self.att_func(self.conv2(self.conv1(self.preact_func(x))))


class SPARNet(nn.Module):
    def __init__(self, config: dict):
        super().__init__()
        norm, activation = config["norm"], config["activation"]

        def blocks(specs, scale):
            return nn.Sequential(*[ResidualBlock(i, o, scale, d, a, norm, activation) for i, o, d, a in specs])

        self.encoder = nn.Sequential(ConvLayer(3, config["base_ch"]), *blocks(config["encoder"], "down"))
        self.res_layers = blocks(config["res_layers"], "none")
        self.decoder = blocks(config["decoder"], "up")
        self.out_conv = ConvLayer(config["decoder"][-1][1] if config["decoder"] else config["base_ch"], 3)

    def forward(self, x):
        return self.out_conv(self.decoder(self.res_layers(self.encoder(x))))


def fold_spectral_norm(state_dict: dict) -> dict:
    """weight_orig / weight_u / weight_v -> weight = weight_orig / (u . (W v)), as eval mode does."""
    folded = {}
    for key, value in state_dict.items():
        if key.endswith("weight_orig"):
            prefix = key[: -len("weight_orig")]
            u, v = state_dict[prefix + "weight_u"], state_dict[prefix + "weight_v"]
            sigma = torch.dot(u, torch.mv(value.reshape(value.shape[0], -1), v))
            folded[prefix + "weight"] = value / sigma
        elif not (key.endswith("weight_u") or key.endswith("weight_v")):
            folded[key] = value
    return folded


def _block_specs(state_dict, part, start=0):
    specs = []
    index = start
    while f"{part}.{index}.conv1.conv2d.weight" in state_dict:
        weight = state_dict[f"{part}.{index}.conv1.conv2d.weight"]
        prefix = f"{part}.{index}.att_func."
        levels = [int(m.group(1)) for k in state_dict if (m := re.match(rf"{re.escape(prefix)}b1_(\d+)\.", k))]
        depth = max(levels, default=0)
        attention = state_dict[prefix + "out_block.0.conv2d.weight"].shape[0] if depth else 0
        specs.append((weight.shape[1], weight.shape[0], depth, attention))
        index += 1
    return specs


def infer_config(state_dict: dict) -> dict:
    norm = "bn" if "encoder.1.preact_func.0.norm.running_mean" in state_dict else "in"
    activation = "prelu" if "encoder.1.preact_func.1.func.weight" in state_dict else "leakyrelu"
    return {
        "base_ch": state_dict["encoder.0.conv2d.weight"].shape[0],
        "encoder": _block_specs(state_dict, "encoder", 1),
        "res_layers": _block_specs(state_dict, "res_layers"),
        "decoder": _block_specs(state_dict, "decoder"),
        "norm": norm,
        "activation": activation,
    }


def _detect(state_dict) -> bool:
    keys = ("encoder.0.conv2d", "out_conv.conv2d", "encoder.1.att_func.b1_1.conv2d")
    return all(has_keys(state_dict, k + ".weight") or has_keys(state_dict, k + ".weight_orig") for k in keys) and any(
        k.startswith("res_layers.") for k in state_dict
    )


def _build(state_dict, metadata=None) -> ModelDescriptor:
    state_dict = fold_spectral_norm(state_dict)
    config = infer_config(state_dict)
    model = SPARNet(config)
    model.load_state_dict(state_dict, strict=True)
    three_d = any(spec[3] > 1 for spec in config["encoder"] + config["res_layers"] + config["decoder"])
    name = "SPARNetHD" + ("3D" if three_d else "2D")
    return ModelDescriptor(name, FACE_RESTORATION, model, config, supports_fp16=False)


ARCHITECTURE = Architecture("SPARNet", FACE_RESTORATION, _detect, _build)
