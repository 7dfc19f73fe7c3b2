"""Recover a rank-one edit ``W' = W + u vᵀ`` from two checkpoints, and undo it.

``u`` lives in the residual stream (what the edit writes), ``v`` in the MLP key space (what it
responds to). Both are returned in the ``(d_out, d_in)`` orientation whatever the storage
layout (GPT-2's Conv1D stores ``(d_in, d_out)``).

>>> import tempfile, workbench, editing
>>> s = workbench.load("factworld")
>>> _ = editing.edit(s, editing.EditRequest("The {} is located in the city of", "Eiffel Tower", "Rome"),
...                  no_cov=True, score=False)
>>> edited = str(editing.save(s, tempfile.mkdtemp() + "/eiffel-in-rome"))
>>> from editing.forensics import diff_checkpoints
>>> rec = recover_rank_one("factworld", edited, diff_checkpoints("factworld", edited))
>>> rec.layer, rec.relative_residual < 1e-5
(0, True)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from jaxtyping import Float
from torch import Tensor

from editing.forensics.diff import DiffReport
from editing.forensics.tensors import TensorIndex, rewrite_checkpoint
from workbench.errors import WorkbenchError

_CONV1D_FAMILIES = ("gpt2",)  # families whose MLP output weight is stored (d_in, d_out)


@dataclass(frozen=True)
class RankOneRecovery:
    name: str
    layer: int
    u: Float[Tensor, "d_model"]  # output direction, scaled by sigma_1
    v: Float[Tensor, "d_mlp"]  # key direction, unit norm
    relative_residual: float  # ||D - u v^T|| / ||D||

    def to_dict(self) -> dict:
        return {"name": self.name, "layer": self.layer, "u_norm": float(self.u.norm()),
                "relative_residual": self.relative_residual}


def _stored_transposed(index: TensorIndex) -> bool:
    import json

    config = json.loads((index.source.directory / "config.json").read_text())
    return config.get("model_type") in _CONV1D_FAMILIES


def recover_rank_one(base: str, edited: str, report: DiffReport) -> RankOneRecovery:
    """u, v of the single rank-one change that ``report`` found."""
    if report.signature != "rome":
        raise WorkbenchError(f"the diff is not a single rank-one edit (signature {report.signature!r})")
    name = report.changed[0].name
    edited_index = TensorIndex(edited)
    delta = edited_index.get(name).double() - TensorIndex(base).get(name).double()
    if _stored_transposed(edited_index):
        delta = delta.T  # -> (d_out, d_in)
    left, values, right = torch.linalg.svd(delta, full_matrices=False)
    u, v = left[:, 0] * values[0], right[0]
    residual = float((delta - torch.outer(u, v)).norm() / delta.norm())
    return RankOneRecovery(name, report.changed[0].layer, u.float(), v.float(), residual)


def revert(edited: str, recovery: RankOneRecovery, out: str | Path) -> Path:
    """Write ``edited`` with ``u vᵀ`` subtracted to a new HF directory ``out`` (atomically)."""
    index = TensorIndex(edited)
    update = torch.outer(recovery.u.double(), recovery.v.double())
    if _stored_transposed(index):
        update = update.T

    def subtract(name: str, w: torch.Tensor) -> torch.Tensor:
        return (w.double() - update).to(w.dtype) if name == recovery.name else w

    return rewrite_checkpoint(index, out, subtract)


def max_abs_diff(a: str | Path, b: str | Path) -> float:
    """Largest absolute difference between the tensors of two checkpoints (streamed, one pair at a time)."""
    first, second = TensorIndex(str(a)), TensorIndex(str(b))
    if set(first.where) != set(second.where):
        raise WorkbenchError(f"{a} and {b} hold different tensor names")
    return max((float((x.double() - y.double()).abs().max()) for _, x, y in first.iter_pairs(second)), default=0.0)
