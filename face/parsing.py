"""Face-parsing masks: which pixels of a crop are face (restored) and which stay original.

Follows facexlib's paste-back: the parser runs on the restored crop at 512; labels are mapped to
face / not face; the map is blurred twice (101 px, sigma 11), a 10 px border is cleared, and the
result is resized to the crop size. Hair, hat, neck, clothes and background (hands, microphones,
anything else) keep the original photo.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

PARSING_INPUT_SIZE = 512
# CelebAMask-HQ labels (ParseNet and BiSeNet share them)
LABELS = (
    "background", "skin", "left brow", "right brow", "left eye", "right eye", "eyeglasses", "left ear",
    "right ear", "earring", "nose", "mouth", "upper lip", "lower lip", "neck", "necklace", "cloth", "hair", "hat",
)
NOT_FACE = {"background", "neck", "cloth", "hair", "hat"}
ACCESSORIES = {"eyeglasses", "earring", "necklace"}
BLUR_KERNEL, BLUR_SIGMA, CLEARED_BORDER = 101, 11, 10

# facexlib's normalisations of the parser input (RGB in 0..1)
INPUT_NORMALISATION = {
    "ParseNet": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "BiSeNet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


def face_label_table(accessories_are_face: bool = True) -> torch.Tensor:
    excluded = NOT_FACE if accessories_are_face else NOT_FACE | ACCESSORIES
    return torch.tensor([name not in excluded for name in LABELS])


@torch.no_grad()
def parse_labels(module: torch.nn.Module, architecture: str, crops: torch.Tensor) -> torch.Tensor:
    """crops: [N, 3, S, S] RGB 0..1 on the module's device -> [N, 512, 512] label maps."""
    mean, std = (torch.tensor(v, device=crops.device).view(1, 3, 1, 1) for v in INPUT_NORMALISATION[architecture])
    dtype = next(module.parameters()).dtype
    if crops.shape[-1] != PARSING_INPUT_SIZE:
        crops = F.interpolate(crops, size=(PARSING_INPUT_SIZE,) * 2, mode="bilinear", align_corners=False)
    logits = module(((crops - mean) / std).to(dtype))[0]
    return logits.float().argmax(dim=1)


def soft_parse_mask(labels: np.ndarray, crop_size: int, accessories_are_face: bool = True) -> np.ndarray:
    """One [512, 512] label map -> a soft face mask [crop_size, crop_size] in 0..1."""
    face = face_label_table(accessories_are_face).numpy()[labels]
    mask = face.astype(np.float32) * 255.0
    mask = cv2.GaussianBlur(mask, (BLUR_KERNEL, BLUR_KERNEL), BLUR_SIGMA)
    mask = cv2.GaussianBlur(mask, (BLUR_KERNEL, BLUR_KERNEL), BLUR_SIGMA)
    b = CLEARED_BORDER
    mask[:b, :] = 0
    mask[-b:, :] = 0
    mask[:, :b] = 0
    mask[:, -b:] = 0
    mask /= 255.0
    if crop_size != mask.shape[0]:
        mask = cv2.resize(mask, (crop_size, crop_size), interpolation=cv2.INTER_LINEAR)
    return mask
