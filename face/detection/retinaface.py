"""RetinaFace detection: prior boxes, decoding and NMS, as facexlib does them, batched.

Good for: faces in any pose it was trained on (WIDER FACE), down to about 16 px at detection
resolution, with landmarks regressed by the network. Needs the released weights in
models/facedetection.
"""
from __future__ import annotations

import numpy as np
import torch

from . import Detection, FaceDetector, non_maximum_suppression

PRIOR_MIN_SIZES = ((16, 32), (64, 128), (256, 512))
PRIOR_STEPS = (8, 16, 32)
VARIANCES = (0.1, 0.2)
BGR_MEAN = (104.0, 117.0, 123.0)
NMS_IOU = 0.4
# photos per forward pass are limited to this many pixels in total
MAX_BATCH_PIXELS = 4 * 2048 * 2048

WEIGHT_FILES = {
    "retinaface_resnet50": "detection_Resnet50_Final.pth",
    "retinaface_mobile0.25": "detection_mobilenet0.25_Final.pth",
}
WEIGHT_URLS = {
    "retinaface_resnet50": "https://github.com/xinntao/facexlib/releases/download/v0.1.0/detection_Resnet50_Final.pth",
    "retinaface_mobile0.25": "https://github.com/xinntao/facexlib/releases/download/v0.1.0/detection_mobilenet0.25_Final.pth",
}


def prior_boxes(height: int, width: int) -> torch.Tensor:
    """Anchor boxes (cx, cy, w, h), normalised to the image, in facexlib's order."""
    priors = []
    for (small, large), step in zip(PRIOR_MIN_SIZES, PRIOR_STEPS):
        rows, cols = -(-height // step), -(-width // step)
        cy, cx = torch.meshgrid(
            (torch.arange(rows, dtype=torch.float64) + 0.5) * step / height,
            (torch.arange(cols, dtype=torch.float64) + 0.5) * step / width,
            indexing="ij",
        )
        per_size = [
            torch.stack([cx, cy, torch.full_like(cx, s / width), torch.full_like(cy, s / height)], dim=-1)
            for s in (small, large)
        ]
        priors.append(torch.stack(per_size, dim=2).reshape(-1, 4))
    return torch.cat(priors).float()


def decode_boxes(offsets: torch.Tensor, priors: torch.Tensor) -> torch.Tensor:
    """[.., P, 4] offsets -> (x1, y1, x2, y2) normalised."""
    centres = priors[..., :2] + offsets[..., :2] * VARIANCES[0] * priors[..., 2:]
    sizes = priors[..., 2:] * torch.exp(offsets[..., 2:] * VARIANCES[1])
    return torch.cat([centres - sizes / 2, centres + sizes / 2], dim=-1)


def decode_landmarks(offsets: torch.Tensor, priors: torch.Tensor) -> torch.Tensor:
    """[.., P, 10] offsets -> five (x, y) points normalised, [.., P, 5, 2]."""
    offsets = offsets.reshape(*offsets.shape[:-1], 5, 2)
    return priors[..., None, :2] + offsets * VARIANCES[0] * priors[..., None, 2:]


class RetinaFaceDetector(FaceDetector):
    summary = "RetinaFace: accurate boxes and landmarks in most poses; needs its weight file"

    def __init__(self, module: torch.nn.Module, name: str = "retinaface", device=None, min_score: float = 0.5):
        self.module = module
        self.name = name
        self.device = device or next(module.parameters()).device
        self.dtype = next(module.parameters()).dtype
        self.min_score = min_score

    @torch.no_grad()
    def detect_resized(self, photos):
        results: list[list[Detection]] = [[] for _ in photos]
        by_size: dict[tuple[int, int], list[int]] = {}
        for index, photo in enumerate(photos):
            by_size.setdefault(photo.shape[:2], []).append(index)
        for (height, width), indices in by_size.items():
            priors = prior_boxes(height, width).to(self.device)
            scale = torch.tensor([width, height], dtype=torch.float32, device=self.device)
            per_batch = max(1, MAX_BATCH_PIXELS // (height * width))
            for start in range(0, len(indices), per_batch):
                chunk = indices[start:start + per_batch]
                batch = torch.from_numpy(np.stack([photos[i][..., ::-1] for i in chunk]).astype(np.float32))
                batch = batch.to(self.device).permute(0, 3, 1, 2)
                batch = (batch - torch.tensor(BGR_MEAN, device=self.device).view(1, 3, 1, 1)).to(self.dtype)
                offsets, probabilities, landmark_offsets = (t.float() for t in self.module(batch))
                boxes = (decode_boxes(offsets, priors).reshape(len(chunk), -1, 2, 2) * scale).reshape(len(chunk), -1, 4)
                landmarks = decode_landmarks(landmark_offsets, priors) * scale
                scores = probabilities[..., 1]
                for row, image_index in enumerate(chunk):
                    results[image_index] = self._select(boxes[row], landmarks[row], scores[row])
        return results

    def _select(self, boxes, landmarks, scores) -> list[Detection]:
        keep = scores > self.min_score
        boxes, landmarks, scores = boxes[keep].cpu().numpy(), landmarks[keep].cpu().numpy(), scores[keep].cpu().numpy()
        order = np.argsort(-scores, kind="stable")
        boxes, landmarks, scores = boxes[order], landmarks[order], scores[order]
        kept = non_maximum_suppression(boxes, scores, NMS_IOU)
        return [Detection(boxes[i].astype(np.float64), landmarks[i].astype(np.float64), float(scores[i])) for i in kept]
