"""Held-out scores of a probe: accuracy and AUC (classes), R² and great-circle error in km (places).

>>> auc(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1]))
0.75
"""
from __future__ import annotations

import math

import torch
from jaxtyping import Float, Int
from torch import Tensor

EARTH_RADIUS_KM = 6371.0


def auc(scores: Float[Tensor, "n"], labels: Int[Tensor, "n"]) -> float:
    """Area under the ROC curve (Mann-Whitney, ties counted half); NaN with a single class."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    if len(pos) == 0 or len(neg) == 0:
        return math.nan
    ranks = _ranks(torch.cat([pos, neg]).double())
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def _ranks(values: Tensor) -> Tensor:
    """1-based ranks with ties averaged."""
    order = values.argsort()
    sorted_vals = values[order]
    ranks = torch.empty_like(values)
    ranks[order] = torch.arange(1, len(values) + 1, dtype=values.dtype)
    unique, inverse = sorted_vals.unique(return_inverse=True)
    if len(unique) < len(values):  # average the ranks of ties
        sums = torch.zeros(len(unique), dtype=values.dtype).index_add_(0, inverse, ranks[order])
        counts = torch.bincount(inverse, minlength=len(unique)).to(values.dtype)
        ranks[order] = (sums / counts)[inverse]
    return ranks


def classification_scores(scores: Float[Tensor, "n k"], labels: Int[Tensor, "n"]) -> dict[str, float]:
    """Accuracy, balanced accuracy (mean recall over the classes present) and AUC (binary) or
    one-vs-rest macro AUC (multi-class)."""
    if scores.shape[1] == 1:
        pred = (scores[:, 0] > 0).long()
        area = auc(scores[:, 0], labels)
    else:
        pred = scores.argmax(-1)
        areas = [auc(scores[:, c] - scores.logsumexp(-1), (labels == c).long()) for c in labels.unique().tolist()]
        areas = [a for a in areas if not math.isnan(a)]
        area = sum(areas) / len(areas) if areas else math.nan
    recalls = [float((pred[labels == c] == c).float().mean()) for c in labels.unique().tolist()]
    return {"accuracy": float((pred == labels).float().mean()), "balanced_accuracy": sum(recalls) / len(recalls),
            "auc": area}


def r2(pred: Float[Tensor, "n t"], target: Float[Tensor, "n t"]) -> Float[Tensor, "t"]:
    """Coefficient of determination per target (1 - SSE / SST around the test mean)."""
    sse = ((pred - target) ** 2).sum(0)
    sst = ((target - target.mean(0)) ** 2).sum(0).clamp_min(1e-12)
    return 1 - sse / sst


def haversine_km(a: Float[Tensor, "n 2"], b: Float[Tensor, "n 2"]) -> Float[Tensor, "n"]:
    """Great-circle distance between (latitude, longitude) pairs in degrees."""
    lat1, lon1, lat2, lon2 = (torch.deg2rad(t.double()) for t in (a[:, 0], a[:, 1], b[:, 0], b[:, 1]))
    h = torch.sin((lat2 - lat1) / 2) ** 2 + torch.cos(lat1) * torch.cos(lat2) * torch.sin((lon2 - lon1) / 2) ** 2
    return (2 * EARTH_RADIUS_KM * torch.asin(h.clamp(0, 1).sqrt())).float()


def regression_scores(pred: Float[Tensor, "n t"], target: Float[Tensor, "n t"],
                      coordinates: bool = False) -> dict[str, float]:
    """Mean R² over targets (and per target); with coordinates, the mean error in km."""
    per_target = r2(pred, target)
    out = {"r2": float(per_target.mean()), "r2_per_target": [float(v) for v in per_target]}
    if coordinates:
        clamped = torch.stack([pred[:, 0].clamp(-90, 90), pred[:, 1]], 1)
        out["km_error"] = float(haversine_km(clamped, target).mean())
    return out
