"""Sequential editing: edits piled up one batch after another, scored every ``every`` edits.

Does the model hold after 200 edits? For ``rome`` each request is one edit; ``memit`` and
``alphaedit`` edit ``batch`` requests at a time (AlphaEdit's null space then also preserves the
keys of the batches before). After every ``every`` requests the requests edited so far are scored
and the edited matrices' Frobenius norm is recorded (how far the weights have drifted). All edits
are undone at the end, bit-exactly. Sequential runs write smaller edits than single ones
(:data:`editing.targets.SEQUENTIAL_DELTA`); :class:`NormControl` adds an ENCORE-style penalty on
each update's norm; :func:`key_crosstalk` says how crowded the edited keys are; with ``out`` a
run saves each curve point and resumes after a kill.

>>> import workbench
>>> from editing.quality_bench import benchmark_set
>>> s = workbench.load("factworld")
>>> out = run_sequential(s, "rome", benchmark_set(s, 2), every=1, no_cov=True)
>>> [row["edits"] for row in out["curve"]], s.applied_edits
([1, 2], [])
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from workbench.errors import WorkbenchError
from workbench.modules import matrix
from workbench.run_folder import RunFolder, digest

from editing import alphaedit, memit, rome
from editing.apply import Edit, apply_edit, undo
from editing.bench_rows import request_row
from editing.covariance import DEFAULT_TOKENS, LayerStats, get_stats
from editing.editor import check_method, method_hparams
from editing.evaluate import evaluate
from editing.targets import SEQUENTIAL_DELTA, DeltaHparams, average_keys, context_prefixes

log = logging.getLogger(__name__)

CURVE_METRICS = ("efficacy", "paraphrase", "neighborhood", "new_is_top")


def matrix_norms(session, layers: Sequence[int]) -> dict[str, float]:
    """Frobenius norm of each layer's MLP output projection, as it is now (keys: layers as text, as in JSON)."""
    return {str(layer): round(float(matrix(session, layer, "mlp_out").weight.detach().double().norm()), 4)
            for layer in layers}


@dataclass(frozen=True)
class NormControl:
    """ENCORE-style control of the edited matrix's growth over a sequence (rome and memit).

    Each update is the least change that writes its fact measured against ``C + ridge·c̄·I`` (C: the
    unedited keys' second moment, c̄ its mean eigenvalue), which also penalises the update's own
    Frobenius norm: directions the corpus rarely uses stop being cheap. 0: plain sequential edits.
    """

    ridge: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def controlled_stats(stats: LayerStats, control: NormControl) -> LayerStats:
    """``stats`` with the control's ridge added to C."""
    if not control.ridge:
        return stats
    cov = stats.cov.double()
    cov = cov + control.ridge * float(cov.trace()) / len(cov) * torch.eye(len(cov), dtype=cov.dtype)
    return replace(stats, cov=cov.float())


def key_crosstalk(keys: Float[Tensor, "n d_mlp"], stats: LayerStats) -> float:
    """How much one edit moves the others: the root mean square, over pairs i ≠ j of edited keys, of
    the gain ``k_iᵀC⁻¹k_j / k_jᵀC⁻¹k_j`` with which edit j's rank-one update reaches key i.

    After n edits each edited key has taken about ``√(n-1) · crosstalk`` times an update of its
    own size from the others (when the updates point in unrelated directions): the crowding that
    sequential editing meets in one small matrix.

    >>> from editing.covariance import LayerStats
    >>> key_crosstalk(torch.eye(3), LayerStats(0, torch.eye(3), 0, "identity", True))   # orthogonal keys
    0.0
    """
    keys = keys.double()
    solved = torch.linalg.solve(stats.cov.double(), keys.T)  # (d_mlp, n)
    gains = (keys @ solved) / torch.diagonal(keys @ solved)  # [i, j]: edit j's gain at key i
    off = ~torch.eye(len(keys), dtype=torch.bool)
    return round(float(gains[off].pow(2).mean().sqrt()), 4) if len(keys) > 1 else 0.0


def segments(n: int, every: int, batch: int) -> list[list[tuple[int, int]]]:
    """The run's chunks ``(start, end)`` of ``batch`` requests, grouped by curve point (a point after
    every ``every`` requests, and at the end).

    >>> segments(5, 2, 1)
    [[(0, 1), (1, 2)], [(2, 3), (3, 4)], [(4, 5)]]
    >>> segments(5, 2, 3)
    [[(0, 3)], [(3, 5)]]
    """
    out, current = [], []
    for start in range(0, n, batch):
        end = min(start + batch, n)
        current.append((start, end))
        if end // every > start // every or end == n:
            out.append(current)
            current = []
    return out


def run_sequential(session, method: str, requests: Sequence, every: int = 20, batch: int = 1, layer=None,
                   no_cov: bool = False, seed: int = 0, delta: DeltaHparams | None = None,
                   corpus: str | None = None, tokens: int = DEFAULT_TOKENS, fluency_prompts: int = 0,
                   control: NormControl = NormControl(), before: Sequence | None = None, out=None) -> dict:
    """Edit prepared ``requests`` one batch after another; the curve of the metrics every ``every`` requests.

    ``delta``: the v* settings (default :data:`editing.targets.SEQUENTIAL_DELTA`). ``before``: the
    requests' scores before editing (``Scores.per_request``); then the result also has
    ``per_request`` rows scored at the end (edits overwritten by later ones show there).
    ``out``: a run folder (:mod:`workbench.run_folder`, one shard per curve point): each point's
    edits (their update vectors), curve row and edit statistics are saved there as it is reached;
    a rerun with the same arguments replays the saved edits bit-exactly and goes on from the first
    missing point; the result is written there at the end.
    """
    check_method(method)
    if every < 1 or batch < 1:
        raise WorkbenchError("--every and --batch must be at least 1")
    if control.ridge and method == "alphaedit":
        raise WorkbenchError("--ridge applies to rome and memit; AlphaEdit keeps its updates small with its own l2")
    at = rome.resolve_layer(session, layer, requests[0])
    delta = delta or SEQUENTIAL_DELTA
    prefixes = context_prefixes(session, 10, seed)
    kwargs = {} if no_cov else {"corpus": corpus, "tokens": tokens}
    hp, layers = method_hparams(session, method, at, delta, no_cov)
    stats = {layer_: get_stats(session, layer_, no_cov=no_cov, **kwargs) for layer_ in layers}  # unedited weights
    if method == "alphaedit":
        space = alphaedit.NullSpace.of(stats, hp.null_threshold)
    controlled = {layer_: controlled_stats(s, control) for layer_, s in stats.items()}
    plan = segments(len(requests), every, batch)
    folder = None if out is None else RunFolder.open(out, "edit-bench-sequential", {
        "model": session.name, "method": method, "every": every, "batch": batch, "layer": at, "no_cov": no_cov,
        "seed": seed, "delta": asdict(delta), "corpus": corpus, "tokens": tokens, "fluency": fluency_prompts,
        "control": control.to_dict(), "requests_sha256": digest([r.to_dict() for r in requests])}, len(plan))

    def edit_chunk(chunk: list) -> tuple[list, list[dict]]:
        """Edit one chunk; its applied edits and, per request, how its edit went."""
        if method == "rome":
            edits = [apply_edit(session, rome.compute(session, r, hp, controlled[at], prefixes, seed)).edit
                     for r in chunk]
            return edits, [_edit_row(e.stats, e.update_norms()) for e in edits]
        if method == "memit":
            record = memit.compute_and_apply(session, chunk, hp, seed, prefixes, controlled)
        else:
            record = alphaedit.compute_and_apply(session, chunk, hp, space, seed, prefixes, stats)
        info = record.edit.stats
        return [record.edit], [{"steps": info.get("steps"), "held_at": h}
                               for h in info.get("held_at") or [None] * len(chunk)]

    curve, edit_rows, applied, norms0, scores = [], [], 0, matrix_norms(session, layers), None
    try:
        for index, chunks in enumerate(plan):
            if folder is not None and index in folder.finished():  # resume: replay what was saved
                saved = folder.load_shard(index)["result"]
                for row in saved["edits"]:
                    apply_edit(session, Edit.from_dict(row))
                    applied += 1
                for keys in saved.get("null_space_keys", ()):
                    space.learn({int(k): torch.tensor(v, dtype=torch.float64) for k, v in keys.items()})
                curve.append(saved["row"])
                edit_rows += saved["edit_rows"]
                scores = None
                continue
            started, made, learned_before = time.perf_counter(), [], len(space.learned) if method == "alphaedit" else 0
            for start, end in chunks:
                edits, rows = edit_chunk(list(requests[start:end]))
                made += edits
                applied += len(edits)
                edit_rows += rows
            done = chunks[-1][1]
            scores = evaluate(session, requests[:done], fluency_prompts)
            curve.append({"edits": done, **{k: round(scores.means[k], 4) for k in CURVE_METRICS},
                          "matrix_norm": matrix_norms(session, layers)})
            log.info("%s after %d sequential edits: %s", method, done, curve[-1])
            if folder is not None:
                keys = ([{str(k): v.tolist() for k, v in learned.items()} for learned in space.learned[learned_before:]]
                        if method == "alphaedit" else [])
                folder.save_shard(index, {"row": curve[-1], "edits": [e.to_dict(vectors=True) for e in made],
                                          "edit_rows": edit_rows[-(done - chunks[0][0]):], "null_space_keys": keys},
                                  items=done - chunks[0][0], seconds=time.perf_counter() - started)
        if before is not None and scores is None:  # every point was read back: score the replayed model
            scores = evaluate(session, requests, fluency_prompts)
    finally:
        undo(session, applied)
    crosstalk = {str(layer_): key_crosstalk(average_keys(session, requests, layer_, prefixes), stats[layer_])
                 for layer_ in layers}
    result = {"curve": curve, "after": {k: v for k, v in curve[-1].items() if k in CURVE_METRICS},
              "matrix_norm_before": norms0, "layers": list(layers), "batch": batch, "delta": asdict(delta),
              "control": control.to_dict(), "key_crosstalk": crosstalk}
    if before is not None:
        result["per_request"] = [{"order": i + 1, **request_row(r, b, a, st, st.get("update_norm"))}
                                 for i, (r, b, a, st) in enumerate(zip(requests, before, scores.per_request, edit_rows))]
    if folder is not None:
        folder.save_result(result)
    return result


def _edit_row(stats: dict, update_norms: dict) -> dict:
    """What a per-request row keeps of a ROME edit's statistics."""
    return {"steps": stats.get("steps"), "held_at": stats.get("held_at"), "delta_norm": stats.get("delta_norm"),
            "update_norm": {str(k): v for k, v in update_norms.items()}}


def plot_curves(curves: dict[str, list[dict]], path: str | Path) -> None:
    """One panel per metric (and one for the edited matrix's norm), one line per method."""
    from matplotlib.figure import Figure

    from workbench.plots import save_png

    names = CURVE_METRICS + ("matrix_norm",)
    fig = Figure(figsize=(12, 6.4))
    for i, name in enumerate(names):
        ax = fig.add_subplot(2, 3, i + 1)
        for method, curve in curves.items():
            xs = [row["edits"] for row in curve]
            ys = [sum(row[name].values()) if name == "matrix_norm" else row[name] for row in curve]
            ax.plot(xs, ys, marker="o", label=method)
        ax.set_title(name.replace("_", " "))
        ax.set_xlabel("sequential edits")
        if name != "matrix_norm":
            ax.set_ylim(0, 1.02)
    legend = fig.add_subplot(2, 3, 6)  # one legend for every panel, in the free slot
    legend.axis("off")
    legend.legend(*ax.get_legend_handles_labels(), loc="center")
    fig.tight_layout()
    save_png(fig, path)
