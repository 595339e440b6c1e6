"""The face diffusion prior loader, DifFaceInit and DR2GuidedSampler (restore/priors.py, restore/sampling.py)."""
from __future__ import annotations

from .. import runtime
from ..diffusion.difface import DRAW_CONVENTIONS
from ..diffusion.schedule import SPACINGS
from ..restore.priors import CONVOLUTIONS, PRIOR_FOLDER, load_prior, prior_check
from ..restore.sampling import DIFFACE_START_DEFAULTS, RESPACINGS, SAMPLER_CHOICES, SAMPLER_DEFAULTS, difface_start, sample_faces
from .types import CATEGORY_DIFFUSION, DEGRADATION, DIFFUSION_STATE, FACE_DIFFUSION_TYPE, FACES, MODEL_FOLDER_OPTION


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
        return prior_check(model_name)

    def load(self, model_name, precision, convolutions="exact"):
        return (load_prior(model_name, precision, convolutions),)


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
                "start_step": ("INT", {"default": DIFFACE_START_DEFAULTS["start_step"], "min": 1, "max": 999, "tooltip": (
                    "K, on the respacing's steps: how far the estimate is diffused. Larger = more freedom for the "
                    "prior (more detail, less fidelity); smaller = closer to the estimate. DifFace: 100 of ddim250.")}),
                "respacing": (RESPACINGS, {"default": DIFFACE_START_DEFAULTS["respacing"], "tooltip": (
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
        return difface_start(prior, crops, seed, start_step, respacing, official_draws, restorer, faces, same_noise_per_person)


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
                "N": ("INT", {"default": SAMPLER_DEFAULTS["N"], "min": 1, "max": 64, "tooltip": (
                    "DR2's low-pass factor: frequencies below 1/N of the size come from the guide. Larger N keeps "
                    "less of the input (removes heavier degradation, less fidelity). 1 = no guidance mixing. "
                    "Must divide the prior's size.")}),
                "tau": ("INT", {"default": SAMPLER_DEFAULTS["tau"], "min": 0, "max": 99, "tooltip": (
                    "DR2's output step on its 0..99 scale: the clean face is read off here. Larger = more "
                    "degradation removed, less fidelity. Paper: 22 (mild), 35 (medium and severe).")}),
                "omega": ("INT", {"default": SAMPLER_DEFAULTS["omega"], "min": 0, "max": 99, "tooltip": (
                    "DR2's start step on the 0..99 scale; 0 = the paper's table from N and tau (tau + 5..30). "
                    "Ignored with a DifFaceInit state (it starts at K).")}),
                "eta": ("FLOAT", {"default": SAMPLER_DEFAULTS["eta"], "min": 0.0, "max": 1.0, "step": 0.05, "tooltip": (
                    "Randomness of DifFace's reverse process (used without a guide), DDIM's eta for every sampler: "
                    "0.5 = the paper's, 0 = deterministic, 1 = DDPM (samples the prior's posterior). The stochastic "
                    "few-step samplers sample the same distribution as the official DDIM at this eta (their SDE gets eta^2 of the "
                    "reverse SDE's noise). Ignored by dpm++ 2m (always 0) and with a guide.")}),
                "respacing": (["auto"] + RESPACINGS, {"default": SAMPLER_DEFAULTS["respacing"], "tooltip": (
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
                "sampler": (list(SAMPLER_CHOICES), {"default": SAMPLER_DEFAULTS["sampler"], "tooltip": (
                    "official: the papers' loops, bit for bit (DifFace: DDIM, K UNet calls, 100 by default; DR2: "
                    "omega - tau + 1 calls). With only a DifFaceInit state, the few-step solvers cost 'steps' UNet "
                    "calls and reproduce the official DDIM's own many-step result at the same eta: dpm++ 2m sde, "
                    "dpm++ 3m sde, sa-solver, er-sde, seeds-2 (stochastic) or dpm++ 2m (deterministic, eta 0). On the "
                    "exact reference, on faces the settings were not chosen on (README's protocol), seeds-2 with 10 "
                    "calls (the fast template) matches the official 100 steps at eta 0.5; er-sde and sa-solver come "
                    "within 2x of them with 6.")}),
                "steps": ("INT", {"default": SAMPLER_DEFAULTS["steps"], "min": 1, "max": 400, "tooltip": (
                    "UNet calls of the few-step samplers, from K to the clean face (seeds-2: two per step). 10 with "
                    "seeds-2 (the fast template): as close to the official DDIM's own many-step result as its 100 "
                    "steps at eta 0.5 (README's protocol); fewer: faster, farther. Ignored by official.")}),
                "spacing": (["auto"] + list(SPACINGS), {"default": SAMPLER_DEFAULTS["spacing"], "tooltip": (
                    "Where the few-step samplers spend their calls between K and 0: auto = the grid tuned for the "
                    "sampler and number of calls where one is stored (README), else the measured best (uniform t "
                    "for 2m sde, er-sde, seeds-2 at eta > 0; karras for 3m sde, sa-solver, dpm++ 2m and eta 0), or "
                    "evenly in log-SNR, evenly in t, Karras' rho = 7.")}),
                "faces": (FACES, {"tooltip": "FaceTrack's faces of the guide crops: their track ids, for same_noise_per_person."}),
                "same_noise_per_person": ("BOOLEAN", {"default": False, "tooltip": (
                    "Video, DR2 (a guide): each face's draws come from this seed and its track id, so one person gets "
                    "the same noise in every frame. Needs FaceTrack's faces. With a DifFaceInit state, switch it on "
                    "there (the state carries each person's noise).")}),
            },
        }

    def sample(self, prior, seed, N, tau, omega, eta, respacing, sampler=SAMPLER_DEFAULTS["sampler"], steps=SAMPLER_DEFAULTS["steps"],
               spacing=SAMPLER_DEFAULTS["spacing"], guide=None, state=None, degradation=None, faces=None, same_noise_per_person=False):
        return sample_faces(prior, seed, N, tau, omega, eta, respacing, sampler, steps, spacing, guide, state, degradation, faces,
                            same_noise_per_person)
