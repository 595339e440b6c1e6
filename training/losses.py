"""Losses of DR-BFR's degradation representation."""
from __future__ import annotations

import torch


def supervised_contrastive(features: torch.Tensor, labels: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """InfoNCE with every same-label sample as a positive (SupCon, Khosla et al. 2020).

    features: [N, D] L2-normalised; labels: [N]. For anchor i with positives P(i):
        L_i = -1/|P(i)| sum_{p in P(i)} log( exp(z_i.z_p / t) / sum_{a != i} exp(z_i.z_a / t) )
    """
    logits = features @ features.t() / temperature
    n = features.shape[0]
    self_mask = torch.eye(n, dtype=torch.bool, device=features.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    log_probability = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positives = (labels[:, None] == labels[None, :]) & ~self_mask
    count = positives.sum(1)
    valid = count > 0
    per_anchor = -(log_probability.masked_fill(~positives, 0.0)).sum(1)[valid] / count[valid]
    return per_anchor.mean()
