"""Stage 2: a ControlNet on the LQ face and the DR-token projector, against a frozen SD UNet.

For an HQ face x and its degraded copy y (degraded on the fly):
    d        = DRM(y)                                   (frozen, from stage 1)
    tokens   = projector(d)   (learned null tokens instead, 10% of the time: classifier-free guidance)
    context  = [text embedding of the prompt ; tokens]  (the UNet and the ControlNet both attend to it)
    z0       = VAE(x),  z_t = noised z0 at a random t
    residual = ControlNet(z_t, t, context, hint = y)
    loss     = || UNet(z_t, t, context, + residual) - epsilon (or v) ||^2
Only the ControlNet and the projector learn. Exports: the ControlNet as a diffusers-format
.safetensors (what ComfyUI's ControlNetLoader reads) and the DRM bundle with its projector.
Needs diffusers (and transformers when the base model's text encoder encodes the prompt).
"""
from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F

from ..degradations.synthetic import degrade_batch, sample_params
from ..models import DEGRADATION_MODEL, load_model
from ..models.checkpoint import load_state_dict, save_safetensors
from ..models.degradation import DegradationModel
from .checkpoints import Resumable
from .config import Stage2Config, save_config
from .data import FaceImages
from .loop import run_steps
from .stage1 import autocast, export_bundle, pick_device

CONTEXT_LENGTH = 77


def load_base_model(base_dir: str):
    """(unet, vae, scheduler) of a diffusers-format Stable Diffusion folder, offline."""
    try:
        from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    except ImportError:
        raise ImportError("stage 2 needs diffusers: pip install diffusers") from None
    unet = UNet2DConditionModel.from_pretrained(base_dir, subfolder="unet", local_files_only=True)
    vae = AutoencoderKL.from_pretrained(base_dir, subfolder="vae", local_files_only=True)
    scheduler = DDPMScheduler.from_pretrained(base_dir, subfolder="scheduler", local_files_only=True)
    return unet, vae, scheduler


def prompt_embedding(config: Stage2Config, context_dim: int) -> torch.Tensor:
    """[77, context_dim]: a given embedding file, or the base model's text encoder on the prompt."""
    if config.prompt_embedding:
        embedding = load_state_dict(config.prompt_embedding)["embedding"].float()
    else:
        encoder_dir = os.path.join(config.base_model, "text_encoder")
        if not os.path.isdir(encoder_dir):
            raise ValueError(f"{config.base_model} has no text_encoder/: give prompt_embedding (a .safetensors with 'embedding')")
        from transformers import CLIPTextModel, CLIPTokenizer

        tokenizer = CLIPTokenizer.from_pretrained(config.base_model, subfolder="tokenizer", local_files_only=True)
        encoder = CLIPTextModel.from_pretrained(config.base_model, subfolder="text_encoder", local_files_only=True)
        ids = tokenizer([config.prompt], padding="max_length", max_length=CONTEXT_LENGTH, truncation=True, return_tensors="pt").input_ids
        with torch.no_grad():
            embedding = encoder(ids)[0][0].float()
    if embedding.shape != (CONTEXT_LENGTH, context_dim):
        raise ValueError(f"prompt embedding of shape {tuple(embedding.shape)}, the UNet wants ({CONTEXT_LENGTH}, {context_dim})")
    return embedding


class Stage2Step:
    """Everything one training step needs; `losses(batch)` is the objective above."""

    def __init__(self, config: Stage2Config, unet, vae, scheduler, controlnet, drm: DegradationModel, prompt: torch.Tensor, device):
        self.config, self.unet, self.vae, self.scheduler = config, unet, vae, scheduler
        self.controlnet, self.drm, self.prompt, self.device = controlnet, drm, prompt.to(device), device
        self.hint_factor = 2 ** (len(config.conditioning_channels) - 1)

    def batch(self, faces: FaceImages, rng: np.random.Generator, generator: torch.Generator) -> dict:
        hq = torch.stack([faces.view(int(i), rng) for i in rng.integers(0, len(faces), self.config.batch)]).to(self.device)
        params = [sample_params(rng, self.config.preset) for _ in range(hq.shape[0])]
        lq = degrade_batch(hq, params, generator)
        return {
            "hq": hq,
            "lq": lq,
            "drop": torch.from_numpy(rng.random(hq.shape[0]) < self.config.dr_dropout).to(self.device),
            "noise_seed": int(rng.integers(0, 2 ** 31)),
        }

    def losses(self, batch: dict) -> torch.Tensor:
        generator = torch.Generator().manual_seed(batch["noise_seed"])
        hq, lq = batch["hq"], batch["lq"]
        with torch.no_grad():
            d = self.drm.encode_faces(lq)
            latents = self.vae.encode(hq * 2 - 1).latent_dist.sample(generator=generator) * self.vae.config.scaling_factor
        projector = self.drm.drm_projector
        tokens = torch.where(batch["drop"][:, None, None], projector.null(hq.shape[0]), projector(d))
        context = torch.cat([self.prompt[None].expand(hq.shape[0], -1, -1).to(tokens.dtype), tokens], dim=1)
        noise = torch.randn(latents.shape, generator=generator).to(self.device)
        timesteps = torch.randint(0, self.scheduler.config.num_train_timesteps, (hq.shape[0],), generator=generator).to(self.device)
        noisy = self.scheduler.add_noise(latents, noise, timesteps)
        hint_size = latents.shape[-1] * self.hint_factor
        hint = lq if lq.shape[-1] == hint_size else F.interpolate(lq, size=(hint_size, hint_size), mode="bicubic", antialias=True).clamp(0, 1)
        down, middle = self.controlnet(noisy, timesteps, encoder_hidden_states=context, controlnet_cond=hint, return_dict=False)
        prediction = self.unet(
            noisy, timesteps, encoder_hidden_states=context, down_block_additional_residuals=down, mid_block_additional_residual=middle
        ).sample
        target = noise if self.scheduler.config.prediction_type == "epsilon" else self.scheduler.get_velocity(latents, noise, timesteps)
        return F.mse_loss(prediction.float(), target.float())


def build_stage2(config: Stage2Config, device):
    from diffusers import ControlNetModel

    unet, vae, scheduler = load_base_model(config.base_model)
    for frozen in (unet, vae):
        frozen.requires_grad_(False).eval().to(device)
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=tuple(config.conditioning_channels)).to(device)
    drm = load_model(config.drm, (DEGRADATION_MODEL,)).module
    context_dim = unet.config.cross_attention_dim
    if drm.drm_projector is None or drm.config.tokens != config.tokens or drm.config.context_dim != context_dim:
        drm.add_projector(config.tokens, context_dim)
    drm.requires_grad_(False).eval().to(device)
    drm.drm_projector.requires_grad_(True).train()
    return Stage2Step(config, unet, vae, scheduler, controlnet, drm, prompt_embedding(config, context_dim), device)


def export_controlnet(controlnet, tokens: int, context_dim: int, path: str, dtype: torch.dtype = torch.float16) -> str:
    """A diffusers ControlNet as one .safetensors in diffusers' key layout (ComfyUI's ControlNetLoader
    reads it and infers the architecture from the keys), in fp16 as ControlNets are usually shared."""
    metadata = {
        "dfr.architecture": "DR-BFR ControlNet (diffusers)",
        "dfr.tokens": str(tokens),
        "dfr.context_dim": str(context_dim),
    }
    state_dict = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in controlnet.state_dict().items()}
    save_safetensors(state_dict, path, metadata)
    return path


def train_stage2(config: Stage2Config, faces: FaceImages | None = None, log=print) -> dict:
    """Train (or resume) and export; returns {"controlnet", "bundle", "step", "history", "trainer"}."""
    os.makedirs(config.out_dir, exist_ok=True)
    save_config(config, os.path.join(config.out_dir, "stage2.json"))
    device = pick_device(config.device)
    torch.manual_seed(config.seed)
    step_fn = build_stage2(config, device)
    faces = faces or FaceImages.from_sources(config.faces, config.resolution)
    optimizer = torch.optim.AdamW([
        {"params": step_fn.controlnet.parameters(), "lr": config.lr_controlnet},
        {"params": step_fn.drm.drm_projector.parameters(), "lr": config.lr_projector},
    ])
    run = Resumable(config.out_dir, {"controlnet": step_fn.controlnet, "projector": step_fn.drm.drm_projector}, optimizer, config.seed)
    if run.resume():
        log(f"stage 2: resumed at step {run.step} from {config.out_dir}")

    def one_step():
        batch = step_fn.batch(faces, run.rng, run.generator)
        with autocast(device, config.bf16):
            return {"loss": step_fn.losses(batch)}

    step_fn.controlnet.train()
    run_steps(run, config, "stage 2", one_step, ("loss",), log)
    step_fn.controlnet.eval()
    step_fn.drm.eval()
    controlnet = export_controlnet(
        step_fn.controlnet, config.tokens, step_fn.drm.config.context_dim, os.path.join(config.out_dir, "dr_controlnet.safetensors")
    )
    bundle = export_bundle(step_fn.drm, os.path.join(config.out_dir, "drm_projector.safetensors"))
    log(f"stage 2: step {run.step}, ControlNet {controlnet}, DRM + projector {bundle}")
    return {"controlnet": controlnet, "bundle": bundle, "step": run.step, "history": run.history, "trainer": step_fn}
