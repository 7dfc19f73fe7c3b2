"""Symmetric Gram matrices ``XᵀX`` accumulated on the upper block triangle only.

A Gram is symmetric, so about a third of a full product is redundant; :func:`add_gram` computes
the blocks on and above the diagonal (float32 products, any accumulator dtype) and :func:`mirror`
fills in the rest once. Used for MLP key statistics and ridge probes.

>>> x = torch.randn(100, 600)
>>> total = torch.zeros(600, 600, dtype=torch.float64)
>>> add_gram(total, x)
>>> torch.allclose(mirror(total), (x.T @ x).double(), atol=1e-3)
True
"""
from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor


def block_size(d: int, blocks: int) -> int:
    """Rows and columns per block of the ``(d, d)`` Gram that :func:`add_gram` and :func:`mirror` share."""
    return max(256, -(-d // blocks))


def add_gram(total: Float[Tensor, "d d"], keys: Float[Tensor, "n d"], blocks: int = 4) -> None:
    """``total += keysᵀ keys`` on the upper block triangle only (about 5/8 of the full product for
    4 blocks); :func:`mirror` fills the lower triangle once at the end. ``total`` may be float64."""
    d = keys.shape[1]
    step = block_size(d, blocks)
    for i in range(0, d, step):
        total[i:i + step, i:].add_(keys[:, i:i + step].T @ keys[:, i:])  # (step, d - i)


def mirror(total: Float[Tensor, "*batch d d"], blocks: int = 4) -> Tensor:
    """The symmetric matrix (or matrices) whose upper block triangle :func:`add_gram` accumulated."""
    d = total.shape[-1]
    step = block_size(d, blocks)
    block_id = torch.arange(d, device=total.device) // step
    upper = block_id[:, None] <= block_id[None, :]  # the entries add_gram wrote
    return torch.where(upper, total, total.transpose(-1, -2))
