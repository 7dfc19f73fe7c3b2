"""AlphaEdit (Fang et al., ICLR 2025): MEMIT's update projected onto the null space of the preserved keys.

The preserved knowledge is the keys' second moment C = E[k kᵀ] at each edited layer
(:mod:`editing.covariance`). ``P`` projects onto the span of C's eigenvectors whose eigenvalues
are below ``null_threshold`` × the largest, so an update ``ΔW P`` barely moves the output for any
key the model usually sees. Each layer's update is

    ΔW = R (A⁻¹ P K)ᵀ,   A = P (K Kᵀ + K_p K_pᵀ) + l2 · I

with K the new requests' keys, R their residuals (as in MEMIT) and K_p the keys of the edits
already made in the same :class:`NullSpace` (sequential editing: earlier edits are preserved
too). Everything else — the targets z, the residual spread over layers, the record, bit-exact
undo and the provenance in ``edits.json`` — is MEMIT's (:func:`editing.memit.compute_and_apply`).

>>> import workbench
>>> from editing import EditRequest, prepare, undo
>>> from editing.covariance import get_stats
>>> s = workbench.load("factworld")
>>> space = NullSpace.of({0: get_stats(s, 0)}, 0.01)
>>> r = prepare(s, EditRequest("The {} is located in the city of", "Eiffel Tower", "Rome"))
>>> record = compute_and_apply(s, [r], AlphaEditHparams(layers=(0,)), space)
>>> record.edit.method, space.edits, len(undo(s))
('alphaedit', 1, 1)
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from workbench.errors import WorkbenchError

from editing import memit
from editing.covariance import LayerStats, get_stats
from editing.targets import DeltaHparams


@dataclass(frozen=True)
class AlphaEditHparams:
    layers: tuple[int, ...]
    null_threshold: float = 1e-2  # eigenvalues of C below this x the largest span the null space
    l2: float = 1.0
    n_prefixes: int = 10
    delta: DeltaHparams = field(default_factory=DeltaHparams)
    no_cov: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def null_projector(cov: Float[Tensor, "d d"], threshold: float) -> Float[Tensor, "d d"]:
    """The projector onto the eigenvectors of ``cov`` whose eigenvalues are < ``threshold`` × the largest.

    >>> p = null_projector(torch.diag(torch.tensor([1.0, 1e-4, 0.5])), 0.01)
    >>> p.diagonal().tolist()
    [0.0, 1.0, 0.0]
    """
    values, vectors = torch.linalg.eigh(cov.double())
    keep = vectors[:, values < threshold * values.max()]  # (d, k)
    return keep @ keep.T


@dataclass
class NullSpace:
    """Per edited layer, the projector P and the second moment of the keys edited so far (K_p K_pᵀ).

    The caller keeps it across sequential edits; :func:`editing.apply.undo` restores the weights but
    not this record of edited keys (start a fresh NullSpace after undoing)."""

    projectors: dict[int, Tensor]
    edited: dict[int, Tensor]
    learned: list[dict[int, Tensor]] = field(default_factory=list)  # per edit, its keys K (d_mlp, n) per layer

    @property
    def edits(self) -> int:
        """How many edits this null space has learned."""
        return len(self.learned)

    @classmethod
    def of(cls, stats: dict[int, LayerStats], threshold: float) -> "NullSpace":
        if any(s.identity for s in stats.values()):
            raise WorkbenchError("AlphaEdit needs key statistics (with C = I there is no null space): "
                                 "drop --no-cov, or untick C = I in the app")
        projectors = {layer: null_projector(s.cov, threshold) for layer, s in stats.items()}
        for layer, p in projectors.items():
            if float(p.trace()) < 1:
                raise WorkbenchError(f"the key covariance at layer {layer} has no eigenvalue below "
                                     f"{threshold} x the largest: raise the null-space threshold")
        return cls(projectors, {layer: torch.zeros_like(p) for layer, p in projectors.items()})

    def solver(self, l2: float, seen: dict[int, Tensor]):
        """The adjoints ``A⁻¹ P K`` at one layer; records K in ``seen`` (learned once the edit is in)."""
        def solve(layer: int, keys: Tensor) -> Tensor:  # (d_mlp, n) -> (d_mlp, n)
            p = self.projectors[layer]
            lhs = p @ (keys @ keys.T + self.edited[layer]) + l2 * torch.eye(len(p), dtype=p.dtype)
            seen[layer] = keys
            return torch.linalg.solve(lhs, p @ keys)
        return solve

    def learn(self, keys: dict[int, Tensor]) -> None:
        """Preserve an edit's keys from now on (``K_p K_pᵀ += K Kᵀ``); a resumed run replays them in order."""
        for layer, k in keys.items():
            self.edited[layer] = self.edited[layer] + k @ k.T
        self.learned.append(keys)


def compute_and_apply(session, requests: Sequence, hparams: AlphaEditHparams, space: NullSpace | None = None,
                      seed: int = 0, prefixes: tuple[str, ...] | None = None, stats: dict | None = None):
    """Compute the AlphaEdit edit for prepared ``requests`` and apply it; ``space`` (kept by the caller
    across sequential edits) learns the new keys. Returns the applied record."""
    if stats is None:
        stats = {layer: get_stats(session, layer, no_cov=hparams.no_cov) for layer in hparams.layers}
    space = space or NullSpace.of(stats, hparams.null_threshold)
    seen: dict[int, Tensor] = {}
    record = memit.compute_and_apply(session, requests, hparams, seed, prefixes, stats,
                                     solve=space.solver(hparams.l2, seen), method="alphaedit")
    record.edit.stats["null_space_dim"] = {layer: round(float(p.trace())) for layer, p in space.projectors.items()}
    record.edit.stats["edits_before"] = space.edits
    space.learn(seen)
    return record
