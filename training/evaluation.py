"""How well a degradation representation tells degradations apart, on faces it has not seen.

Eight fixed degradation classes (four kinds x two severities) are applied to held-out faces; then
- pair AUC: for every pair of LQ images of *different* faces, does the cosine similarity of their
  embeddings rank same-class pairs above different-class pairs? (chance: 0.5)
- centroid accuracy: each LQ image is classified by the nearest class centroid of the embeddings of
  the *training* faces (chance: 1/8).
- severity ladder: five steps of growing damage (all four kinds at once) on the held-out faces: the
  severity head's score per face and step, which should rise step by step.
Also `real_faces` gathers the project's real test faces (see DEVELOPERS.md: shared images,
scikit-image's astronaut, matplotlib's Grace Hopper).
"""
from __future__ import annotations

import glob
import os

import numpy as np
import torch

from ..degradations.synthetic import DegradationParams, degrade_batch
from ..models.degradation import normalise_severity, severity_score

# (name, parameters): one degradation kind at a time, mild and strong
CLASSES = [
    ("blur mild", DegradationParams(2.0, 2.0, 0.0, 1.0, 0.0, 100)),
    ("blur strong", DegradationParams(5.0, 5.0, 0.0, 1.0, 0.0, 100)),
    ("noise mild", DegradationParams(0.1, 0.1, 0.0, 1.0, 5.0, 100)),
    ("noise strong", DegradationParams(0.1, 0.1, 0.0, 1.0, 15.0, 100)),
    ("jpeg mild", DegradationParams(0.1, 0.1, 0.0, 1.0, 0.0, 70)),
    ("jpeg strong", DegradationParams(0.1, 0.1, 0.0, 1.0, 0.0, 35)),
    ("downscale mild", DegradationParams(0.1, 0.1, 0.0, 2.0, 0.0, 100)),
    ("downscale strong", DegradationParams(0.1, 0.1, 0.0, 6.0, 0.0, 100)),
]

# (blur sigma px, downscale factor, noise sigma /255, JPEG quality): from nearly clean to very damaged
SEVERITY_LADDER = ((0.1, 1.0, 0.0, 100), (1.5, 1.5, 4.0, 85), (3.0, 2.5, 8.0, 65), (5.0, 4.0, 14.0, 45), (8.0, 6.0, 20.0, 30))


def real_faces(shared: str | None, size: int = 256) -> torch.Tensor:
    """Aligned real faces [N, 3, size, size] uint8: ../shared/images/aligned, and the faces the
    built-in detector finds in ../shared/images/whole, astronaut and grace_hopper."""
    from matplotlib import cbook
    from PIL import Image
    import skimage.data

    from ..face.detection.haar import HaarDetector
    from ..face.find import find_faces
    from .data import square_image

    photos = [skimage.data.astronaut()]
    with cbook.get_sample_data("grace_hopper.jpg") as handle:
        photos.append(np.asarray(Image.open(handle).convert("RGB")))
    aligned = []
    if shared:
        photos += [np.asarray(Image.open(p).convert("RGB")) for p in sorted(glob.glob(os.path.join(shared, "images", "whole", "*")))]
        aligned = [square_image(p, size) for p in sorted(glob.glob(os.path.join(shared, "images", "aligned", "*.png")))]
    detector = HaarDetector()
    crops = []
    for photo in photos:
        face_set = find_faces(torch.from_numpy(photo.astype(np.float32) / 255)[None], detector, 512, min_score=0.8, min_size=16)
        crops += [square_image((c.numpy() * 255).round().astype(np.uint8), size) for c in face_set.crops]
    return torch.stack(crops + aligned)


@torch.no_grad()
def class_embeddings(model, faces: torch.Tensor, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Embeddings [N * 8, dim] of every face under every class, and the class labels."""
    generator = torch.Generator().manual_seed(seed)
    embeddings, labels = [], []
    images = faces.float() / 255.0
    for label, (_, params) in enumerate(CLASSES):
        lq = degrade_batch(images, [params] * images.shape[0], generator)
        embeddings.append(model.encode(lq))
        labels += [label] * images.shape[0]
    return torch.cat(embeddings), torch.tensor(labels)


def pair_auc(embeddings: torch.Tensor, labels: torch.Tensor, faces: torch.Tensor) -> float:
    """ROC AUC of cosine similarity for same-class vs different-class pairs of different faces."""
    z = torch.nn.functional.normalize(embeddings, dim=1)
    similarity = (z @ z.t()).numpy()
    same_class = (labels[:, None] == labels[None, :]).numpy()
    different_face = (faces[:, None] != faces[None, :]).numpy()
    upper = np.triu(np.ones_like(same_class, dtype=bool), 1) & different_face
    scores, truth = similarity[upper], same_class[upper]
    order = np.argsort(scores)
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    positives = truth.sum()
    return float((ranks[truth].sum() - positives * (positives + 1) / 2) / (positives * (len(truth) - positives)))


def centroid_accuracy(train_embeddings, train_labels, test_embeddings, test_labels) -> float:
    z_train = torch.nn.functional.normalize(train_embeddings, dim=1)
    centroids = torch.stack([z_train[train_labels == c].mean(0) for c in range(len(CLASSES))])
    z_test = torch.nn.functional.normalize(test_embeddings, dim=1)
    predicted = (z_test @ torch.nn.functional.normalize(centroids, dim=1).t()).argmax(1)
    return float((predicted == test_labels).float().mean())


def evaluate(model, train_faces: torch.Tensor, test_faces: torch.Tensor) -> dict:
    model.eval()
    train_z, train_y = class_embeddings(model, train_faces)
    test_z, test_y = class_embeddings(model, test_faces, seed=1)
    face_ids = torch.arange(test_faces.shape[0]).repeat(len(CLASSES))
    return {
        "pair_auc": pair_auc(test_z, test_y, face_ids),
        "centroid_accuracy": centroid_accuracy(train_z, train_y, test_z, test_y),
        "chance_accuracy": 1 / len(CLASSES),
        "test_faces": int(test_faces.shape[0]),
    }


@torch.no_grad()
def severity_ladder(model, faces: torch.Tensor) -> torch.Tensor:
    """[steps, faces]: the severity score (0 clean .. 1 very damaged) the model gives each face at
    each step of SEVERITY_LADDER (the same noise for every step)."""
    model.eval()
    images = faces.float() / 255.0
    scores = []
    for blur, scale, noise, quality in SEVERITY_LADDER:
        params = [DegradationParams(blur, blur, 0.0, scale, noise, quality)] * images.shape[0]
        lq = degrade_batch(images, params, torch.Generator().manual_seed(0))
        scores.append(severity_score(model.severity(model.encode(lq))).reshape(-1))
    return torch.stack(scores)


def ladder_true_scores() -> list[float]:
    """The severity score of each ladder step's own parameters (what a perfect head would give)."""
    return [float(severity_score(torch.tensor(normalise_severity(b, s, n, q)))) for b, s, n, q in SEVERITY_LADDER]
