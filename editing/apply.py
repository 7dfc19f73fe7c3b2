"""Weight changes as values: apply them, undo them bit-exactly, never lose track of them.

An :class:`Edit` is a list of :class:`RankOneUpdate` values plus what produced them. Applying
one snapshots every touched parameter first (on CPU); :func:`undo` copies the snapshot back, so
the weights are ``torch.equal`` to what they were. :func:`guard` is the one context manager that
restores in a ``finally`` when anything fails mid-edit (MEMIT applies layer by layer).

Invariant: ``session.applied_edits`` lists exactly the edits now in the weights, oldest first.

>>> import torch, workbench
>>> s = workbench.load("factworld")
>>> change = Edit("by hand", (), (RankOneUpdate(0, torch.ones(s.info.d_model), torch.ones(s.info.d_mlp)),))
>>> before = s.weights_hash()
>>> record = apply_edit(s, change)              # in the weights now
>>> [e.method for e in undo(s)], s.weights_hash() == before    # bit-identical again
(['by hand'], True)
>>> with applied(s, change):                    # a temporary edit
...     s.weights_hash() == before
False
>>> s.weights_hash() == before
True
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from workbench.errors import WorkbenchError
from workbench.modules import matrix

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RankOneUpdate:
    """``W_out_in += outer(u, v)`` on the MLP output projection of ``layer`` (CPU float32 vectors).

    ``u`` lives in the output space (d_model), ``v`` in the key space (d_mlp).
    """

    layer: int
    u: Float[Tensor, "d_out"]
    v: Float[Tensor, "d_in"]
    matrix: str = "mlp_out"

    def delta(self, transposed: bool, dtype: torch.dtype, device) -> Tensor:
        """The update in the parameter's own layout (Conv1D stores ``(d_in, d_out)``)."""
        u, v = self.u.to(device, torch.float32), self.v.to(device, torch.float32)
        out = torch.outer(v, u) if transposed else torch.outer(u, v)
        return out.to(dtype)

    @property
    def norm(self) -> float:
        return float(self.u.norm() * self.v.norm())

    def to_dict(self) -> dict:
        return {"layer": self.layer, "matrix": self.matrix, "norm": self.norm,
                "u": self.u.tolist(), "v": self.v.tolist()}


@dataclass(frozen=True)
class Edit:
    """What an editing method decided: the updates, and everything needed to explain them."""

    method: str
    requests: tuple  # EditRequest values
    updates: tuple[RankOneUpdate, ...]
    hparams: dict = field(default_factory=dict)
    seed: int = 0
    stats: dict = field(default_factory=dict)  # losses, steps, key norms, ...

    @property
    def layers(self) -> list[int]:
        return sorted({u.layer for u in self.updates})

    def update_norms(self) -> dict[int, float]:
        """Frobenius norm of the summed update per layer."""
        out = {}
        for layer in self.layers:
            total = sum(torch.outer(u.u.double(), u.v.double()) for u in self.updates if u.layer == layer)
            out[layer] = float(total.norm())
        return out

    def to_dict(self, vectors: bool = False) -> dict:
        d = {"method": self.method, "layers": self.layers, "hparams": self.hparams, "seed": self.seed,
             "requests": [r.to_dict() for r in self.requests], "stats": self.stats,
             "update_norms": {str(k): v for k, v in self.update_norms().items()}}
        if vectors:
            d["updates"] = [u.to_dict() for u in self.updates]
        return d

    @classmethod
    def from_dict(cls, row: dict) -> "Edit":
        """The edit of a :meth:`to_dict` row (with ``updates`` vectors when recorded: exact float32)."""
        from editing.requests import EditRequest

        updates = tuple(RankOneUpdate(u["layer"], torch.tensor(u["u"], dtype=torch.float32),
                                      torch.tensor(u["v"], dtype=torch.float32), u.get("matrix", "mlp_out"))
                        for u in row.get("updates", ()))
        requests = tuple(EditRequest.from_dict(r) for r in row["requests"])
        return cls(row["method"], requests, updates, row.get("hparams", {}), row.get("seed", 0), row.get("stats", {}))


@dataclass
class AppliedEdit:
    """An edit now in the weights, with the snapshot that undoes it."""

    edit: Edit
    snapshot: dict[tuple[int, str], Tensor]


def _touched(updates: Sequence[RankOneUpdate]) -> list[tuple[int, str]]:
    return sorted({(u.layer, u.matrix) for u in updates})


def snapshot(session, keys: Sequence[tuple[int, str]]) -> dict[tuple[int, str], Tensor]:
    """CPU copies of the named parameters (``(layer, matrix)`` keys)."""
    return {key: matrix(session, *key).weight.detach().to("cpu", copy=True) for key in keys}


def restore(session, saved: dict[tuple[int, str], Tensor]) -> None:
    """Copy a snapshot back into the live parameters (bit-exact)."""
    with torch.no_grad():
        for key, value in saved.items():
            matrix(session, *key).weight.copy_(value)


@contextmanager
def guard(session, keys: Sequence[tuple[int, str]]) -> Iterator[dict]:
    """Snapshot ``keys``; if the body raises, restore them before the exception goes on."""
    saved = snapshot(session, keys)
    ok = False
    try:
        yield saved
        ok = True
    finally:
        if not ok:
            restore(session, saved)
            log.warning("edit failed part-way: weights restored")


def add_updates(session, updates: Sequence[RankOneUpdate]) -> None:
    """Add updates to the live weights (no bookkeeping: use :func:`apply_edit`)."""
    with torch.no_grad():
        for upd in updates:
            m = matrix(session, upd.layer, upd.matrix)
            m.weight.add_(upd.delta(m.transposed, m.weight.dtype, m.weight.device))


def apply_edit(session, edit: Edit, snapshot_taken: dict | None = None) -> AppliedEdit:
    """Put ``edit`` into the weights and record it in ``session.applied_edits``.

    ``snapshot_taken``: the snapshot of an edit whose updates are already in the weights (MEMIT
    applies while it computes); then nothing is added again.
    """
    if snapshot_taken is None:
        with guard(session, _touched(edit.updates)) as saved:
            add_updates(session, edit.updates)
    else:
        saved = snapshot_taken
    record = AppliedEdit(edit, saved)
    session.applied_edits.append(record)
    log.info("applied %s edit at layers %s (%d updates)", edit.method, edit.layers, len(edit.updates))
    return record


def undo(session, n: int = 1) -> list[Edit]:
    """Undo the last ``n`` edits (last in, first out); returns them, newest first."""
    if n < 0 or n > len(session.applied_edits):
        raise WorkbenchError(f"cannot undo {n} edits: {len(session.applied_edits)} are applied")
    undone = []
    for _ in range(n):
        record = session.applied_edits.pop()
        restore(session, record.snapshot)
        undone.append(record.edit)
    return undone


def undo_all(session) -> list[Edit]:
    return undo(session, len(session.applied_edits))


@contextmanager
def rollback(session) -> Iterator[None]:
    """When the body ends, however it ends, undo every edit it applied (bit-exactly, newest first);
    edits that were in the weights before it stay.

    >>> import torch, workbench
    >>> s = workbench.load("factworld")
    >>> change = Edit("by hand", (), (RankOneUpdate(0, torch.ones(s.info.d_model), torch.ones(s.info.d_mlp)),))
    >>> with rollback(s):
    ...     record = apply_edit(s, change)   # applied now ...
    ...     len(s.applied_edits)
    1
    >>> len(s.applied_edits)                # ... and undone here
    0
    """
    depth = len(session.applied_edits)
    try:
        yield
    finally:
        undo(session, len(session.applied_edits) - depth)


@contextmanager
def applied(session, edit: Edit) -> Iterator[AppliedEdit]:
    """Apply ``edit`` for the body only; the weights are restored bit-exactly afterwards."""
    depth = len(session.applied_edits)
    record = apply_edit(session, edit)
    try:
        yield record
    finally:
        if len(session.applied_edits) != depth + 1 or session.applied_edits[-1] is not record:
            raise WorkbenchError("edits applied inside `applied(...)` must be undone before it ends")
        undo(session)
