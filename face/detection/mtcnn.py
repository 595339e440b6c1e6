"""MTCNN detection (Zhang et al. 2016): P-Net proposals over an image pyramid, refined by R-Net and
O-Net, which also places the five landmarks. The steps, thresholds and coordinate conventions are
facenet-pytorch's (`MTCNN.detect`), whose results tests/test_detection_mtcnn.py reproduces.

Good for: faces from about 20 px at detection resolution, frontal to three-quarter views and
moderate roll, with landmarks regressed by a network; the weights (2 MB, MIT) ship with the pack,
so it needs no download. RetinaFace remains the stronger detector for hard poses and crowds.
The score is O-Net's face probability.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from . import Detection, FaceDetector, non_maximum_suppression

MIN_FACE_SIZE = 20  # px: the pyramid's first scale maps a face this wide to P-Net's 12 px window
PYRAMID_FACTOR = 0.709  # each pyramid level is this much smaller (about 1/sqrt(2))
THRESHOLDS = (0.6, 0.7, 0.7)  # face probability each stage keeps
CELL, STRIDE = 12, 2  # P-Net's window and stride, in pyramid-level pixels


def pyramid_scales(height: int, width: int) -> list[float]:
    """The scales at which P-Net sees the photo: faces of MIN_FACE_SIZE px up to the short side."""
    scale = 12.0 / MIN_FACE_SIZE
    smallest = min(height, width) * scale
    scales = []
    while smallest >= 12:
        scales.append(scale)
        scale *= PYRAMID_FACTOR
        smallest *= PYRAMID_FACTOR
    return scales


def normalised(pixels: torch.Tensor) -> torch.Tensor:
    return (pixels - 127.5) * 0.0078125


def proposals(correction: torch.Tensor, probability: torch.Tensor, scale: float) -> torch.Tensor:
    """P-Net's windows scoring at least THRESHOLDS[0], in photo pixels: [N, 9] = x1, y1, x2, y2,
    score, and the four box corrections."""
    keep = probability[0] >= THRESHOLDS[0]
    ys, xs = keep.nonzero(as_tuple=True)
    corners = torch.stack([xs, ys], dim=1).to(correction.dtype)
    top_left = ((STRIDE * corners + 1) / scale).floor()
    bottom_right = ((STRIDE * corners + CELL) / scale).floor()
    return torch.cat([top_left, bottom_right, probability[0][keep][:, None], correction[0][:, keep].T], dim=1)


def square(boxes: torch.Tensor) -> torch.Tensor:
    """Each box made square around its centre, with its longer side."""
    boxes = boxes.clone()
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = torch.maximum(width, height)
    boxes[:, 0] = boxes[:, 0] + width * 0.5 - side * 0.5
    boxes[:, 1] = boxes[:, 1] + height * 0.5 - side * 0.5
    boxes[:, 2:4] = boxes[:, :2] + side[:, None]
    return boxes


def corrected(boxes: torch.Tensor, correction: torch.Tensor) -> torch.Tensor:
    """R-Net's and O-Net's box corrections, as fractions of the (inclusive) box size."""
    boxes = boxes.clone()
    size = (boxes[:, 2:4] - boxes[:, 0:2] + 1).repeat(1, 2)
    boxes[:, :4] = boxes[:, :4] + correction * size
    return boxes


def windows(image: torch.Tensor, boxes: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each box's pixels (1-based, inclusive corners, cut at the photo's edges), area-resized to
    size x size and normalised; and which boxes had any pixels."""
    height, width = image.shape[-2:]
    corners = boxes[:, :4].trunc().int().cpu().numpy()
    x, y = np.maximum(corners[:, 0], 1), np.maximum(corners[:, 1], 1)
    ex, ey = np.minimum(corners[:, 2], width), np.minimum(corners[:, 3], height)
    valid = (ey > y - 1) & (ex > x - 1)
    patches = [F.interpolate(image[:, :, y[k] - 1:ey[k], x[k] - 1:ex[k]], size=(size, size), mode="area")
               for k in np.flatnonzero(valid)]
    empty = image.new_zeros((0, 3, size, size))
    return normalised(torch.cat(patches) if patches else empty), torch.from_numpy(valid).to(boxes.device)


def kept_by_suppression(boxes: torch.Tensor, threshold: float) -> list[int]:
    """Indices of the [N, >= 5] boxes (x1, y1, x2, y2, score) kept by NMS at this IoU threshold."""
    return non_maximum_suppression(boxes[:, :4].cpu().numpy(), boxes[:, 4].cpu().numpy(), threshold)


def min_overlap_suppression(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> list[int]:
    """O-Net's final NMS: overlap as a fraction of the smaller box (inclusive pixel areas), the
    highest score first, boxes overlapping a kept one by more than `threshold` dropped."""
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(scores)
    keep = []
    while order.size > 0:
        best, rest = order[-1], order[:-1]
        keep.append(int(best))
        width = np.maximum(0.0, np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]) + 1)
        height = np.maximum(0.0, np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]) + 1)
        overlap = width * height / np.minimum(area[best], area[rest])
        order = rest[overlap <= threshold]
    return keep


class MTCNNDetector(FaceDetector):
    name = "mtcnn (built-in)"
    summary = "MTCNN: no download, five regressed landmarks, faces from about 20 px"

    def __init__(self, networks: torch.nn.Module, device: torch.device):
        self.networks, self.device = networks, device

    def detect_resized(self, photos):
        return [self.detect_one(photo) for photo in photos]

    @torch.no_grad()
    def detect_one(self, photo: np.ndarray) -> list[Detection]:
        """Faces of one uint8 RGB HxWx3 photo."""
        image = torch.from_numpy(np.ascontiguousarray(photo[..., :3])).to(self.device).permute(2, 0, 1)[None].float()
        height, width = photo.shape[:2]
        candidates = []
        for scale in pyramid_scales(height, width):
            level = F.interpolate(image, size=(int(height * scale + 1), int(width * scale + 1)), mode="area")
            boxes = proposals(*self.networks.pnet(normalised(level)), scale)
            candidates.append(boxes[kept_by_suppression(boxes, 0.5)])
        boxes = torch.cat(candidates) if candidates else image.new_zeros((0, 9))
        boxes = boxes[kept_by_suppression(boxes, 0.7)]
        # P-Net's own corrections, as fractions of the (exclusive) box size
        size = (boxes[:, 2:4] - boxes[:, 0:2]).repeat(1, 2)
        boxes = square(torch.cat([boxes[:, :4] + boxes[:, 5:9] * size, boxes[:, 4:5]], dim=1))
        if len(boxes):
            boxes = self.refine(image, boxes)
        if not len(boxes):
            return []
        return self.output(image, boxes)

    def refine(self, image: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """R-Net: keep the boxes it scores above THRESHOLDS[1], suppress overlaps, correct, square."""
        patches, valid = windows(image, boxes, 24)
        boxes = boxes[valid]
        correction, probability = self.networks.rnet(patches)
        keep = probability > THRESHOLDS[1]
        boxes = torch.cat([boxes[keep, :4], probability[keep, None]], dim=1)
        pick = kept_by_suppression(boxes, 0.7)
        return square(corrected(boxes[pick], correction[keep][pick]))

    def output(self, image: torch.Tensor, boxes: torch.Tensor) -> list[Detection]:
        """O-Net: the final boxes, scores and five landmarks (0-based photo pixels)."""
        patches, valid = windows(image, boxes, 48)
        boxes = boxes[valid]
        correction, points, probability = self.networks.onet(patches)
        keep = probability > THRESHOLDS[2]
        boxes, points, correction = torch.cat([boxes[keep, :4], probability[keep, None]], dim=1), points[keep], correction[keep]
        size = boxes[:, 2:4] - boxes[:, 0:2] + 1
        landmarks = torch.stack([size[:, 0:1] * points[:, :5] + boxes[:, 0:1] - 1,
                                 size[:, 1:2] * points[:, 5:] + boxes[:, 1:2] - 1], dim=-1)
        boxes = corrected(boxes, correction)
        pick = min_overlap_suppression(boxes[:, :4].cpu().numpy(), boxes[:, 4].cpu().numpy(), 0.7)
        boxes, landmarks = boxes[pick].cpu().numpy().astype(np.float64), landmarks[pick].cpu().numpy().astype(np.float64)
        return [Detection(box[:4], points_xy, float(box[4])) for box, points_xy in zip(boxes, landmarks)]
