"""Weight view: per-layer statistics and raw slices of any weight matrix.

These are the raw numbers a user sees when they "open the black box": nothing in them says
"Paris", which is the point of the rest of the workbench.

>>> from workbench import load
>>> s = load("factworld", device="cpu")
>>> stats = weight_stats(s)
>>> stats[0]["matrix"]
'attn_q'
"""
from __future__ import annotations

import torch

from workbench.errors import WorkbenchError
from workbench.modules import available, matrix


def weight_stats(session) -> list[dict]:
    """One row per (layer, matrix): shape, mean, std, Frobenius norm, max |w|, and its share of zeros."""
    rows = []
    names = available(session)
    with torch.no_grad():
        for layer in range(session.n_layers):
            for name in names:
                w = matrix(session, layer, name).as_out_in().float()
                rows.append({"layer": layer, "matrix": name, "shape": list(w.shape), "mean": float(w.mean()),
                             "std": float(w.std()), "norm": float(w.norm()), "max_abs": float(w.abs().max()),
                             "zeros": float((w == 0).float().mean())})
    return rows


def weight_slice(session, layer: int, name: str = "mlp_out", rows: tuple[int, int] = (0, 64),
                 cols: tuple[int, int] = (0, 64)) -> torch.Tensor:
    """A ``(d_out, d_in)`` window ``[rows) x [cols)`` of a weight matrix, as a float32 CPU tensor."""
    w = matrix(session, layer, name).as_out_in()
    (r0, r1), (c0, c1) = rows, cols
    if not (0 <= r0 < r1 and 0 <= c0 < c1):
        raise WorkbenchError(f"empty or negative slice rows={rows} cols={cols}: give start < end, both >= 0")
    if r0 >= w.shape[0] or c0 >= w.shape[1]:
        raise WorkbenchError(f"slice starts outside the {name} matrix of shape {tuple(w.shape)}")
    return w[r0:r1, c0:c1].detach().float().cpu().clone()
