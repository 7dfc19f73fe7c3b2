"""Ridge regression with every regularisation strength solved from one eigendecomposition per fold.

K-fold cross-validation needs only Gram matrices: one pass over the rows accumulates, per fold,
``X_fᵀX_f``, ``X_fᵀY_f``, the sums and ``Y_fᵀY_f``. For fold f the training Gram is the total
minus the fold's (centred by a rank-one correction), one ``eigh`` gives the solution for all
alphas at once, and the validation error follows from the fold's Gram without touching its rows
again. The chosen alpha (per target) is refitted on all rows from one more ``eigh``.

>>> x = torch.randn(500, 10); y = x @ torch.ones(10, 1) + 0.1 * torch.randn(500, 1)
>>> fit = fit_ridge_cv(x, y)
>>> float(fit.weight.sum()) > 9.5
True
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from workbench.activations import batches

ALPHAS = tuple(10.0 ** e for e in range(-3, 6))  # on standardised features: 1e-3 .. 1e5


@dataclass(frozen=True)
class RidgeFit:
    """Weights in raw feature space: ``y ≈ x @ weight.T + bias``."""

    weight: Tensor  # (targets, d)
    bias: Tensor  # (targets,)
    alpha: Tensor  # (targets,) the chosen strength (on standardised features)
    alphas: Tensor  # (n_alphas,)
    cv_mse: Tensor  # (n_alphas, targets) mean squared validation error
    mean: Tensor  # (d,) feature means of the training rows
    scale: Tensor  # (d,) feature standard deviations


def _moments(x: Tensor, y: Tensor, fold: Tensor, n_folds: int, chunk: int = 4096):
    """Per fold: Gram (F, d, d), X'Y (F, d, t), sums of x (F, d) and y (F, t), Y'Y diag (F, t), counts."""
    d, t = x.shape[1], y.shape[1]
    dev = x.device
    gram = torch.zeros(n_folds, d, d, dtype=torch.float64, device=dev)
    xy = torch.zeros(n_folds, d, t, dtype=torch.float64, device=dev)
    sx = torch.zeros(n_folds, d, dtype=torch.float64, device=dev)
    sy = torch.zeros(n_folds, t, dtype=torch.float64, device=dev)
    yy = torch.zeros(n_folds, t, dtype=torch.float64, device=dev)
    counts = torch.bincount(fold, minlength=n_folds).to(dev, torch.float64)
    for f in range(n_folds):
        rows = (fold == f).nonzero().flatten()
        for part in batches(len(rows), chunk, progress=False):
            xb, yb = x[rows[part]], y[rows[part]]  # float32 products, float64 accumulation
            gram[f] += (xb.T @ xb).double()
            xy[f] += (xb.T @ yb).double()
            sx[f] += xb.double().sum(0)
            sy[f] += yb.double().sum(0)
            yy[f] += (yb.double() ** 2).sum(0)
    return gram, xy, sx, sy, yy, counts


def _solve_all(gram_c: Tensor, xy_c: Tensor, alphas: Tensor) -> Tensor:
    """Weights (n_alphas, d, t) for every alpha from one eigh of the centred, standardised Gram.

    The eigh runs in float32 (several times faster than float64 on CPU; the Gram is standardised
    and the smallest alpha keeps the spectrum away from zero); the moments stay in float64.
    """
    evals, evecs = torch.linalg.eigh(gram_c.float())
    evals, evecs = evals.double().clamp_min(0), evecs.double()
    proj = evecs.T @ xy_c  # (d, t)
    scaled = proj.unsqueeze(0) / (evals.unsqueeze(0) + alphas.unsqueeze(1)).unsqueeze(-1)  # (A, d, t)
    return evecs.unsqueeze(0) @ scaled


def fit_ridge_cv(x: Float[Tensor, "n d"], y: Float[Tensor, "n targets"], alphas=ALPHAS, n_folds: int = 5,
                 seed: int = 0) -> RidgeFit:
    """Ridge on standardised features, alpha chosen per target by ``n_folds``-fold CV."""
    n, d = x.shape
    y = y.unsqueeze(1) if y.dim() == 1 else y
    alphas_t = torch.as_tensor(alphas, dtype=torch.float64)
    fold = torch.randperm(n, generator=torch.Generator().manual_seed(seed)) % n_folds
    gram, xy, sx, sy, yy, counts = _moments(x, y, fold, n_folds)
    g_all, xy_all, sx_all, sy_all, n_all = gram.sum(0), xy.sum(0), sx.sum(0), sy.sum(0), counts.sum()
    mean = sx_all / n_all
    scale = ((g_all.diagonal() / n_all - mean ** 2).clamp_min(0).sqrt()).clamp_min(1e-6)
    inv = 1.0 / scale

    def centred(g, xyv, sxv, syv, m):  # standardised Gram and X'Y of rows with these moments
        gc = g - torch.outer(sxv, sxv) / m
        xc = xyv - torch.outer(sxv, syv) / m
        return gc * inv[:, None] * inv[None, :], xc * inv[:, None]

    sse = torch.zeros(len(alphas_t), y.shape[1], dtype=torch.float64)
    for f in range(n_folds):
        m_tr = n_all - counts[f]
        g_tr, xy_tr, sx_tr, sy_tr = g_all - gram[f], xy_all - xy[f], sx_all - sx[f], sy_all - sy[f]
        weights = _solve_all(*centred(g_tr, xy_tr, sx_tr, sy_tr, m_tr), alphas_t)  # (A, d, t) standardised
        mu_x, mu_y = sx_tr / m_tr, sy_tr / m_tr
        # validation rows shifted by the training means, then standardised: x' = (x - mu_x) / scale
        n_f = counts[f]
        g_v = (gram[f] - torch.outer(sx[f], mu_x) - torch.outer(mu_x, sx[f]) + n_f * torch.outer(mu_x, mu_x))
        g_v = g_v * inv[:, None] * inv[None, :]
        xy_v = (xy[f] - torch.outer(sx[f], mu_y) - torch.outer(mu_x, sy[f]) + n_f * torch.outer(mu_x, mu_y))
        xy_v = xy_v * inv[:, None]
        yy_v = yy[f] - 2 * mu_y * sy[f] + n_f * mu_y ** 2  # (t,)
        cross = (weights * xy_v.unsqueeze(0)).sum(1)  # (A, t)
        quad = (weights * (g_v.unsqueeze(0) @ weights)).sum(1)  # (A, t)
        sse += yy_v.unsqueeze(0) - 2 * cross + quad
    cv_mse = sse / n_all
    best = cv_mse.argmin(0)  # (t,)
    g_c, xy_c = centred(g_all, xy_all, sx_all, sy_all, n_all)
    all_weights = _solve_all(g_c, xy_c, alphas_t)  # (A, d, t)
    w_std = torch.stack([all_weights[best[j], :, j] for j in range(y.shape[1])])  # (t, d)
    weight = w_std * inv.unsqueeze(0)  # raw feature space
    bias = sy_all / n_all - weight @ mean
    return RidgeFit(weight.float(), bias.float(), alphas_t[best].float(), alphas_t.float(), cv_mse.float(),
                    mean.float(), scale.float())
