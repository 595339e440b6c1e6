"""DifFace (TPAMI 2024): diffuse a restorer's clean estimate to step K, then reverse from there.

As the official `sample_func_ir_aligned` does it (reference-algorithms.md A.2, A.5):
    y0  -> bicubic-antialias resize to the prior's size (not clamped)
    h   =  clamp(restorer(y0), 0, 1)                  (SwinIR; the crops themselves without one)
    x_K =  sqrt(abar_K) (h - 0.5) / 0.5 + sqrt(1 - abar_K) z      (one draw, the whole batch)
    DDIM(eta) from K - 1 down to 0 (the official off-by-one: x_K is diffused to K but the first
    step runs at K - 1), then clamp((x + 1) / 2) and resize back, clamped.
All draws come from one CPU torch.Generator seeded with the node's seed, in the official order and
shapes, so a seed s reproduces the official sampling after torch.manual_seed(s) -- for the official
invocation named by the draw convention (DRAW_CONVENTIONS): the official code draws `randn_like(x)`,
whose values depend on x's memory format, and its folder mode's DataLoader takes one int64 from the
generator before the first draw.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from .samplers import q_sample
from .schedule import Schedule


@dataclass(frozen=True)
class DiffusionState:
    """What DifFaceInit hands on: the noisy crops at a step, and how to continue from there."""

    x: torch.Tensor  # [B, 3, S, S] float32 on the CPU, at respaced index `step`
    step: int  # respaced index of x (K)
    respacing: str
    generator_state: torch.Tensor  # the CPU generator after the draws so far
    crop_size: int  # the crops' size (outputs are resized back to it)
    estimate: torch.Tensor  # the clean estimate h in 0..1, [B, 3, S, S] at the prior's size
    draws: str = "aligned file"  # the official invocation whose draws the seed reproduces (DRAW_CONVENTIONS)
    # same noise per person (video): one CPU generator per face, seeded from its track id
    face_generator_states: tuple | None = None

    def __len__(self) -> int:
        return self.x.shape[0]

    def generator(self) -> torch.Generator:
        """A fresh generator at the saved state (the state itself is never advanced)."""
        generator = torch.Generator(device="cpu")
        generator.set_state(self.generator_state.clone())
        return generator

    @property
    def per_person(self) -> bool:
        return self.face_generator_states is not None

    def noise_source(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """Where the sampler's draws continue: the shared generator, or each face's own."""
        if self.face_generator_states is None:
            return randn_like_from(self.generator(), self.draws)
        generators = []
        for state in self.face_generator_states:
            generator = torch.Generator(device="cpu")
            generator.set_state(state.clone())
            generators.append(generator)
        return randn_per_face(generators)


def resize_bicubic(x: torch.Tensor, size: int) -> torch.Tensor:
    """torch's antialiased bicubic resize (PIL's kernel), as the official code resizes."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bicubic", antialias=True)


def crops_to_tensor(crops: torch.Tensor, size: int) -> torch.Tensor:
    """IMAGE [B, H, W, C] in 0..1 -> [B, 3, size, size] float32 (not clamped after resizing)."""
    x = crops[..., :3].permute(0, 3, 1, 2).to(torch.float32).contiguous()
    return resize_bicubic(x, size)


# The official invocation a seed reproduces, and how it draws (reference A.2, A.3):
#   aligned file:   inference_difface.py --aligned on one file: x is NCHW, randn_like(x) = randn(shape)
#   whole photo:    a photo with faces (no --aligned): x stacks HWC crops, so it is channels-last and
#                   randn_like(x) fills it in NHWC memory order
#   aligned folder: --aligned on a folder (its DataLoader, bs faces per batch): channels-last draws
#                   as for a whole photo, after the one int64 the DataLoader takes for its base seed
DRAW_CONVENTIONS = ("aligned file", "whole photo", "aligned folder")


def randn_like_from(generator: torch.Generator, draws: str = "aligned file") -> Callable[[torch.Tensor], torch.Tensor]:
    """Standard normal draws shaped like a tensor, from a CPU generator, moved to its device: the
    values `randn_like(x)` gives after torch.manual_seed(seed) for x as the official invocation
    `draws` holds it (NCHW for one aligned file, channels-last otherwise). Returned NCHW."""
    if draws not in DRAW_CONVENTIONS:
        raise ValueError(f"unknown draw convention '{draws}' (choose one of {', '.join(DRAW_CONVENTIONS)})")
    channels_last = draws != "aligned file"

    def draw(like: torch.Tensor) -> torch.Tensor:
        if channels_last and like.ndim == 4:
            z = torch.empty(tuple(like.shape), dtype=torch.float32, memory_format=torch.channels_last).normal_(generator=generator)
            z = z.contiguous()
        else:
            z = torch.randn(tuple(like.shape), generator=generator, dtype=torch.float32)
        return z.to(like.device, non_blocking=True)

    return draw


def person_generators(seed: int, tracks: list[int]) -> list[torch.Generator]:
    """One CPU generator per face, seeded from the run's seed and the face's track id: a person
    gets the same draws in every frame of a clip, two people different ones."""
    return [torch.Generator(device="cpu").manual_seed((int(seed) + 1_000_003 * (int(track) + 1)) % 2 ** 63) for track in tracks]


def randn_per_face(generators: list[torch.Generator]) -> Callable[[torch.Tensor], torch.Tensor]:
    """Draws shaped like a batch, each face's slice from its own generator (NCHW)."""

    def draw(like: torch.Tensor) -> torch.Tensor:
        if like.shape[0] != len(generators):
            raise ValueError(f"{like.shape[0]} faces but {len(generators)} noise generators")
        z = torch.stack([torch.randn(tuple(like.shape[1:]), generator=g, dtype=torch.float32) for g in generators])
        return z.to(like.device, non_blocking=True)

    return draw


def seeded_noise(seed: int, tracks: list[int] | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """The draws of a run seeded with `seed` (DR2's convention): one batch generator, or one per
    person (track ids)."""
    if tracks is not None:
        return randn_per_face(person_generators(seed, tracks))
    return randn_like_from(torch.Generator().manual_seed(int(seed)))


def start_generator(seed: int, draws: str = "aligned file") -> torch.Generator:
    """The CPU generator of a DifFace run, where the official one stands after torch.manual_seed(seed)
    and before its first draw."""
    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    if draws == "aligned folder":  # the DataLoader iterator's base seed
        torch.empty((), dtype=torch.int64).random_(generator=generator)
    return generator


def difface_init(
    crops: torch.Tensor,
    prior_size: int,
    restore: Callable[[torch.Tensor], torch.Tensor] | None,
    schedule: Schedule,
    start_step: int,
    seed: int,
    device: torch.device | str = "cpu",
    draws: str = "aligned file",
    tracks: list[int] | None = None,
) -> DiffusionState:
    """crops: IMAGE [B, H, W, C] 0..1. restore: the restorer on [B, 3, S, S] 0..1 (or None).
    draws: the official invocation whose random draws the seed reproduces (DRAW_CONVENTIONS).
    tracks: one track id per crop for the same noise per person (each face its own generator)."""
    if not 1 <= start_step < schedule.num_steps:
        raise ValueError(
            f"start step {start_step} is outside {schedule.respacing}'s 1..{schedule.num_steps - 1}"
        )
    y0 = crops_to_tensor(crops, prior_size).to(device)
    estimate = (restore(y0) if restore is not None else y0).clamp(0.0, 1.0)
    generator = start_generator(seed, draws)
    face_generators = person_generators(seed, tracks) if tracks is not None else None
    z = (randn_per_face(face_generators) if face_generators is not None else randn_like_from(generator, draws))(estimate)
    x = q_sample(schedule, (estimate - 0.5) / 0.5, start_step, z)
    return DiffusionState(
        x=x.cpu(),
        step=start_step,
        respacing=schedule.respacing,
        generator_state=generator.get_state(),
        crop_size=int(crops.shape[1]),
        estimate=estimate.cpu(),
        draws=draws,
        face_generator_states=tuple(g.get_state() for g in face_generators) if face_generators is not None else None,
    )


def x0_to_crops(x: torch.Tensor, crop_size: int) -> torch.Tensor:
    """[-1, 1] samples -> IMAGE [B, S, S, 3] in 0..1 at the crop size (clamped before and after)."""
    image = (x * 0.5 + 0.5).clamp(0.0, 1.0)
    if image.shape[-1] != crop_size:
        image = resize_bicubic(image, crop_size).clamp(0.0, 1.0)
    return image.permute(0, 2, 3, 1)
