"""L2-regularised logistic regression for many layers at once: one batched L-BFGS in torch.

Each layer is an independent problem; they share one tensor program (per-layer step sizes,
histories and convergence flags), closed-form gradients (no autograd) and run on the tensors'
device. Binary problems use one sigmoid output, multi-class problems a softmax over K outputs.

Objective per layer (the scikit-learn convention, ``l2 = 1 / C``)::

    sum_i CE(softmax(W x_i + b), y_i) + l2 / 2 * ||W||^2      (b is not penalised)

>>> x = torch.randn(3, 200, 8); y = (x[0, :, 0] > 0).long()
>>> w, b = fit_logistic(x, y, n_classes=2)
>>> w.shape, b.shape
(torch.Size([3, 1, 8]), torch.Size([3, 1]))
"""
from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor


def _scores(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
    """(L, n, d) x (L, k, d) -> (L, n, k). On CPU a loop of matrix-vector products is fastest for
    k = 1 and one bmm for k > 1 (measured), so the path depends on k."""
    if w.shape[1] == 1:
        return torch.stack([torch.addmv(b[l], x[l], w[l, 0]) for l in range(x.shape[0])]).unsqueeze(-1)
    return torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))


def _back(x: Tensor, residual: Tensor) -> Tensor:
    """(L, n, d), (L, n, k) -> (L, k, d): the data term of the weight gradient."""
    if residual.shape[-1] == 1:
        return torch.stack([torch.mv(x[l].T, residual[l, :, 0]) for l in range(x.shape[0])]).unsqueeze(1)
    return torch.bmm(residual.transpose(1, 2), x)


def _loss_grad(x: Tensor, y: Tensor, theta: Tensor, k: int, l2: float) -> tuple[Tensor, Tensor]:
    """Loss (L,) and gradient (L, k * (d + 1)) at ``theta`` = [W | b] flattened."""
    n_layers, _, d = x.shape
    params = theta.view(n_layers, k, d + 1)
    w, b = params[..., :d], params[..., d]
    z = _scores(x, w, b)  # (L, n, k)
    if k == 1:  # sigmoid
        z = z.squeeze(-1)
        loss = torch.nn.functional.softplus(z).sum(1) - (z * y).sum(1)
        residual = (torch.sigmoid(z) - y).unsqueeze(-1)  # (L, n, 1)
    else:
        logp = z.log_softmax(-1)
        loss = -logp.gather(-1, y.long().expand(n_layers, -1).unsqueeze(-1)).squeeze(-1).sum(1)
        residual = logp.exp()
        residual.scatter_add_(-1, y.long().expand(n_layers, -1).unsqueeze(-1),
                              -torch.ones_like(residual[..., :1]))
    grad_w = _back(x, residual) + l2 * w  # (L, k, d)
    grad_b = residual.sum(1)  # (L, k)
    loss = loss + 0.5 * l2 * (w * w).sum((1, 2))
    return loss, torch.cat([grad_w, grad_b.unsqueeze(-1)], -1).reshape(n_layers, -1)


def _two_loop(g: Tensor, history: list[tuple[Tensor, Tensor, Tensor]]) -> Tensor:
    """L-BFGS direction -H g for every layer from its (s, y, 1/(y.s)) history."""
    q = g.clone()
    alphas = []
    for s, y, rho in reversed(history):
        a = rho * (s * q).sum(-1, keepdim=True)
        q -= a * y
        alphas.append(a)
    if history:
        s, y, _ = history[-1]
        gamma = (s * y).sum(-1, keepdim=True) / (y * y).sum(-1, keepdim=True).clamp_min(1e-30)
    else:
        gamma = 1.0 / g.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    r = gamma * q
    for (s, y, rho), a in zip(history, reversed(alphas)):
        r += s * (a - rho * (y * r).sum(-1, keepdim=True))
    return -r


def fit_logistic(x: Float[Tensor, "layers n d"], y: Int[Tensor, "n"], n_classes: int, l2: float = 1.0,
                 max_iter: int = 200, tol: float = 1e-4, history_size: int = 10,
                 ) -> tuple[Float[Tensor, "layers k d"], Float[Tensor, "layers k"]]:
    """Weights ``(L, k, d)`` and biases ``(L, k)`` (k = 1 for two classes, else ``n_classes``).

    Stops a layer when its gradient's largest entry is below ``tol`` times the number of rows
    (a mean-gradient tolerance), or when its loss stops changing.
    """
    n_layers, n, d = x.shape
    k = 1 if n_classes == 2 else n_classes
    y = y.to(x.device, x.dtype if k == 1 else torch.long)
    theta = torch.zeros(n_layers, k * (d + 1), device=x.device, dtype=x.dtype)
    loss, grad = _loss_grad(x, y, theta, k, l2)
    history: list[tuple[Tensor, Tensor, Tensor]] = []
    active = torch.ones(n_layers, 1, dtype=torch.bool, device=x.device)
    for _ in range(max_iter):
        direction = _two_loop(grad, history) * active
        slope = (grad * direction).sum(-1)
        uphill = (slope >= 0) & active.squeeze(-1)  # a bad history: fall back to steepest descent for that layer
        if uphill.any():
            direction[uphill] = -grad[uphill]
            slope = (grad * direction).sum(-1)
        step = torch.ones(n_layers, device=x.device, dtype=x.dtype)
        for _ in range(30):  # backtracking (Armijo), per layer
            new_theta = theta + step.unsqueeze(-1) * direction
            new_loss, new_grad = _loss_grad(x, y, new_theta, k, l2)
            ok = new_loss <= loss + 1e-4 * step * slope
            if ok.all():
                break
            step = torch.where(ok, step, step * 0.5)
        s, g_diff = new_theta - theta, new_grad - grad
        sy = (s * g_diff).sum(-1, keepdim=True)
        curvature_ok = sy > 1e-10
        history.append((s * curvature_ok, g_diff * curvature_ok, torch.where(curvature_ok, 1.0 / sy, 0.0)))
        history = history[-history_size:]
        change = (loss - new_loss).abs() <= 1e-9 * loss.abs().clamp_min(1.0)
        theta, loss, grad = new_theta, new_loss, new_grad
        converged = (grad.abs().amax(-1) <= tol * n) | change
        active = active & ~converged.unsqueeze(-1)
        if not active.any():
            break
    params = theta.view(n_layers, k, d + 1)
    return params[..., :d].contiguous(), params[..., d].contiguous()
