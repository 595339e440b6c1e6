"""The ADM / improved-DDPM UNet family, in the official key layout.

One architecture covers DifFace's FFHQ-512 prior (per-level res-block counts, attention chosen
by feature size, Upsample/Downsample convs) and the P2/ADM FFHQ-256 prior DR2 uses (residual
up/down blocks), and variants of the family: the configuration is read back from the state dict.

Both official models use the legacy attention order (heads split before q/k/v), scale-shift norm
(FiLM from the time embedding), GroupNorm computed in float32, a cos-first sinusoidal time
embedding, and a learned variance (6 output channels: epsilon and variance logits).

Head width is not visible in a state dict; both official models use 64 channels per head, which
is the default (`num_head_channels` in a converted file's metadata overrides it).
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from . import FACE_DIFFUSION, Architecture, ModelDescriptor, has_keys


class GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in float32 whatever the activations' dtype (as the official code)."""

    def forward(self, x):
        return F.group_norm(x.float(), self.num_groups, self.weight.float(), self.bias.float(), self.eps).type(x.dtype)


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """[cos(t f), sin(t f)] with f_i = exp(-ln(max_period) i / (dim/2)): cos first, as ADM."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=timesteps.device) / half)
    args = timesteps[:, None].float() * freqs[None]
    embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        embedding = torch.cat([embedding, torch.zeros_like(embedding[:, :1])], dim=-1)
    return embedding


class ResBlock(nn.Module):
    """GN-SiLU-conv, FiLM from the time embedding (GN(h)(1+scale)+shift), SiLU-conv; skip (1x1)."""

    def __init__(self, channels, emb_channels, out_channels=None, scale_shift=True, up=False, down=False):
        super().__init__()
        out_channels = out_channels or channels
        self.scale_shift = scale_shift
        self.resample = "up" if up else "down" if down else None
        # in-place activations on the norms' fresh outputs: the same values, less memory traffic
        self.in_layers = nn.Sequential(GroupNorm32(32, channels), nn.SiLU(inplace=True), nn.Conv2d(channels, out_channels, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, 2 * out_channels if scale_shift else out_channels))
        self.out_layers = nn.Sequential(
            GroupNorm32(32, out_channels), nn.SiLU(inplace=True), nn.Dropout(0.0), nn.Conv2d(out_channels, out_channels, 3, padding=1)
        )
        self.skip_connection = nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)

    def _resample(self, x):
        if self.resample == "up":
            return F.interpolate(x, scale_factor=2, mode="nearest")
        return F.avg_pool2d(x, 2) if self.resample == "down" else x

    def forward(self, x, emb):
        if self.resample:
            h = self.in_layers[:-1](x)
            h, x = self._resample(h), self._resample(x)
            h = self.in_layers[-1](h)
        else:
            h = self.in_layers(x)
        emb_out = self.emb_layers(emb).type(h.dtype)[..., None, None]
        if self.scale_shift:
            scale, shift = emb_out.chunk(2, dim=1)
            h = self.out_layers[0](h).mul_(1 + scale).add_(shift)  # GN(h) (1 + scale) + shift, in place
            h = self.out_layers[1:](h)
        else:
            h = self.out_layers(h + emb_out)
        return h.add_(self.skip_connection(x))  # skip + h (addition commutes exactly)


class AttentionBlock(nn.Module):
    """Spatial self-attention, legacy q/k/v order, through scaled_dot_product_attention."""

    def __init__(self, channels, num_head_channels=64):
        super().__init__()
        self.heads = max(1, channels // num_head_channels)
        self.norm = GroupNorm32(32, channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj_out = nn.Conv1d(channels, channels, 1)

    def forward(self, x):
        b, c, height, width = x.shape
        flat = x.reshape(b, c, -1)
        qkv = self.qkv(self.norm(flat))
        # legacy order: each head owns a contiguous [q; k; v] block of 3 * head_channels rows
        q, k, v = qkv.reshape(b * self.heads, 3 * c // self.heads, -1).transpose(1, 2).chunk(3, dim=2)
        attended = F.scaled_dot_product_attention(q, k, v)
        h = attended.transpose(1, 2).reshape(b, c, -1)
        return (flat + self.proj_out(h)).reshape(b, c, height, width)


class Downsample(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x):
        return self.op(x)


class Upsample(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class TimestepSequential(nn.ModuleList):
    """Layers of one UNet block (keys `<block>.<index>.*`); ResBlocks receive the embedding."""

    def forward(self, x, emb):
        for layer in self:
            x = layer(x, emb) if isinstance(layer, ResBlock) else layer(x)
        return x


@dataclass
class UNetConfig:
    in_channels: int = 3
    out_channels: int = 6
    model_channels: int = 32
    channel_mult: list = field(default_factory=lambda: [1, 2, 4, 8, 8, 16, 16])
    num_res_blocks: list = field(default_factory=lambda: [1, 2, 2, 2, 2, 3, 4])
    attention_levels: list = field(default_factory=lambda: [False, False, False, False, True, True, True])
    num_head_channels: int = 64
    scale_shift: bool = True
    resblock_updown: bool = False
    image_size: int = 512

    @property
    def learn_sigma(self) -> bool:
        return self.out_channels == 2 * self.in_channels


class UNet(nn.Module):
    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = config
        c = config
        emb_dim = 4 * c.model_channels
        self.time_embed = nn.Sequential(nn.Linear(c.model_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))

        def res(cin, cout=None, **updown):
            return ResBlock(cin, emb_dim, cout, c.scale_shift, **updown)

        ch = c.channel_mult[0] * c.model_channels
        self.input_blocks = nn.ModuleList([TimestepSequential([nn.Conv2d(c.in_channels, ch, 3, padding=1)])])
        skip_channels = [ch]
        levels = len(c.channel_mult)
        for level, mult in enumerate(c.channel_mult):
            for _ in range(c.num_res_blocks[level]):
                layers = [res(ch, mult * c.model_channels)]
                ch = mult * c.model_channels
                if c.attention_levels[level]:
                    layers.append(AttentionBlock(ch, c.num_head_channels))
                self.input_blocks.append(TimestepSequential(layers))
                skip_channels.append(ch)
            if level != levels - 1:
                down = res(ch, ch, down=True) if c.resblock_updown else Downsample(ch)
                self.input_blocks.append(TimestepSequential([down]))
                skip_channels.append(ch)
        self.middle_block = TimestepSequential([res(ch), AttentionBlock(ch, c.num_head_channels), res(ch)])
        self.output_blocks = nn.ModuleList()
        for level in reversed(range(levels)):
            mult = c.channel_mult[level]
            for i in range(c.num_res_blocks[level] + 1):
                layers = [res(ch + skip_channels.pop(), mult * c.model_channels)]
                ch = mult * c.model_channels
                if c.attention_levels[level]:
                    layers.append(AttentionBlock(ch, c.num_head_channels))
                if level and i == c.num_res_blocks[level]:
                    layers.append(res(ch, ch, up=True) if c.resblock_updown else Upsample(ch))
                self.output_blocks.append(TimestepSequential(layers))
        self.out = nn.Sequential(GroupNorm32(32, ch), nn.SiLU(), nn.Conv2d(ch, c.out_channels, 3, padding=1))

    @property
    def torso_dtype(self) -> torch.dtype:
        return self.input_blocks[0][0].weight.dtype

    def set_torso_dtype(self, dtype: torch.dtype) -> "UNet":
        """Run the blocks' convolutions in `dtype` (fp16 / bf16); the time MLP, the embedding
        projections, the norms and the output head stay float32 (the official fp16 scheme)."""
        for part in (self.input_blocks, self.middle_block, self.output_blocks):
            for module in part.modules():
                if isinstance(module, (nn.Conv1d, nn.Conv2d)):
                    module.to(dtype)
        return self

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """x: [B, C, H, W] in [-1, 1]; timesteps: [B] on the original 0..999 scale."""
        emb = self.time_embed(timestep_embedding(timesteps, self.config.model_channels))
        h = x.type(self.torso_dtype)
        skips = []
        for block in self.input_blocks:
            h = block(h, emb)
            skips.append(h)
        h = self.middle_block(h, emb)
        for block in self.output_blocks:
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
        return self.out(h.type(x.dtype))


# --- recognising checkpoints ----------------------------------------------------------------------

def _block_layers(state_dict, part: str, index: int) -> dict[int, str]:
    """{layer index: 'res' | 'attn' | 'down' | 'up' | 'conv'} for one block."""
    kinds = {}
    prefix = f"{part}.{index}."
    for key in state_dict:
        if not key.startswith(prefix):
            continue
        layer, rest = key[len(prefix):].split(".", 1)
        layer = int(layer)
        if rest.startswith("in_layers"):
            kinds[layer] = "res"
        elif rest.startswith("qkv"):
            kinds[layer] = "attn"
        elif rest.startswith("op."):
            kinds[layer] = "down"
        elif rest.startswith("conv."):
            kinds[layer] = "up"
        elif rest in ("weight", "bias"):
            kinds.setdefault(layer, "conv")
    return kinds


def _count_blocks(state_dict, part: str) -> int:
    pattern = re.compile(rf"^{part}\.(\d+)\.")
    return 1 + max(int(m.group(1)) for k in state_dict if (m := pattern.match(k)))


def infer_config(state_dict: dict) -> UNetConfig:
    """Read the configuration back from the shapes and the layout of the output blocks."""
    model_channels = state_dict["time_embed.0.weight"].shape[1]
    in_channels = state_dict["input_blocks.0.0.weight"].shape[1]
    out_channels = state_dict["out.2.weight"].shape[0]
    scale_shift = state_dict["middle_block.0.emb_layers.1.weight"].shape[0] == 2 * state_dict["middle_block.0.out_layers.3.weight"].shape[0]
    # Output blocks, deepest level first: a level ends with the block that carries an up-layer.
    levels, current, updown = [], [], False
    for index in range(_count_blocks(state_dict, "output_blocks")):
        kinds = _block_layers(state_dict, "output_blocks", index)
        channels = state_dict[f"output_blocks.{index}.0.out_layers.3.weight"].shape[0]
        current.append((channels, "attn" in kinds.values()))
        last = max(kinds)
        if last > 0 and kinds[last] in ("up", "res"):  # the block ends with an up-layer
            updown = kinds[last] == "res"
            levels.append(current)
            current = []
    levels.append(current)
    levels.reverse()  # level 0 (full resolution) first
    channel_mult = [blocks[0][0] // model_channels for blocks in levels]
    num_res_blocks = [len(blocks) - 1 for blocks in levels]
    attention_levels = [blocks[0][1] for blocks in levels]
    # both official priors end at an 8 px bottom level; metadata may say otherwise
    image_size = 8 * 2 ** (len(levels) - 1)
    return UNetConfig(
        in_channels, out_channels, model_channels, channel_mult, num_res_blocks, attention_levels,
        64, scale_shift, updown, image_size,
    )


def _detect(state_dict) -> bool:
    return has_keys(state_dict, "time_embed.0.weight", "input_blocks.0.0.weight", "middle_block.1.qkv.weight", "out.2.weight")


def build_unet(state_dict: dict, metadata: dict | None = None) -> ModelDescriptor:
    config = infer_config(state_dict)
    if metadata and "dfr.config" in metadata:
        config = UNetConfig(**{**asdict(config), **json.loads(metadata["dfr.config"])})
    model = UNet(config)
    model.load_state_dict(state_dict, strict=True)
    name = "ADM-UNet" if config.resblock_updown else "iDDPM-UNet"
    return ModelDescriptor(name, FACE_DIFFUSION, model, asdict(config), cast=UNet.set_torso_dtype)


ARCHITECTURE = Architecture("ADM/iDDPM UNet", FACE_DIFFUSION, _detect, build_unet)
