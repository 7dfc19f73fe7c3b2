"""Recover a rank-one edit ``W' = W + u vᵀ`` from two checkpoints, and undo it.

``u`` lives in the residual stream (what the edit writes), ``v`` in the MLP key space (what it
responds to). Both are returned in the ``(d_out, d_in)`` orientation whatever the storage
layout (GPT-2's Conv1D stores ``(d_in, d_out)``).

>>> # rec = recover_rank_one("factworld", "/tmp/edited", report)
>>> # rec.layer, rec.relative_residual   -> (4, 1e-7)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from jaxtyping import Float
from torch import Tensor

from editing.forensics.diff import DiffReport
from editing.forensics.tensors import TensorIndex
from workbench.errors import WorkbenchError
from workbench.io import atomic_directory

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
    import shutil

    from safetensors import safe_open
    from safetensors.torch import save_file

    index = TensorIndex(edited)
    transposed = _stored_transposed(index)
    with atomic_directory(out) as tmp:
        for path in index.files:  # one shard in memory at a time
            with safe_open(str(path), "pt") as handle:
                tensors = {key: handle.get_tensor(key) for key in handle.keys()}
                metadata = handle.metadata()
            if recovery.name in tensors:
                w = tensors[recovery.name]
                update = torch.outer(recovery.u.double(), recovery.v.double())
                w64 = w.double() - (update.T if transposed else update)
                tensors[recovery.name] = w64.to(w.dtype).contiguous()
            save_file(tensors, str(tmp / path.name), metadata=metadata or {"format": "pt"})
        for extra in index.source.directory.iterdir():
            if extra.is_file() and extra.suffix != ".safetensors" and extra.name != "edits.json":
                shutil.copy2(extra, tmp / extra.name)
    return Path(out)


def max_abs_diff(a: str | Path, b: str | Path) -> float:
    """Largest absolute difference between the tensors of two checkpoints (streamed, one pair at a time)."""
    first, second = TensorIndex(str(a)), TensorIndex(str(b))
    if set(first.where) != set(second.where):
        raise WorkbenchError(f"{a} and {b} hold different tensor names")
    return max((float((x.double() - y.double()).abs().max()) for _, x, y in first.iter_pairs(second)), default=0.0)
