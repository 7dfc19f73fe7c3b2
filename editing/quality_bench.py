"""The editing benchmark: the shipped seeded factworld requests, edited and scored.

``rome``: every request edited alone (apply, score, undo); ``memit`` and ``alphaedit``: all
requests in one batch; with ``sequential`` (any method): all edits piled up one after another
(``batch`` requests at a time for memit/alphaedit), scored after each ``every`` requests
(:mod:`editing.sequential_bench`). ``per_request`` rows say which edits did not take and why.

>>> import workbench
>>> result = run_benchmark(workbench.load("factworld"), "rome", n=2, no_cov=True)
>>> result["after"]["efficacy"]
1.0
"""
from __future__ import annotations

import logging
import time

from workbench.errors import WorkbenchError

from editing.apply import apply_edit, undo
from editing.bench_rows import request_row
from editing.covariance import DEFAULT_TOKENS, get_stats
from editing.editor import check_method, edit
from editing.evaluate import Scores, evaluate
from editing.formats import format_of, read_rows
from editing.paper_metrics import paper_metrics, paper_row
from editing.requests import BENCHMARK_FILE, load_requests, prepare
from editing.rome import RomeHparams, compute, resolve_layer
from editing.sequential_bench import NormControl, run_sequential
from editing.targets import DeltaHparams, context_prefixes

log = logging.getLogger(__name__)


def rounded_means(scores: Scores) -> dict:
    """Each metric's mean over the requests, to 4 decimals (None where no request has it)."""
    return {k: (None if v is None else round(v, 4)) for k, v in scores.means.items()}


def benchmark_set(session, n: int, path=None, seed: int = 0) -> list:
    """The first ``n`` benchmark requests, prepared (targets checked, KB fields filled in)."""
    requests = load_requests(path or BENCHMARK_FILE, limit=n)
    out = []
    for r in requests:
        try:
            out.append(prepare(session, r, seed=seed))
        except WorkbenchError as exc:  # e.g. the model already answers the new target
            log.info("skipping %r: %s", r.text, exc)
    return out


def run_benchmark(session, method: str = "rome", n: int = 100, sequential: bool = False, every: int = 10, batch: int = 1,
                  layer=None, no_cov: bool = False, seed: int = 0, path=None, fluency_prompts: int = 0,
                  delta: DeltaHparams | None = None, corpus: str | None = None, tokens: int = DEFAULT_TOKENS,
                  control: NormControl = NormControl(), out=None, **kwargs) -> dict:
    """Mean metrics before and after editing ``n`` benchmark requests (weights restored at the end).

    ``out`` (sequential runs): a run folder to save each curve point in and to resume from."""
    check_method(method)
    requests = benchmark_set(session, n, path, seed)
    if not requests:
        raise WorkbenchError("no usable benchmark requests")
    before = evaluate(session, requests, fluency_prompts)
    zsre = path is not None and any(format_of(row) == "zsre" for row in read_rows(path)[:n])
    paper: list[dict] = []  # per request, the papers' own scores (generation entropy, zsRE accuracy)
    start = time.perf_counter()
    result: dict = {"method": method, "n_requests": len(requests), "sequential": sequential,
                    "before": rounded_means(before)}
    if sequential:  # every method: edits piled up, a curve every ``every`` requests (editing.sequential_bench)
        result.update(run_sequential(session, method, requests, every, batch, layer, no_cov, seed, delta, corpus,
                                     tokens, fluency_prompts, control, before.per_request, out))
    elif method in ("memit", "alphaedit"):
        r = edit(session, requests, method, layer, no_cov=no_cov, seed=seed, score=False, prepared=True,
                 delta=delta, corpus=corpus, tokens=tokens, **kwargs)
        after = evaluate(session, requests, fluency_prompts)
        paper = [paper_row(session, q, zsre) for q in requests]
        result["after"] = rounded_means(after)
        stats, held = r.edits[0].stats, r.edits[0].stats.get("held_at") or [None] * len(requests)
        result["per_request"] = [request_row(q, b, a, {"steps": stats.get("steps"), "held_at": h})
                                 for q, b, a, h in zip(requests, before.per_request, after.per_request, held)]
        result["layers"] = list(r.layers)
        undo(session)
    else:  # rome
        at, rows, per_request, paper = single_edits(session, requests, before.per_request, layer, no_cov, seed, delta,
                                                    corpus, tokens, fluency_prompts, zsre)
        result["after"] = rounded_means(Scores(tuple(rows)))
        result["per_request"] = per_request
        result["layers"] = [at]
    result["paper_metrics"] = paper_metrics(paper, result["after"])
    result["elapsed_s"] = round(time.perf_counter() - start, 2)
    return result


def single_edits(session, requests: list, before: list, layer=None, no_cov: bool = False, seed: int = 0,
                 delta: DeltaHparams | None = None, corpus: str | None = None, tokens: int = DEFAULT_TOKENS,
                 fluency_prompts: int = 0, zsre: bool = False) -> tuple[int, list, list[dict], list[dict]]:
    """ROME single edits of prepared ``requests``, each alone on the unedited model (apply, score,
    undo); ``before``: their scores before. Returns (layer, scores after, per_request rows, the
    papers' rows). The one loop of the in-process benchmark and of :mod:`editing.bench_job`'s shards."""
    at = resolve_layer(session, layer, requests[0])
    hp = RomeHparams(at, delta=delta or DeltaHparams(), no_cov=no_cov)
    stats = get_stats(session, at, no_cov=no_cov, **({} if no_cov else {"corpus": corpus, "tokens": tokens}))
    prefixes = context_prefixes(session, hp.n_prefixes, seed)
    after, per_request, paper = [], [], []
    for r, b in zip(requests, before):
        e = compute(session, r, hp, stats, prefixes, seed)
        apply_edit(session, e)
        try:
            after += evaluate(session, [r], fluency_prompts).per_request
            paper.append(paper_row(session, r, zsre))
        finally:
            undo(session)
        per_request.append(request_row(r, b, after[-1], e.stats, e.update_norms()))
    return at, after, per_request, paper
