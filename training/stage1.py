"""Stage 1: train the Degradation Representation Module.

Each batch samples `groups` degradations and applies each one to `faces_per_group` different faces
(explicit, content-decoupled positives); the encoder sees a random crop of each LQ face. Losses:
- InfoNCE over the projection head, positives = views sharing a degradation (SupCon form);
- reconstruction: the degrader, given the HQ crop and d, must produce the LQ crop without its noise
  (noise cannot be reproduced pixel for pixel; its strength is in the severity target);
- severity: the head regresses the normalised (blur, scale, noise, JPEG) of the degradation.

Resumable (checkpoints in out_dir), logs to out_dir/log.csv, bf16 autocast on a CUDA device, and
exports the bundle out_dir/drm.safetensors.
"""
from __future__ import annotations

import os
from dataclasses import asdict

import numpy as np
import torch
import torch.nn.functional as F

from ..degradations.synthetic import degrade_batch, sample_params
from ..models.checkpoint import save_safetensors
from ..models.degradation import DegradationModel, DRMConfig, bundle_metadata, normalise_severity
from .checkpoints import Resumable
from .config import Stage1Config, save_config
from .data import FaceImages
from .loop import run_steps
from .losses import supervised_contrastive


def pick_device(choice: str) -> torch.device:
    if choice != "auto":
        return torch.device(choice)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast(device: torch.device, bf16: bool):
    enabled = bf16 and device.type == "cuda" and torch.cuda.is_bf16_supported()
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def random_crops(tensors: list[torch.Tensor], size: int, rng: np.random.Generator) -> list[torch.Tensor]:
    """The same random crop position per sample across several [B, C, H, W] tensors."""
    b, _, h, w = tensors[0].shape
    tops, lefts = rng.integers(0, h - size + 1, b), rng.integers(0, w - size + 1, b)
    return [torch.stack([t[i, :, tops[i]:tops[i] + size, lefts[i]:lefts[i] + size] for i in range(b)]) for t in tensors]


def stage1_batch(faces: FaceImages, config: Stage1Config, rng: np.random.Generator, generator: torch.Generator, device):
    """(hq, lq, lq without noise, severity targets, group labels) crops for one step."""
    hq, params, labels = [], [], []
    for group in range(config.groups):
        degradation = sample_params(rng, config.preset)
        for index in rng.choice(len(faces), config.faces_per_group, replace=False):
            hq.append(faces.view(int(index), rng))
            params.append(degradation)
            labels.append(group)
    hq = torch.stack(hq).to(device)
    lq, clean = degrade_batch(hq, params, generator, with_clean=True)
    hq, lq, clean = random_crops([hq, lq, clean], config.crop, rng)
    severity = torch.tensor([normalise_severity(p.blur, p.scale, p.noise, p.jpeg) for p in params], device=device)
    return hq, lq, clean, severity, torch.tensor(labels, device=device)


def stage1_losses(model: DegradationModel, batch, config: Stage1Config) -> dict[str, torch.Tensor]:
    hq, lq, clean, severity, labels = batch
    d = model.encode(lq)
    contrastive = supervised_contrastive(model.contrastive_features(d), labels, config.temperature)
    reconstruction = F.l1_loss(model.drm_degrader(hq, d), clean)
    severity_loss = F.mse_loss(model.severity(d), severity)
    total = config.contrastive_weight * contrastive + config.reconstruction_weight * reconstruction + config.severity_weight * severity_loss
    return {"loss": total, "contrastive": contrastive, "reconstruction": reconstruction, "severity": severity_loss}


def export_bundle(model: DegradationModel, path: str) -> str:
    save_safetensors(model.state_dict(), path, bundle_metadata(model))
    return path


def train_stage1(config: Stage1Config, faces: FaceImages | None = None, log=print) -> dict:
    """Train (or resume) and export; returns {"bundle", "step", "history"}."""
    os.makedirs(config.out_dir, exist_ok=True)
    save_config(config, os.path.join(config.out_dir, "stage1.json"))
    device = pick_device(config.device)
    faces = faces or FaceImages.from_sources(config.faces, config.size)
    torch.manual_seed(config.seed)  # the initial weights
    model = DegradationModel(DRMConfig(dim=config.dim, widths=list(config.widths), image_size=config.size)).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    run = Resumable(config.out_dir, {"model": model}, optimizer, config.seed)
    if run.resume():
        log(f"stage 1: resumed at step {run.step} from {config.out_dir}")

    def one_step():
        batch = stage1_batch(faces, config, run.rng, run.generator, device)
        with autocast(device, config.bf16):
            return stage1_losses(model, batch, config)

    model.train()
    run_steps(run, config, "stage 1", one_step, ("loss", "contrastive", "reconstruction", "severity"), log)
    model.eval()
    bundle = export_bundle(model, os.path.join(config.out_dir, "drm.safetensors"))
    log(f"stage 1: step {run.step}, bundle {bundle}")
    return {"bundle": bundle, "step": run.step, "history": run.history, "model": model, "config": asdict(config)}
