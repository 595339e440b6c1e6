"""The face diffusion prior loader, DifFaceInit and DR2GuidedSampler."""
from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..diffusion.difface import DRAW_CONVENTIONS, DiffusionState, difface_init, seeded_noise, x0_to_crops
from ..diffusion.dr2 import automatic_omega, check_steps, prepare_guide, settings_for_severity
from ..diffusion.lowpass import LowPass, check_lowpass_factor
from ..diffusion.samplers import FAST_SAMPLERS, best_spacing, sample_ddim, sample_dr2, sample_fast
from ..diffusion.schedule import SPACINGS, NoiseLevels, Schedule
from ..face.faces import FaceSet
from ..face.image import check_finite, check_image_batch
from ..models import FACE_DIFFUSION, ModelDescriptor
from ..models.degradation import Degradation
from .. import runtime
from .loading import find_weights, load_managed, weights_check
from .types import CATEGORY_DIFFUSION, DEGRADATION, DIFFUSION_STATE, FACE_DIFFUSION_TYPE, FACES, MODEL_FOLDER_OPTION, expect

log = logging.getLogger("diffusion_face_restore")

PRIOR_FOLDER = "face_diffusion"
SAMPLER_CHOICES = ("official",) + FAST_SAMPLERS
RESPACINGS = ["ddim250", "250", "100", "ddim100", "ddim50", "50", "ddim25", "25"]
# activation memory of one 512 x 512 face through the UNet, float32 (scaled by area and dtype)
UNET_BYTES_PER_FACE_512 = 768 * 2 ** 20
RESTORER_BYTES_PER_FACE_512 = 512 * 2 ** 20
PREVIEW_SIZE = 256
# how the UNet's convolutions run: NCHW as the official code (its results bit for bit), or
# channels-last (1.2-1.6x faster on a CPU, ~1e-6 per call from the official, ~2e-4 after 100 steps)
CONVOLUTIONS = {"exact": torch.contiguous_format, "channels-last (faster)": torch.channels_last}


@dataclass(eq=False)
class FacePrior:
    """A loaded pixel-space face diffusion prior (the FACE_DIFFUSION value)."""

    name: str
    descriptor: ModelDescriptor
    managed: runtime.ManagedModule
    dtype: torch.dtype
    memory_format: torch.memory_format = torch.contiguous_format  # of every tensor the UNet sees

    @property
    def image_size(self) -> int:
        return int(self.descriptor.config["image_size"])

    @property
    def learn_sigma(self) -> bool:
        return self.descriptor.config["out_channels"] == 2 * self.descriptor.config["in_channels"]

    def bytes_per_face(self) -> int:
        scale = (self.image_size / 512) ** 2 * (0.6 if self.dtype != torch.float32 else 1.0)
        return int(UNET_BYTES_PER_FACE_512 * scale)

    def denoiser(self, batch: int):
        """denoise(x, t) on the device, in chunks that fit; halves the chunk on out-of-memory."""
        module = self.managed.load(memory_required=self.bytes_per_face() * max(1, batch))
        device = self.managed.device
        chunk = [runtime.items_that_fit(self.bytes_per_face(), batch)]

        def denoise(x: torch.Tensor, t: int) -> torch.Tensor:
            outputs, start = [], 0
            while start < x.shape[0]:
                # one memory format on purpose: the convolutions' rounding depends on it (channels-
                # last inputs differ from the official NCHW run by ~1e-6 per call)
                part = x[start:start + chunk[0]].to(device).contiguous(memory_format=self.memory_format)
                try:
                    timesteps = torch.full((part.shape[0],), t, dtype=torch.int64, device=device)
                    outputs.append(module(part, timesteps).float())
                    start += part.shape[0]
                except Exception as error:  # noqa: BLE001 - only out-of-memory is retried
                    if not runtime.is_out_of_memory(error) or chunk[0] == 1:
                        raise
                    chunk[0] = max(1, chunk[0] // 2)
                    runtime.free_cached_memory()
                    log.warning("out of memory: now %d face(s) at a time through the UNet", chunk[0])
            return torch.cat(outputs)

        return denoise


class FaceDiffusionLoader:
    DESCRIPTION = (
        "Loads a pixel-space face diffusion prior from models/face_diffusion: DifFace's iDDPM UNet "
        "(iddpm_ffhq512_ema500000.pth, 512 px) or DR2's ADM UNet (DR2_FFHQ.pkl, 256 px), as released or "
        "converted to .safetensors. The architecture is read from the file."
    )
    CATEGORY = CATEGORY_DIFFUSION
    FUNCTION = "load"
    RETURN_TYPES = (FACE_DIFFUSION_TYPE,)
    RETURN_NAMES = ("prior",)
    OUTPUT_TOOLTIPS = ("The face diffusion prior, for DifFaceInit and DR2GuidedSampler.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model_name": (runtime.list_model_files(PRIOR_FOLDER), {MODEL_FOLDER_OPTION: PRIOR_FOLDER, "tooltip": (
                    "A file in models/face_diffusion: iddpm_ffhq512_ema500000.pth (DifFace) or DR2_FFHQ.pkl (DR2).")}),
                "precision": (list(runtime.PRECISIONS), {"default": "auto", "tooltip": (
                    "auto: bf16 or fp16 where ComfyUI says the device does them well, else fp32. The UNet's "
                    "convolutions run in that precision; norms, embeddings and the output head stay fp32.")}),
            },
            "optional": {  # added later: optional, so API prompts saved before it still validate
                "convolutions": (list(CONVOLUTIONS), {"default": "exact", "tooltip": (
                    "exact: NCHW, the official code's results bit for bit. channels-last: 1.2-1.6x faster per UNet "
                    "call on a CPU, ~2e-4 different after 100 steps.")}),
            },
        }

    @classmethod
    def VALIDATE_INPUTS(cls, model_name):
        return weights_check(PRIOR_FOLDER, model_name, "FaceDiffusionLoader")

    def load(self, model_name, precision, convolutions="exact"):
        if convolutions not in CONVOLUTIONS:
            raise ValueError(f"unknown convolutions '{convolutions}' (choose one of {', '.join(CONVOLUTIONS)})")
        path = find_weights(PRIOR_FOLDER, model_name, "FaceDiffusionLoader")
        dtype = runtime.pick_dtype(precision)
        descriptor, managed = load_managed(path, (FACE_DIFFUSION,), dtype, CONVOLUTIONS[convolutions])
        log.info("face prior %s: %s, %d px, %s", model_name, descriptor.architecture, descriptor.config["image_size"], dtype)
        return (FacePrior(model_name, descriptor, managed, dtype, CONVOLUTIONS[convolutions]),)


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


class DifFaceInit:
    DESCRIPTION = (
        "DifFace's start: a restorer (DifFace's SwinIR, loaded with Load Upscale Model) estimates the clean "
        "face, which is diffused to step K of the prior's schedule. Connect the state to DR2GuidedSampler "
        "(without a guide it runs DifFace's DDIM reverse process). Without a restorer the crops themselves "
        "are diffused. Defaults are the paper's: K = 100 of ddim250."
    )
    CATEGORY = CATEGORY_DIFFUSION
    FUNCTION = "init"
    RETURN_TYPES = (DIFFUSION_STATE, "IMAGE")
    RETURN_NAMES = ("state", "estimate")
    OUTPUT_TOOLTIPS = (
        "The noisy crops at step K and the seeded noise source, for DR2GuidedSampler.",
        "The restorer's clean estimate, at the crop size (a preview).",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "prior": (FACE_DIFFUSION_TYPE, {"tooltip": "The face diffusion prior (FaceDiffusionLoader)."}),
                "crops": ("IMAGE", {"tooltip": "Aligned face crops (FaceDetect's crops)."}),
                "seed": ("INT", {"default": 12345, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True, "tooltip": (
                    "Seeds every random draw of DifFace (this node's and the sampler's), in the official order: "
                    "the same seed gives the official code's result after torch.manual_seed(seed).")}),
                "start_step": ("INT", {"default": 100, "min": 1, "max": 999, "tooltip": (
                    "K, on the respacing's steps: how far the estimate is diffused. Larger = more freedom for the "
                    "prior (more detail, less fidelity); smaller = closer to the estimate. DifFace: 100 of ddim250.")}),
                "respacing": (RESPACINGS, {"default": "ddim250", "tooltip": (
                    "The steps of the 1000-step schedule that are used: ddimN = every (1000/N)th step (DifFace: "
                    "ddim250); N = N steps at fractional stride (DR2: 100). Fewer steps are faster.")}),
            },
            "optional": {
                "restorer": ("UPSCALE_MODEL", {"tooltip": (
                    "The restoration backbone (DifFace: swinir_restoration512_L1.pth via Load Upscale Model; any "
                    "1x restorer works).")}),
                # added later: optional, so API prompts saved before it still validate
                "official_draws": (list(DRAW_CONVENTIONS), {"default": DRAW_CONVENTIONS[0], "tooltip": (
                    "Which official DifFace run the seed reproduces (the official code's random numbers depend "
                    "on how it holds the faces): aligned file = inference_difface.py --aligned on one crop; "
                    "whole photo = a photo with faces (its crops in the same order); aligned folder = --aligned "
                    "on a folder, one batch. Any choice is an equally good random start.")}),
                "faces": (FACES, {"tooltip": "FaceTrack's (or FaceDetect's) faces of these crops: their track ids, for same_noise_per_person."}),
                "same_noise_per_person": ("BOOLEAN", {"default": False, "tooltip": (
                    "Video: each face's draws come from a seed made of this seed and its track id, so one "
                    "person gets the same noise in every frame (the prior then invents the same detail frame "
                    "after frame) and the sampler continues them. Needs FaceTrack's faces. Off: one batch draw.")}),
            },
        }

    def init(self, prior, crops, seed, start_step, respacing, official_draws=DRAW_CONVENTIONS[0], restorer=None,
             faces=None, same_noise_per_person=False):
        prior = expect(prior, FacePrior, "DifFaceInit's prior", "FaceDiffusionLoader's output")
        crops = check_finite(check_image_batch(crops, "DifFaceInit's crops"), "DifFaceInit's crops")
        schedule = Schedule(respacing)
        restore = restorer_function(restorer, crops.shape[0]) if restorer is not None else None
        with torch.no_grad():
            tracks = person_tracks(faces, crops.shape[0], "DifFaceInit") if same_noise_per_person else None
            state = difface_init(crops, prior.image_size, restore, schedule, start_step, seed, prior.managed.device, official_draws, tracks)
        estimate = x0_to_crops(state.estimate * 2 - 1, state.crop_size)
        log.info("DifFaceInit: %d face(s) diffused to %s", len(state), schedule.describe(start_step))
        return (state, estimate.to(runtime.output_device()))


class DR2GuidedSampler:
    DESCRIPTION = (
        "Runs the face prior's reverse process. With a guide (the degraded crops) it is DR2: diffuse the guide "
        "to omega, denoise to tau while replacing each sample's low frequencies (below 1/N of the size) with the "
        "guide's at the same noise level, and output the clean face predicted at tau (coarse, degradation-free: "
        "follow with Enhancer). With only a DifFaceInit state it is DifFace: DDIM(eta) down to 0. With both, "
        "DR2's guidance starts from DifFace's state."
    )
    CATEGORY = CATEGORY_DIFFUSION
    FUNCTION = "sample"
    RETURN_TYPES = ("IMAGE", "IMAGE")
    RETURN_NAMES = ("faces", "faces_prior_size")
    OUTPUT_TOOLTIPS = (
        "The restored faces at the crop size (for PasteBack or the Enhancer).",
        "The restored faces at the prior's own resolution (256 for DR2, 512 for DifFace).",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "prior": (FACE_DIFFUSION_TYPE, {"tooltip": "The face diffusion prior (FaceDiffusionLoader)."}),
                "seed": ("INT", {"default": 12345, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True, "tooltip": (
                    "Seeds DR2's draws. With a DifFaceInit state, its seed's noise source continues instead.")}),
                "N": ("INT", {"default": 4, "min": 1, "max": 64, "tooltip": (
                    "DR2's low-pass factor: frequencies below 1/N of the size come from the guide. Larger N keeps "
                    "less of the input (removes heavier degradation, less fidelity). 1 = no guidance mixing. "
                    "Must divide the prior's size.")}),
                "tau": ("INT", {"default": 22, "min": 0, "max": 99, "tooltip": (
                    "DR2's output step on its 0..99 scale: the clean face is read off here. Larger = more "
                    "degradation removed, less fidelity. Paper: 22 (mild), 35 (medium and severe).")}),
                "omega": ("INT", {"default": 0, "min": 0, "max": 99, "tooltip": (
                    "DR2's start step on the 0..99 scale; 0 = the paper's table from N and tau (tau + 5..30). "
                    "Ignored with a DifFaceInit state (it starts at K).")}),
                "eta": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.05, "tooltip": (
                    "Randomness of DifFace's reverse process (used without a guide), DDIM's eta for every sampler: "
                    "0.5 = the paper's, 0 = deterministic, 1 = DDPM (samples the prior's posterior). dpm++ 2m sde "
                    "samples the same distribution as the official DDIM at this eta (its SDE gets eta^2 of the "
                    "reverse SDE's noise). Ignored by dpm++ 2m (always 0) and with a guide.")}),
                "respacing": (["auto"] + RESPACINGS, {"default": "auto", "tooltip": (
                    "auto: the state's respacing, else DR2's 100 steps. Fewer steps are faster.")}),
            },
            "optional": {
                "guide": ("IMAGE", {"tooltip": "The degraded aligned crops: turns on DR2's low-frequency guidance."}),
                "state": (DIFFUSION_STATE, {"tooltip": "A DifFaceInit state: start from DifFace's diffused estimate."}),
                "degradation": (DEGRADATION, {"tooltip": (
                    "DegradationEncoder's output for the guide crops: adaptive DR2. Each face gets (N, tau) from its "
                    "estimated severity s: s < 0.25 -> (4, 22), s < 0.5 -> (8, 35), else (16, 35); omega from the "
                    "paper's table. The N, tau and omega widgets are then ignored.")}),
                # added later: optional, so API prompts saved before them still validate
                "sampler": (list(SAMPLER_CHOICES), {"default": SAMPLER_CHOICES[0], "tooltip": (
                    "official: the papers' loops, bit for bit (DifFace: DDIM, K UNet calls, 100 by default; DR2: "
                    "omega - tau + 1 calls). With only a DifFaceInit state, the few-step solvers cost 'steps' UNet "
                    "calls and reproduce the official DDIM's own many-step result at the same eta: dpm++ 2m sde "
                    "(stochastic) or dpm++ 2m (deterministic, eta 0). On the exact reference (README), dpm++ 2m sde "
                    "came closer to DDIM's own limit in 8 calls than the official 100 steps (eta 0.5 and 1).")}),
                "steps": ("INT", {"default": 8, "min": 1, "max": 400, "tooltip": (
                    "UNet calls of the dpm++ samplers, from K to the clean face. 8: closer to the official DDIM's own "
                    "many-step result than its 100 steps, at eta 0.5, 1 and 0 (README). Ignored by official.")}),
                "spacing": (["auto"] + list(SPACINGS), {"default": "auto", "tooltip": (
                    "Where the dpm++ samplers spend their calls between K and 0: auto = the measured best (uniform t "
                    "for dpm++ 2m sde at eta > 0, karras for dpm++ 2m and eta 0), or evenly in log-SNR, evenly in t, "
                    "Karras' rho = 7.")}),
                "faces": (FACES, {"tooltip": "FaceTrack's faces of the guide crops: their track ids, for same_noise_per_person."}),
                "same_noise_per_person": ("BOOLEAN", {"default": False, "tooltip": (
                    "Video, DR2 (a guide): each face's draws come from this seed and its track id, so one person gets "
                    "the same noise in every frame. Needs FaceTrack's faces. With a DifFaceInit state, switch it on "
                    "there (the state carries each person's noise).")}),
            },
        }

    def sample(self, prior, seed, N, tau, omega, eta, respacing, sampler=SAMPLER_CHOICES[0], steps=8, spacing="auto",
               guide=None, state=None, degradation=None, faces=None, same_noise_per_person=False):
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
            x = self._adaptive(prior, seed, guide, state, degradation, schedule, tracks)
        else:
            noise = state.noise_source() if state is not None else seeded_noise(seed, tracks)
            if sampler == "official":
                x = self._run(prior, schedule, noise, N, tau, omega, eta, guide, state)
            else:
                x = self._run_fast(prior, schedule, noise, sampler, steps, spacing, eta, state)
        device_out = runtime.output_device()
        return (x0_to_crops(x, crop_size).to(device_out), x0_to_crops(x, prior.image_size).to(device_out))

    def _run(self, prior, schedule, noise, N, tau, omega, eta, guide, state) -> torch.Tensor:
        """The reverse process on the device; returns x0 in -1..1 at the prior's size."""
        batch = len(state) if state is not None else guide.shape[0]
        denoise = prior.denoiser(batch)
        device = prior.managed.device
        with torch.no_grad():
            if guide is None:
                first_step = state.step - 1  # DifFace's off-by-one: x is at K, the first call at K - 1
                progress = runtime.Progress(first_step + 1, "DifFace")
                return sample_ddim(denoise, state.x.to(device), schedule, first_step, eta, noise, _progress_callback(progress))
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
            return sample_dr2(denoise, y, schedule, start, tau_step, lowpass, noise, x_start, _progress_callback(progress))

    def _run_fast(self, prior, schedule, noise, sampler, steps, spacing, eta, state) -> torch.Tensor:
        """DifFace's reverse process with a few-step solver from x exactly at K's timestep (no off-by-one)."""
        levels = NoiseLevels()
        ts = levels.timesteps(int(schedule.timestep_map[state.step]), int(steps), best_spacing(sampler, eta) if spacing == "auto" else spacing)
        denoise = prior.denoiser(len(state))
        progress = runtime.Progress(len(ts), sampler)
        log.info("DR2GuidedSampler: %s, %d UNet calls at t = %s", sampler, len(ts), ts)
        with torch.no_grad():
            return sample_fast(sampler, denoise, state.x.to(prior.managed.device), levels, ts, eta, noise,
                               callback=_progress_callback(progress))

    def _adaptive(self, prior, seed, guide, state, degradation, schedule, tracks=None) -> torch.Tensor:
        """Degradation-adaptive DR2: (N, tau) per face from its estimated severity, omega from the
        paper's table; faces with the same setting run as one batch, each group seeded with `seed`.
        Returns x0 as _run does."""
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
            part = self._run(prior, schedule, noise, N, tau, 0, 0.0, guide[members], None)
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


def _progress_callback(progress: runtime.Progress):
    def callback(info):
        denoised = info["denoised"][0:1]
        if denoised.shape[-1] > PREVIEW_SIZE:
            denoised = F.interpolate(denoised, size=(PREVIEW_SIZE, PREVIEW_SIZE), mode="area")
        progress.update(preview=(denoised[0].permute(1, 2, 0) * 0.5 + 0.5))
        runtime.check_cancel()

    return callback
