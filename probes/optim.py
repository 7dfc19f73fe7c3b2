"""L2-regularised logistic regression for many layers at once: one batched L-BFGS in torch.

Each layer is an independent problem; they share one tensor program (per-layer step sizes,
histories and convergence), closed-form gradients (no autograd) and run on the tensors' device.
Binary problems use one sigmoid output, multi-class problems a softmax over K outputs.

Objective per layer (the scikit-learn convention, ``l2 = 1 / C``)::

    sum_i CE(softmax(W z_i + b), y_i) + l2 / 2 * ||W||^2      (b is not penalised)

where ``z = (x - mean) / scale`` when a normaliser is given; the standardised rows are never
formed (it is folded into the two products with ``x``). Why it is cheap: an iteration touches the
rows exactly twice, ``x @ direction`` and ``x.T @ residual``. The step along a direction is found
on the cached scores ``Z + t U`` (a 1-D Newton search, O(n)), so the line search needs no pass
over ``x``; the L-BFGS direction comes from the compact form (a few batched products with the
history instead of a Python loop over it); converged layers leave the batch.

>>> x = torch.randn(3, 200, 8); y = (x[0, :, 0] > 0).long()
>>> w, b = fit_logistic(x, y, n_classes=2)
>>> w.shape, b.shape
(torch.Size([3, 1, 8]), torch.Size([3, 1]))
"""
from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor


class _Rows:
    """The products with the rows of the still-active layers: ``(x - mean) / scale`` implicitly."""

    def __init__(self, x: Tensor, mean: Tensor | None, scale: Tensor | None):
        self.x, self.mean, self.scale = x, mean, scale  # (L, n, d), (L, 1, d), (L, 1, d)

    def _active(self, layers: Tensor) -> Tensor:
        """The rows of ``layers`` (A, n, d); no copy while every layer is still active."""
        return self.x if len(layers) == self.x.shape[0] else self.x[layers]

    def scores(self, layers: Tensor, w: Tensor, b: Tensor) -> Tensor:
        """(A, k, d), (A, k) for the layers ``layers`` (A,) -> (A, n, k)."""
        if self.scale is not None:
            w = w / self.scale[layers]
            b = b - (w * self.mean[layers]).sum(-1)
        if w.shape[1] == 1 and self.x.device.type == "cpu":  # matrix-vector products: a loop is fastest
            return torch.stack([torch.addmv(b[i, 0], self.x[l], w[i, 0])
                                for i, l in enumerate(layers.tolist())]).unsqueeze(-1)
        return torch.baddbmm(b.unsqueeze(1), self._active(layers), w.transpose(1, 2))

    def back(self, layers: Tensor, r: Tensor) -> Tensor:
        """Residuals (A, n, k) -> the data term of the weight gradient (A, k, d)."""
        if r.shape[-1] == 1 and self.x.device.type == "cpu":
            g = torch.stack([torch.mv(self.x[l].T, r[i, :, 0]) for i, l in enumerate(layers.tolist())]).unsqueeze(1)
        else:
            g = torch.bmm(r.transpose(1, 2), self._active(layers))
        if self.scale is not None:
            g = (g - r.sum(1).unsqueeze(-1) * self.mean[layers]) / self.scale[layers]
        return g


def _pointwise(z: Tensor, target: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Scores (A, n, k), one-hot (or 0/1) targets -> data loss (A,), residual p - y, probabilities."""
    if z.shape[-1] == 1:
        loss = (torch.nn.functional.softplus(z) - z * target).sum((1, 2))
        p = torch.sigmoid(z)
    else:
        logp = z.log_softmax(-1)
        loss = -(logp * target).sum((1, 2))
        p = logp.exp()
    return loss, p - target, p


def _step_length(z: Tensor, u: Tensor, target: Tensor, w: Tensor, dw: Tensor, l2: float,
                 slope: Tensor, iters: int = 6) -> Tensor:
    """Per layer, a step ``t`` along the direction with ``|phi'(t)| <= 0.5 |phi'(0)|`` where
    ``phi(t)`` = the objective at ``Z + t U`` (convex): safeguarded 1-D Newton inside a bracket,
    starting from the quasi-Newton step t = 1. O(n k) per trial: no pass over the rows."""
    wd, dd = (w * dw).sum((1, 2)), (dw * dw).sum((1, 2))
    t = torch.ones_like(slope)
    lo, hi = torch.zeros_like(t), torch.full_like(t, float("inf"))
    for _ in range(iters):
        zt = z + t.view(-1, 1, 1) * u
        _, residual, p = _pointwise(zt, target)
        d1 = (residual * u).sum((1, 2)) + l2 * (wd + t * dd)
        if u.shape[-1] == 1:
            curv = (p * (1 - p) * u * u).sum((1, 2))
        else:
            pu = (p * u).sum(-1)
            curv = ((p * u * u).sum(-1) - pu * pu).sum(1)
        d2 = curv + l2 * dd
        done = d1.abs() <= 0.5 * slope.abs()
        if done.all():
            break
        lo = torch.where(d1 < 0, t, lo)
        hi = torch.where(d1 >= 0, t, hi)
        newton = t - d1 / d2.clamp_min(1e-30)
        inside = (newton > lo) & (newton < hi)
        fallback = torch.where(torch.isinf(hi), 2 * t, (lo + hi) / 2)
        t = torch.where(done, t, torch.where(inside, newton, fallback))
    return t


def _direction(g: Tensor, s: Tensor | None, y: Tensor | None) -> Tensor:
    """L-BFGS direction ``-H g`` (A, P) from histories ``s``, ``y`` (A, m, P), compact form
    (Byrd, Nocedal & Schnabel 1994): H = gamma I + [S gamma Y] M [S gamma Y]^T."""
    if s is None:
        return -g / g.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    sy = s @ y.transpose(1, 2)  # (A, m, m): s_i . y_j
    r = sy.triu()
    diag = sy.diagonal(dim1=1, dim2=2)  # (A, m)
    gamma = (diag[:, -1] / (y[:, -1] * y[:, -1]).sum(-1).clamp_min(1e-30)).view(-1, 1)  # (A, 1)
    a = (s @ g.unsqueeze(-1))  # (A, m, 1)
    b = (y @ g.unsqueeze(-1))
    r_inv_a = torch.linalg.solve_triangular(r, a, upper=True)
    yy = y @ y.transpose(1, 2)
    inner = diag.unsqueeze(-1) * r_inv_a + gamma.unsqueeze(-1) * (yy @ r_inv_a) - gamma.unsqueeze(-1) * b
    p1 = torch.linalg.solve_triangular(r.transpose(1, 2), inner, upper=False)
    hg = gamma * g + (s.transpose(1, 2) @ p1).squeeze(-1) - gamma * (y.transpose(1, 2) @ r_inv_a).squeeze(-1)
    return -torch.where(torch.isfinite(hg).all(-1, keepdim=True), hg, g)  # a degenerate history: -g


def fit_logistic(x: Float[Tensor, "layers n d"], y: Int[Tensor, "n"], n_classes: int, l2: float = 1.0,
                 max_iter: int = 200, tol: float = 1e-4, history_size: int = 10,
                 mean: Float[Tensor, "layers 1 d"] | None = None, scale: Float[Tensor, "layers 1 d"] | None = None,
                 ) -> tuple[Float[Tensor, "layers k d"], Float[Tensor, "layers k"]]:
    """Weights ``(L, k, d)`` and biases ``(L, k)`` (k = 1 for two classes, else ``n_classes``), in
    the standardised space when ``mean`` / ``scale`` are given (``x`` stays raw).

    Stops a layer when its gradient's largest entry is below ``tol`` times the number of rows
    (scikit-learn's ``tol`` on its mean loss), or when its loss stops changing.
    """
    n_layers, n, d = x.shape
    k = 1 if n_classes == 2 else n_classes
    rows = _Rows(x, mean, scale)
    y = y.to(x.device).long()
    target = y.to(x.dtype).view(1, n, 1) if k == 1 else torch.nn.functional.one_hot(y, k).to(x.dtype).unsqueeze(0)
    prior = target.mean(1).clamp(1e-6, 1 - 1e-6)  # (1, k): the intercept-only optimum is the start
    bias0 = (prior.log() - (-prior).log1p()) if k == 1 else prior.log()
    theta = torch.zeros(n_layers, k, d + 1, dtype=x.dtype, device=x.device)
    theta[..., d] = bias0
    out = theta.clone()
    layers = torch.arange(n_layers, device=x.device)  # the active ones
    z = bias0.view(1, 1, k).expand(n_layers, n, k).clone()  # (A, n, k) scores
    loss, residual, _ = _pointwise(z, target)
    grad = torch.cat([rows.back(layers, residual), residual.sum(1).unsqueeze(-1)], -1)  # (A, k, d+1)
    s_hist = y_hist = None  # (A, m, P)
    for _ in range(max_iter):
        flat = grad.flatten(1)
        direction = _direction(flat, s_hist, y_hist)
        slope = (flat * direction).sum(-1)
        uphill = slope >= 0  # a bad history: steepest descent for that layer
        if uphill.any():
            direction = torch.where(uphill.unsqueeze(-1), -flat, direction)
            slope = (flat * direction).sum(-1)
        step = direction.view_as(theta)
        u = rows.scores(layers, step[..., :d], step[..., d])  # (A, n, k): the only product with x here
        w = theta[..., :d]
        t = _step_length(z, u, target, w, step[..., :d], l2, slope)
        s = t.view(-1, 1, 1) * step
        theta = theta + s
        z = z + t.view(-1, 1, 1) * u
        new_loss, residual, _ = _pointwise(z, target)
        new_w = theta[..., :d]
        new_loss = new_loss + 0.5 * l2 * (new_w * new_w).sum((1, 2))
        new_grad = torch.cat([rows.back(layers, residual) + l2 * new_w, residual.sum(1).unsqueeze(-1)], -1)
        pair_s, pair_y = s.flatten(1).unsqueeze(1), (new_grad - grad).flatten(1).unsqueeze(1)
        s_hist = pair_s if s_hist is None else torch.cat([s_hist, pair_s], 1)[:, -history_size:]
        y_hist = pair_y if y_hist is None else torch.cat([y_hist, pair_y], 1)[:, -history_size:]
        stalled = (loss - new_loss).abs() <= 1e-9 * new_loss.abs().clamp_min(1.0)
        loss, grad = new_loss, new_grad
        done = (grad.flatten(1).abs().amax(-1) <= tol * n) | stalled
        if done.any():  # converged layers leave the batch
            out[layers[done]] = theta[done]
            keep = ~done
            if not keep.any():
                break
            layers, theta, z, loss, grad = layers[keep], theta[keep], z[keep], loss[keep], grad[keep]
            s_hist, y_hist = s_hist[keep], y_hist[keep]
    else:
        out[layers] = theta
    return out[..., :d].contiguous(), out[..., d].contiguous()
