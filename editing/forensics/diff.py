"""Weight-diff forensics between two checkpoints, streamed tensor by tensor.

For every changed tensor: absolute and relative change and the numerical rank of the
difference (from its singular values). The pattern over tensors names the kind of change:

| signature  | what it looks like                                                    |
|------------|-----------------------------------------------------------------------|
| identical  | no tensor differs                                                      |
| rome       | one MLP output projection changed, by a rank-one matrix                |
| memit      | MLP output projections of consecutive layers, each low rank            |
| noise      | many tensors, tiny relative change, flat (full-rank) spectrum          |
| fine-tune  | many tensors, broad high-rank change with a decaying spectrum          |
| other      | anything else (e.g. one tensor replaced wholesale)                     |

>>> import tempfile, workbench, editing
>>> s = workbench.load("factworld")
>>> _ = editing.edit(s, editing.EditRequest("The {} is located in the city of", "Eiffel Tower", "Rome"),
...                  no_cov=True, score=False)
>>> edited = str(editing.save(s, tempfile.mkdtemp() + "/eiffel-in-rome"))
>>> report = diff_checkpoints("factworld", edited)
>>> report.signature, report.changed[0].layer, report.changed[0].rank
('rome', 0, 1)
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

from editing.forensics.tensors import TensorIndex, is_mlp_out, layer_of
from workbench.errors import WorkbenchError
from workbench.report import Section, dict_tables, num, table

RANK_TOL = 1e-3  # singular values below RANK_TOL * sigma_1 count as numerical zero
FULL_SVD_MAX = 4096 * 4096  # larger differences get a randomised low-rank spectrum
LOWRANK_Q = 24
NOISE_STABLE_RANK = 0.25  # stable rank / min(shape) above this: noise-like flat spectrum


@dataclass(frozen=True)
class TensorDiff:
    """How one tensor changed between base and edited."""

    name: str
    shape: tuple[int, ...]
    layer: int | None
    mlp_out: bool
    abs_change: float  # Frobenius norm of the difference
    rel_change: float  # ... divided by the base tensor's norm
    max_abs: float
    rank: int | None  # numerical rank of the difference (2-D tensors)
    rank_is_lower_bound: bool
    singular_values: tuple[float, ...]  # the largest few
    stable_rank: float | None  # ||D||_F^2 / sigma_1^2

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class DiffReport:
    base: str
    edited: str
    n_tensors: int
    changed: tuple[TensorDiff, ...]
    missing: tuple[str, ...] = field(default=())  # names present on one side only
    signature: str = "identical"
    summary: str = ""

    @property
    def edited_layers(self) -> list[int]:
        return sorted({d.layer for d in self.changed if d.layer is not None})

    def to_dict(self) -> dict:
        return {"base": self.base, "edited": self.edited, "n_tensors": self.n_tensors, "signature": self.signature,
                "summary": self.summary, "edited_layers": self.edited_layers, "missing": list(self.missing),
                "changed": [d.to_dict() for d in self.changed]}

    def to_section(self, rank_one: dict | None = None, revert: dict | None = None,
                   explanation: dict | None = None) -> Section:
        """The report section: the changed tensors, then (for a rank-one edit) the recovered update
        (``RankOneRecovery.to_dict()``), the revert (``out``, ``max_abs_diff_from_base``) and the
        explanation (``Explanation.to_dict()``) as tables."""
        rows = [("tensor", "shape", "layer", "|Δ|", "relative", "max |Δ|", "rank", "stable rank")]
        for d in self.changed:
            rank = "" if d.rank is None else f"{'≥' if d.rank_is_lower_bound else ''}{d.rank}"
            rows.append((d.name, "×".join(map(str, d.shape)), d.layer, num(d.abs_change, 4), num(d.rel_change, 4),
                         num(d.max_abs, 4), rank, num(d.stable_rank)))
        lines = [f"{self.base} -> {self.edited}: signature {self.signature!r}, {len(self.changed)} of "
                 f"{self.n_tensors} tensors changed.", self.summary]
        if rank_one:
            lines.append("Rank-one update recovered: " + ", ".join(f"{k} {num(v, 4)}" for k, v in rank_one.items()
                                                                   if isinstance(v, (int, float, str))))
        if revert:
            lines.append(f"Reverted weights written to {revert['out']}; largest difference from the base "
                         f"{num(revert['max_abs_diff_from_base'], 4)}.")
        tables = [table(rows)]
        if explanation:
            lines.append("Explanation:")
            tables += dict_tables(explanation)
        return Section(f"Weight diff: {self.edited}", "diff", "\n".join(line for line in lines if line), tuple(tables))


def spectrum(delta: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """Singular values of a 2-D difference (descending) and whether they are only the top few."""
    if delta.numel() <= FULL_SVD_MAX:
        return torch.linalg.svdvals(delta.double()), False
    d = delta.float()
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(0)
    try:
        _, values, _ = torch.svd_lowrank(d, q=min(LOWRANK_Q, min(d.shape)), niter=4)
    finally:
        torch.random.set_rng_state(generator_state)
    return values, True


def describe(name: str, base: torch.Tensor, edited: torch.Tensor) -> TensorDiff | None:
    """The :class:`TensorDiff` of one tensor, or None when it is bit-for-bit unchanged."""
    if base.shape != edited.shape:
        raise WorkbenchError(f"tensor {name} has shape {tuple(base.shape)} in the base and {tuple(edited.shape)} "
                             "in the edited checkpoint: these are different architectures")
    if torch.equal(base, edited):
        return None
    delta = edited.double() - base.double()
    norm = float(delta.norm())
    rank = stable = None
    lower_bound = False
    top: tuple[float, ...] = ()
    if delta.ndim == 2:
        values, lower_bound = spectrum(delta)
        rank = int((values > RANK_TOL * values[0]).sum()) if values[0] > 0 else 0
        stable = norm ** 2 / float(values[0]) ** 2 if values[0] > 0 else 0.0
        top = tuple(float(v) for v in values[:5])
    return TensorDiff(name, tuple(base.shape), layer_of(name), is_mlp_out(name), norm,
                      norm / max(float(base.double().norm()), 1e-30), float(delta.abs().max()), rank, lower_bound,
                      top, stable)


def classify(changed: list[TensorDiff], n_tensors: int) -> tuple[str, str]:
    """Name the signature of a set of changed tensors (see the module docstring's table)."""
    if not changed:
        return "identical", "no tensor differs: the checkpoints hold the same weights"
    matrices = [d for d in changed if d.rank is not None]
    all_mlp_out = all(d.mlp_out for d in changed)
    if len(changed) == 1 and all_mlp_out and changed[0].rank == 1:
        d = changed[0]
        return "rome", f"a rank-one change of the MLP output projection at layer {d.layer}: the signature of a ROME edit"
    layers = sorted({d.layer for d in changed if d.layer is not None})
    consecutive = bool(layers) and layers == list(range(layers[0], layers[0] + len(layers)))
    if all_mlp_out and consecutive and all(d.rank is not None and d.rank <= min(d.shape) // 4 for d in changed):
        ranks = ", ".join(str(d.rank) for d in changed)
        return "memit", (f"low-rank changes (ranks {ranks}) of the MLP output projections of consecutive layers "
                         f"{layers[0]}-{layers[-1]}: the signature of a MEMIT batch edit")
    broad = len(changed) >= max(2, n_tensors // 2)
    if broad and matrices:
        flat = [d for d in matrices if d.stable_rank is not None and d.stable_rank / min(d.shape) > NOISE_STABLE_RANK]
        tiny = all(d.rel_change < 1e-2 for d in changed)
        if tiny and len(flat) >= len(matrices) / 2:
            return "noise", (f"{len(changed)} of {n_tensors} tensors changed by tiny, full-rank amounts: noise or "
                             "quantisation, not a targeted edit")
        return "fine-tune", (f"{len(changed)} of {n_tensors} tensors changed by broad high-rank amounts: the signature "
                             "of fine-tuning")
    return "other", f"{len(changed)} tensor(s) changed in a pattern that matches no known edit"


def diff_checkpoints(base: str, edited: str) -> DiffReport:
    """Compare two model specs tensor by tensor (never more than one tensor pair in memory)."""
    base_index, edited_index = TensorIndex(base), TensorIndex(edited)
    if not set(base_index.where) & set(edited_index.where):
        raise WorkbenchError(f"{base} and {edited} share no tensor names: they are different architectures")
    changed: list[TensorDiff] = []
    missing: list[str] = []
    n_tensors = 0
    for name, mine, theirs in base_index.iter_pairs(edited_index):
        n_tensors += 1
        if mine is None or theirs is None:
            missing.append(name)
            continue
        diff = describe(name, mine, theirs)
        if diff is not None:
            changed.append(diff)
    signature, summary = classify(changed, n_tensors)
    return DiffReport(base, edited, n_tensors, tuple(changed), tuple(missing), signature, summary)
