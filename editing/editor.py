"""One call to edit a model: prepare requests, score before, compute and apply, score after.

>>> import workbench, editing
>>> s = workbench.load("factworld")
>>> r = editing.edit(s, editing.EditRequest("The {} is located in the city of", "Eiffel Tower", "Rome"))
>>> r.after.per_request[0].top_token
' Rome'
>>> [e.method for e in editing.undo(s)]  # undone, bit-exactly
['rome']
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Sequence

from workbench.errors import WorkbenchError
from workbench.report import Section, num, table

from editing import alphaedit, memit, rome
from editing.apply import AppliedEdit, Edit, apply_edit
from editing.covariance import DEFAULT_TOKENS, get_stats
from editing.evaluate import Scores, evaluate
from editing.requests import EditRequest, prepare
from editing.targets import DeltaHparams, context_prefixes

log = logging.getLogger(__name__)

METHODS = ("rome", "memit", "alphaedit")


def check_method(method: str) -> None:
    """Refuse a method that is not one of :data:`METHODS` with one clear line."""
    if method not in METHODS:
        raise WorkbenchError(f"unknown method {method!r}: use {', '.join(METHODS[:-1])} or {METHODS[-1]}")


@dataclass(frozen=True)
class EditResult:
    """The edits now in the weights, and the request scores before and after them."""

    method: str
    layers: tuple[int, ...]
    requests: tuple[EditRequest, ...]
    edits: tuple[Edit, ...]
    before: Scores | None
    after: Scores | None
    elapsed_s: float  # computing and applying (not evaluating)

    @property
    def update_norm(self) -> float:
        return float(sum(n ** 2 for e in self.edits for n in e.update_norms().values()) ** 0.5)

    def to_dict(self) -> dict:
        def head(scores: Scores | None) -> dict | None:
            if scores is None:
                return None
            first = scores.per_request[0]
            return {"top_token": first.top_token, "target_prob": first.new_prob, "true_prob": first.true_prob}

        means = self.after.means if self.after else {}
        return {"method": self.method, "layer": self.layers[-1], "layers": list(self.layers),
                "before": head(self.before), "after": head(self.after),
                "metrics": {k: means.get(k) for k in ("efficacy", "paraphrase", "neighborhood", "two_hop", "fluency",
                                                       "efficacy_margin")},
                "metrics_before": self.before.means if self.before else None,
                "update_norm": self.update_norm, "elapsed_s": self.elapsed_s, "n_requests": len(self.requests),
                "edits": [e.to_dict() for e in self.edits],
                "per_request": {"before": self.before.to_dict()["per_request"] if self.before else None,
                                "after": self.after.to_dict()["per_request"] if self.after else None}}

    def to_section(self, saved: str | None = None) -> Section:
        """The report section: a before/after row per request and the metrics (``saved``: where the
        edited model was written, if it was)."""
        rows = [("prompt", "top token before", "after", "P(new) before", "after", "P(true) before", "after")]
        if self.before and self.after:
            for b, a in zip(self.before.per_request, self.after.per_request):
                rows.append((b.prompt, repr(b.top_token), repr(a.top_token), num(b.new_prob), num(a.new_prob),
                             num(b.true_prob), num(a.true_prob)))
        before = self.before.means if self.before else {}
        metrics = [("metric", "before", "after")] + [
            (name, num(before.get(name)), num(value)) for name, value in (self.after.means if self.after else {}).items()
            if value is not None]
        text = (f"{self.method.upper()} at layer(s) {list(self.layers)}, {len(self.requests)} request(s), "
                f"update norm {num(self.update_norm)}, {self.elapsed_s:.1f}s.")
        if saved:
            text += f"\nEdited model saved to {saved}"
        return Section(f"Edit ({self.method.upper()})", "edit", text,
                       tuple(t for t in (table(rows), table(metrics)) if len(t) > 1))


def method_hparams(session, method: str, last: int, delta: DeltaHparams, no_cov: bool = False, n_prefixes: int = 10,
                   mom2_weight: float | None = None, memit_span: int = 5) -> tuple:
    """``(hparams, edited layers)`` of ``method`` with ``last`` the (last) edited layer: ROME edits
    ``last`` alone, MEMIT and AlphaEdit the ``memit_span`` layers ending there."""
    check_method(method)
    if method == "rome":
        return rome.RomeHparams(last, n_prefixes, delta, no_cov), (last,)
    layers = memit.default_layers(session, last, memit_span)
    if method == "alphaedit":
        return alphaedit.AlphaEditHparams(layers, n_prefixes=n_prefixes, delta=delta, no_cov=no_cov), layers
    weight = mom2_weight if mom2_weight is not None else memit.default_mom2_weight(session)
    return memit.MemitHparams(layers, weight, n_prefixes, delta, no_cov), layers


def edit(session, requests: EditRequest | Sequence[EditRequest], method: str = "rome",
         layer: int | str | None = None, *, no_cov: bool = False, corpus: str | None = None,
         tokens: int = DEFAULT_TOKENS, seed: int = 0, score: bool = True, fluency_prompts: int = 1,
         delta: DeltaHparams | None = None, mom2_weight: float | None = None, memit_span: int = 5,
         n_prefixes: int = 10, prepared: bool = False, space=None) -> EditResult:
    """Rewrite facts in ``session``'s weights (ROME: one after another; MEMIT, AlphaEdit: all at once).

    ``space``: AlphaEdit's :class:`editing.alphaedit.NullSpace`, kept across sequential calls (None: a fresh one).

    ``layer``: an int, ``"auto"`` (causal-trace peak) or None (the model's default table entry,
    else auto). For MEMIT it is the last of ``memit_span`` edited layers.
    """
    check_method(method)
    requests = [requests] if isinstance(requests, EditRequest) else list(requests)
    if not requests:
        raise WorkbenchError("no edit requests given")
    if not prepared:
        requests = [prepare(session, r, seed=seed) for r in requests]
    last = rome.resolve_layer(session, layer, requests[0])
    before = evaluate(session, requests, fluency_prompts) if score else None
    delta = delta or DeltaHparams()
    start = time.perf_counter()
    prefixes = context_prefixes(session, n_prefixes, seed)
    hp, layers = method_hparams(session, method, last, delta, no_cov, n_prefixes, mom2_weight, memit_span)
    stats = {layer_: get_stats(session, layer_, no_cov=no_cov, **({} if no_cov else {"corpus": corpus, "tokens": tokens}))
             for layer_ in layers}
    if method == "rome":
        records: list[AppliedEdit] = [apply_edit(session, rome.compute(session, r, hp, stats[last], prefixes, seed))
                                      for r in requests]
    elif method == "alphaedit":
        records = [alphaedit.compute_and_apply(session, requests, hp, space, seed, prefixes, stats)]
    else:
        records = [memit.compute_and_apply(session, requests, hp, seed, prefixes, stats)]
    elapsed = time.perf_counter() - start
    after = evaluate(session, requests, fluency_prompts) if score else None
    return EditResult(method, layers, tuple(requests), tuple(r.edit for r in records), before, after, elapsed)

