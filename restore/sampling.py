"""Restoring aligned face crops with a face prior: DifFace's start (a restorer's estimate diffused to
step K), and the reverse process from there (DifFace's DDIM or a few-step solver), DR2's guided loop
from the degraded crops, the hybrid of both, and degradation-adaptive DR2.

DifFaceInit and DR2GuidedSampler are `difface_start` and `sample_faces` with a ComfyUI schema around
them; SAMPLER_DEFAULTS are their widgets' defaults (the papers' settings).
"""
from __future__ import annotations

import logging
import weakref

import torch
import torch.nn.functional as F

from .. import runtime
from ..diffusion.difface import DRAW_CONVENTIONS, DiffusionState, difface_init, seeded_noise, x0_to_crops
from ..diffusion.dr2 import automatic_omega, check_steps, prepare_guide, settings_for_severity
from ..diffusion.lowpass import LowPass, check_lowpass_factor
from ..diffusion.fast_solvers import FAST_SAMPLERS, network_calls, sample_fast, solver_timesteps
from ..diffusion.samplers import sample_ddim, sample_dr2
from ..diffusion.schedule import NoiseLevels, Schedule
from ..face.faces import FaceSet
from ..face.image import check_finite, check_image_batch
from ..models.degradation import Degradation
from .checks import expect
from .priors import FacePrior

log = logging.getLogger("diffusion_face_restore")

SAMPLER_CHOICES = ("official",) + FAST_SAMPLERS
RESPACINGS = ["ddim250", "250", "100", "ddim100", "ddim50", "50", "ddim25", "25"]
# DifFace's start as in the paper: K = 100 of ddim250
DIFFACE_START_DEFAULTS = {"start_step": 100, "respacing": "ddim250"}
# the reverse process: DR2's (N 4, tau 22, omega from the paper's table) and DifFace's (DDIM, eta 0.5)
SAMPLER_DEFAULTS = {"N": 4, "tau": 22, "omega": 0, "eta": 0.5, "respacing": "auto", "sampler": SAMPLER_CHOICES[0],
                    "steps": 10, "spacing": "auto"}
RESTORER_BYTES_PER_FACE_512 = 512 * 2 ** 20
PREVIEW_SIZE = 256


_restorers: "weakref.WeakKeyDictionary[object, runtime.ManagedModule]" = weakref.WeakKeyDictionary()


def restorer_function(descriptor, batch: int):
    """Run a spandrel restorer (ComfyUI's UPSCALE_MODEL) on [B, 3, S, S] 0..1, on the device."""
    if getattr(descriptor, "scale", 1) != 1:
        raise ValueError(f"the restorer must keep the size (scale 1); this {descriptor.architecture.name} model upscales x{descriptor.scale}")
    model = descriptor.model.eval()  # spandrel hands models over in training mode
    if descriptor not in _restorers:
        _restorers[descriptor] = runtime.ManagedModule(model)
    managed = _restorers[descriptor]
    module = managed.load()
    dtype = next(module.parameters()).dtype

    chunk = runtime.items_that_fit(RESTORER_BYTES_PER_FACE_512, batch)

    @torch.no_grad()
    def restore(x: torch.Tensor) -> torch.Tensor:
        out = []
        for start in range(0, x.shape[0], chunk):
            out.append(module(x[start:start + chunk].to(managed.device, dtype)).float())
            runtime.check_cancel()
        return torch.cat(out)

    return restore


def difface_start(prior: FacePrior, crops: torch.Tensor, seed: int, start_step: int = DIFFACE_START_DEFAULTS["start_step"],
                  respacing: str = DIFFACE_START_DEFAULTS["respacing"], official_draws: str = DRAW_CONVENTIONS[0], restorer=None,
                  faces: FaceSet | None = None, same_noise_per_person: bool = False) -> tuple[DiffusionState, torch.Tensor]:
    """DifFace's start: (the crops' estimate diffused to step K with its seeded noise source, the
    estimate as an IMAGE at the crop size). `restorer` is a spandrel 1x model (DifFace's SwinIR); without
    it the crops themselves are diffused."""
    prior = expect(prior, FacePrior, "DifFaceInit's prior", "FaceDiffusionLoader's output")
    crops = check_finite(check_image_batch(crops, "DifFaceInit's crops"), "DifFaceInit's crops")
    schedule = Schedule(respacing)
    restore = restorer_function(restorer, crops.shape[0]) if restorer is not None else None
    with torch.no_grad():
        tracks = person_tracks(faces, crops.shape[0], "DifFaceInit") if same_noise_per_person else None
        state = difface_init(crops, prior.image_size, restore, schedule, start_step, seed, prior.managed.device, official_draws, tracks)
    estimate = x0_to_crops(state.estimate * 2 - 1, state.crop_size)
    log.info("DifFaceInit: %d face(s) diffused to %s", len(state), schedule.describe(start_step))
    return state, estimate.to(runtime.output_device())


def sample_faces(prior: FacePrior, seed: int, N: int = SAMPLER_DEFAULTS["N"], tau: int = SAMPLER_DEFAULTS["tau"],
                 omega: int = SAMPLER_DEFAULTS["omega"], eta: float = SAMPLER_DEFAULTS["eta"],
                 respacing: str = SAMPLER_DEFAULTS["respacing"], sampler: str = SAMPLER_DEFAULTS["sampler"],
                 steps: int = SAMPLER_DEFAULTS["steps"], spacing: str = SAMPLER_DEFAULTS["spacing"], guide: torch.Tensor | None = None,
                 state: DiffusionState | None = None, degradation: Degradation | None = None, faces: FaceSet | None = None,
                 same_noise_per_person: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The prior's reverse process: (restored faces at the crop size, at the prior's size), IMAGE batches.

    With a guide (the degraded crops) DR2: diffused to omega, denoised to tau with the guide's low
    frequencies, the clean face predicted at tau. With only a DifFaceInit state DifFace: DDIM(eta) to 0
    (or a few-step solver, `sampler`). With both, DR2's guidance from DifFace's state. With a
    degradation, adaptive DR2 ((N, tau) per face from its severity).
    """
    prior = expect(prior, FacePrior, "DR2GuidedSampler's prior", "FaceDiffusionLoader's output")
    if guide is None and state is None:
        raise ValueError("DR2GuidedSampler needs a guide (the crops, for DR2) or a state (DifFaceInit, for DifFace)")
    if state is not None:
        state = expect(state, DiffusionState, "DR2GuidedSampler's state", "state output of DifFaceInit")
        if respacing not in ("auto", state.respacing):
            raise ValueError(f"the state was made on {state.respacing}: set respacing to auto or {state.respacing}")
        if state.x.shape[-1] != prior.image_size:
            raise ValueError(f"the state is at {state.x.shape[-1]} px but this prior works at {prior.image_size} px: use the same prior")
    if sampler not in SAMPLER_CHOICES:
        raise ValueError(f"unknown sampler '{sampler}' (choose one of {', '.join(SAMPLER_CHOICES)})")
    if sampler != "official" and (guide is not None or state is None):
        raise ValueError(
            f"{sampler} runs DifFace's reverse process (a DifFaceInit state and no guide); DR2's guided loop "
            "replaces low frequencies after every official step: use sampler official (fewer steps: respacing 50 or 25)"
        )
    if guide is not None:
        guide = check_finite(check_image_batch(guide, "the guide"), "DR2GuidedSampler's guide")
        if state is not None and guide.shape[0] != len(state):
            raise ValueError(f"the guide has {guide.shape[0]} crops but the state {len(state)}: connect the same crops")
        if degradation is None:  # adaptive DR2 picks N itself
            check_lowpass_factor(N, prior.image_size)
    schedule = Schedule(state.respacing if state is not None else ("100" if respacing == "auto" else respacing))
    crop_size = state.crop_size if state is not None else int(guide.shape[1])
    batch = len(state) if state is not None else guide.shape[0]
    if batch == 0:
        empty = torch.zeros((0, crop_size, crop_size, 3))
        return (empty, torch.zeros((0, prior.image_size, prior.image_size, 3)))
    tracks = None
    if same_noise_per_person:
        if state is not None and not state.per_person:
            raise ValueError("same_noise_per_person with a DifFaceInit state: switch it on in DifFaceInit (the state carries the noise)")
        if state is None:
            tracks = person_tracks(faces, batch, "DR2GuidedSampler")
    if degradation is not None:
        x = _adaptive(prior, seed, guide, state, degradation, schedule, tracks)
    else:
        noise = state.noise_source() if state is not None else seeded_noise(seed, tracks)
        if sampler == "official":
            x = _run_official(prior, schedule, noise, N, tau, omega, eta, guide, state)
        else:
            x = _run_fast(prior, schedule, noise, sampler, steps, spacing, eta, state)
    device_out = runtime.output_device()
    return x0_to_crops(x, crop_size).to(device_out), x0_to_crops(x, prior.image_size).to(device_out)


def _run_official(prior, schedule, noise, N, tau, omega, eta, guide, state) -> torch.Tensor:
    """The reverse process on the device; returns x0 in -1..1 at the prior's size."""
    batch = len(state) if state is not None else guide.shape[0]
    denoise = prior.denoiser(batch)
    device = prior.managed.device
    with torch.no_grad():
        if guide is None:
            first_step = state.step - 1  # DifFace's off-by-one: x is at K, the first call at K - 1
            progress = runtime.Progress(first_step + 1, "DifFace")
            return sample_ddim(denoise, state.x.to(device), schedule, first_step, eta, noise, progress_callback(progress))
        lowpass = LowPass(prior.image_size, N) if N > 1 else None
        y = prepare_guide(guide, prior.image_size).to(device)
        tau_step = schedule.index_for_fraction(tau)
        if state is None:
            omega = omega or automatic_omega(N, tau)
            check_steps(tau, omega)
            start, x_start = schedule.index_for_fraction(omega), None
        else:
            start, x_start = state.step, state.x.to(device)
            if tau_step > start:
                raise ValueError(f"tau = {tau} lies before the state's start step {start} of {schedule.respacing}")
        progress = runtime.Progress(start - tau_step + 1, "DR2")
        return sample_dr2(denoise, y, schedule, start, tau_step, lowpass, noise, x_start, progress_callback(progress))


def _run_fast(prior, schedule, noise, sampler, steps, spacing, eta, state) -> torch.Tensor:
    """DifFace's reverse process with a few-step solver from x exactly at K's timestep (no off-by-one)."""
    levels = NoiseLevels()
    calls = int(steps)
    ts = solver_timesteps(sampler, levels, int(schedule.timestep_map[state.step]), calls, spacing, eta)
    denoise = prior.denoiser(len(state))
    progress = runtime.Progress(network_calls(sampler, ts, calls), sampler)
    log.info("DR2GuidedSampler: %s, %d UNet calls, grid t = %s", sampler, network_calls(sampler, ts, calls), ts)
    with torch.no_grad():
        return sample_fast(sampler, denoise, state.x.to(prior.managed.device), levels, ts, eta, noise,
                           callback=progress_callback(progress), calls=calls)


def _adaptive(prior, seed, guide, state, degradation, schedule, tracks=None) -> torch.Tensor:
    """Degradation-adaptive DR2: (N, tau) per face from its estimated severity, omega from the
    paper's table; faces with the same setting run as one batch, each group seeded with `seed`.
    Returns x0 as _run_official does."""
    degradation = expect(degradation, Degradation, "DR2GuidedSampler's degradation", "DegradationEncoder's output")
    if guide is None or state is not None:
        raise ValueError("adaptive DR2 (a degradation connected) needs the guide crops and no DifFaceInit state")
    if len(degradation) != guide.shape[0]:
        raise ValueError(f"the guide has {guide.shape[0]} crops but the degradation {len(degradation)}: encode the same crops")
    settings = [settings_for_severity(score) for score in degradation.scores().tolist()]
    x = None
    for N, tau in sorted(set(settings)):
        members = torch.tensor([i for i, s in enumerate(settings) if s == (N, tau)])
        log.info("adaptive DR2: faces %s with N = %d, tau = %d", members.tolist(), N, tau)
        noise = seeded_noise(seed, [tracks[i] for i in members.tolist()] if tracks is not None else None)
        part = _run_official(prior, schedule, noise, N, tau, 0, 0.0, guide[members], None)
        if x is None:
            x = torch.empty((guide.shape[0], *part.shape[1:]), dtype=part.dtype, device=part.device)
        x[members.to(part.device)] = part
    return x


def person_tracks(faces, count: int, node: str) -> list[int]:
    """The track id of each of `count` crops, for the same noise per person."""
    if faces is None:
        raise ValueError(f"{node}: same_noise_per_person needs the faces input (FaceTrack's faces of the same crops)")
    faces = expect(faces, FaceSet, f"{node}'s faces", "faces output of FaceTrack")
    if len(faces) != count:
        raise ValueError(f"{node}: {len(faces)} faces but {count} crops: connect the faces the crops came from")
    if any(track < 0 for track in faces.tracks):
        raise ValueError(f"{node}: same_noise_per_person needs track ids: connect FaceTrack's faces (FaceDetect does not track)")
    return faces.tracks


def progress_callback(progress: runtime.Progress):
    """A sampler callback: a progress tick with the first face's predicted x0 as the preview, and a
    cancel point after every UNet call."""
    def callback(info):
        denoised = info["denoised"][0:1]
        if denoised.shape[-1] > PREVIEW_SIZE:
            denoised = F.interpolate(denoised, size=(PREVIEW_SIZE, PREVIEW_SIZE), mode="area")
        progress.update(preview=(denoised[0].permute(1, 2, 0) * 0.5 + 0.5))
        runtime.check_cancel()

    return callback
