"""Sequential editing: edits piled up one batch after another, scored every ``every`` edits.

Does the model hold after 200 edits? For ``rome`` each request is one edit; ``memit`` and
``alphaedit`` edit ``batch`` requests at a time (AlphaEdit's null space then also preserves the
keys of the batches before). After every ``every`` requests the requests edited so far are scored
and the edited matrices' Frobenius norm is recorded (how far the weights have drifted). All edits
are undone at the end, bit-exactly.

>>> import workbench
>>> from editing.quality_bench import benchmark_set
>>> s = workbench.load("factworld")
>>> out = run_sequential(s, "rome", benchmark_set(s, 2), every=1, no_cov=True)
>>> [row["edits"] for row in out["curve"]], s.applied_edits
([1, 2], [])
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from workbench.errors import WorkbenchError
from workbench.modules import matrix

from editing import alphaedit, memit, rome
from editing.apply import apply_edit, undo
from editing.covariance import DEFAULT_TOKENS, get_stats
from editing.editor import check_method
from editing.evaluate import evaluate
from editing.targets import DeltaHparams, context_prefixes

log = logging.getLogger(__name__)

CURVE_METRICS = ("efficacy", "paraphrase", "neighborhood", "new_is_top")


def matrix_norms(session, layers: Sequence[int]) -> dict[int, float]:
    """Frobenius norm of each layer's MLP output projection, as it is now."""
    return {layer: round(float(matrix(session, layer, "mlp_out").weight.detach().double().norm()), 4)
            for layer in layers}


def run_sequential(session, method: str, requests: Sequence, every: int = 20, batch: int = 1, layer=None,
                   no_cov: bool = False, seed: int = 0, delta: DeltaHparams | None = None,
                   corpus: str | None = None, tokens: int = DEFAULT_TOKENS, fluency_prompts: int = 0) -> dict:
    """Edit prepared ``requests`` one batch after another; the curve of the metrics every ``every`` requests."""
    check_method(method)
    if every < 1 or batch < 1:
        raise WorkbenchError("--every and --batch must be at least 1")
    at = rome.resolve_layer(session, layer, requests[0])
    delta = delta or DeltaHparams()
    prefixes = context_prefixes(session, 10, seed)
    kwargs = {} if no_cov else {"corpus": corpus, "tokens": tokens}
    layers = (at,) if method == "rome" else memit.default_layers(session, at)
    stats = {layer_: get_stats(session, layer_, no_cov=no_cov, **kwargs) for layer_ in layers}  # unedited weights
    if method == "rome":
        hp = rome.RomeHparams(at, delta=delta, no_cov=no_cov)
    elif method == "memit":
        hp = memit.MemitHparams(layers, memit.default_mom2_weight(session), delta=delta, no_cov=no_cov)
    else:
        hp = alphaedit.AlphaEditHparams(layers, delta=delta, no_cov=no_cov)
        space = alphaedit.NullSpace.of(stats, hp.null_threshold)
    curve, applied, norms0 = [], 0, matrix_norms(session, layers)
    try:
        for start in range(0, len(requests), batch):
            chunk = list(requests[start:start + batch])
            if method == "rome":
                for r in chunk:
                    apply_edit(session, rome.compute(session, r, hp, stats[at], prefixes, seed))
                    applied += 1
            elif method == "memit":
                memit.compute_and_apply(session, chunk, hp, seed, prefixes, stats)
                applied += 1
            else:
                alphaedit.compute_and_apply(session, chunk, hp, space, seed, prefixes, stats)
                applied += 1
            done = start + len(chunk)
            if done // every > start // every or done == len(requests):
                means = evaluate(session, requests[:done], fluency_prompts).means
                curve.append({"edits": done, **{k: round(means[k], 4) for k in CURVE_METRICS},
                              "matrix_norm": matrix_norms(session, layers)})
                log.info("%s after %d sequential edits: %s", method, done, curve[-1])
    finally:
        undo(session, applied)
    return {"curve": curve, "after": {k: v for k, v in curve[-1].items() if k in CURVE_METRICS},
            "matrix_norm_before": norms0, "layers": list(layers), "batch": batch}


def plot_curves(curves: dict[str, list[dict]], path: str | Path) -> None:
    """One panel per metric (and one for the edited matrix's norm), one line per method."""
    from matplotlib.figure import Figure

    from workbench.plots import save_png

    names = CURVE_METRICS + ("matrix_norm",)
    fig = Figure(figsize=(4 * len(names), 3.2))
    for i, name in enumerate(names):
        ax = fig.add_subplot(1, len(names), i + 1)
        for method, curve in curves.items():
            xs = [row["edits"] for row in curve]
            ys = [sum(row[name].values()) if name == "matrix_norm" else row[name] for row in curve]
            ax.plot(xs, ys, marker="o", label=method)
        ax.set_title(name.replace("_", " "))
        ax.set_xlabel("sequential edits")
        if name != "matrix_norm":
            ax.set_ylim(0, 1.02)
        ax.legend()
    fig.tight_layout()
    save_png(fig, path)
