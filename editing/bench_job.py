"""The editing benchmark's independent single edits (ROME, apply → score → undo) as a sharded job.

Each request is edited alone on the unedited model, so requests shard freely; per-request rows
(before and after) come back and the means are taken once over all rows, so they equal the
one-process benchmark's. Sequential edits depend on each other and stay in
:func:`editing.quality_bench.run_benchmark`.

>>> import workbench
>>> r = sharded_benchmark(workbench.load("factworld"), n=2, no_cov=True, shard_size=1)
>>> r["after"]["efficacy"], r["n_requests"]
(1.0, 2)
"""
from __future__ import annotations

import logging

from workbench import runner
from workbench.errors import WorkbenchError

from editing.covariance import DEFAULT_TOKENS
from editing.evaluate import RequestScores, Scores, evaluate
from editing.quality_bench import rounded_means, single_edits
from editing.requests import BENCHMARK_FILE, load_requests, prepare
from editing.rome import resolve_layer

log = logging.getLogger(__name__)


def bench_shard(session, indices: list[int], params: dict) -> dict:
    """The runner's work: score, edit, score again and undo each request of the shard
    (:func:`editing.quality_bench.single_edits`, at the layer of the whole set's first request)."""
    requests = load_requests(params["path"] or BENCHMARK_FILE, limit=params["n"])
    seed = params["seed"]
    layer = resolve_layer(session, params["layer"], prepare(session, requests[0], seed=seed))
    rows, kept = [], []
    for i in indices:
        try:
            kept.append((i, prepare(session, requests[i], seed=seed)))
        except WorkbenchError as exc:  # e.g. the model already answers the new target
            rows.append({"index": i, "skipped": str(exc)})
    if kept:
        before = [evaluate(session, [r], params["fluency"]).per_request[0] for _, r in kept]
        _, after, per_request, _ = single_edits(
            session, [r for _, r in kept], before, layer, params["no_cov"], seed, corpus=params["corpus"],
            tokens=params["tokens"], fluency_prompts=params["fluency"])
        rows += [{"index": i, "layer": layer, "before": b.to_dict(), "after": a.to_dict(), "row": row}
                 for (i, _), b, a, row in zip(kept, before, after, per_request)]
    return {"rows": sorted(rows, key=lambda r: r["index"])}


def _scores(rows: list[dict]) -> Scores:
    """The shards' score dicts back as :class:`~editing.evaluate.Scores`."""
    return Scores(tuple(RequestScores(**row) for row in rows))


def merge_bench(parts: list[dict]) -> dict:
    """Means before and after over every scored request (rows in request order)."""
    rows = [row for part in parts for row in part["rows"]]
    scored = [r for r in rows if "skipped" not in r]
    if not scored:
        raise WorkbenchError("no usable benchmark requests")
    return {"method": "rome", "n_requests": len(scored), "skipped": len(rows) - len(scored), "sequential": False,
            "before": rounded_means(_scores([r["before"] for r in scored])),
            "after": rounded_means(_scores([r["after"] for r in scored])),
            "layers": sorted({r["layer"] for r in scored}), "per_request": [r["row"] for r in scored]}


def sharded_benchmark(model, n: int = 100, layer=None, no_cov: bool = False, seed: int = 0, path=None,
                      fluency_prompts: int = 0, corpus: str | None = None, tokens: int = DEFAULT_TOKENS,
                      out=None, engine=None, shard_size: int = 8, model_spec: dict | None = None) -> dict:
    """ROME single edits of the first ``n`` benchmark requests as a sharded job; ``model``: a session
    or the keyword arguments of :func:`workbench.session.load` (for Ray workers)."""
    if n < 1:
        raise WorkbenchError("--n must be at least 1")
    available = len(load_requests(path or BENCHMARK_FILE, limit=n))
    params = {"n": n, "layer": layer, "no_cov": no_cov, "seed": seed, "path": None if path is None else str(path),
              "fluency": fluency_prompts, "corpus": corpus, "tokens": tokens}
    job = runner.Job("edit-bench", tuple(range(available)), bench_shard, merge_bench, params, shard_size)
    spec = model_spec or (model if isinstance(model, dict) else {"spec": model.name, "dtype": str(model.dtype)[6:]})
    outcome = runner.run(job, spec, out=out, engine=engine or runner.InProcess(None if isinstance(model, dict) else model))
    return outcome.result | {"run": outcome.to_dict()}
