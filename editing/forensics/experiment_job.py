"""The forensics experiment's edits as a sharded job: each trial (edit, save, diff, recover,
explain, revert, blind scan) is independent of the others, so trials shard; the unedited
copies' scans and the summary are computed by the driver, as :func:`run_experiment` does.

>>> r = sharded_experiment(n_edits=1, n_null=0, score="cosine", shard_size=1)
>>> r.summary["n_edits"], r.summary["layer_module_found_rate"]
(1, 1.0)
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from workbench import runner

from editing.forensics.experiment import (DEFAULT_THRESHOLD, ExperimentResult, Trial, edit_layers,
                                          experiment_requests, run_trial, summarise, unedited_scans)
from editing.forensics.explain import candidate_keys, default_stats, kb_subjects


def trial_shard(session, items: list[dict], params: dict) -> list[dict]:
    """The runner's work: the trials of the shard's edits (``{"index", "layer"}`` each), as dicts."""
    requests = experiment_requests(params["n_edits"], params["seed"])
    subjects, keys, out = kb_subjects(), {}, []
    for item in items:
        at, score = item["layer"], params["score"]
        if at not in keys:
            keys[at] = candidate_keys(session, at, subjects, default_stats(session, at) if score == "whitened" else None)
        with tempfile.TemporaryDirectory(prefix="wb-forensics-") as work:
            trial = run_trial(session, requests[item["index"]], at, params["seed"] + item["index"], keys[at], score,
                              Path(work), params["threshold"])
        out.append(trial.to_dict())
    return out


def merge_trials(parts: list[list[dict]]) -> list[dict]:
    return [t for part in parts for t in part]


def _trial(d: dict) -> Trial:
    tuples = {k: tuple(v) for k, v in d.items() if isinstance(v, list)}
    return Trial(**(d | tuples))


def sharded_experiment(n_edits: int = 50, seed: int = 0, layer: int | str | None = None, n_null: int = 10,
                       score: str = "whitened", threshold: float = DEFAULT_THRESHOLD, session=None, out=None,
                       engine=None, shard_size: int = 2) -> ExperimentResult:
    """:func:`~editing.forensics.experiment.run_experiment` with its edits as shards (``out``: a
    resumable run folder; ``engine``: e.g. Ray workers, each loading factworld once)."""
    import workbench

    base = session if session is not None else workbench.load("factworld")
    requests = experiment_requests(n_edits, seed)
    items = [{"index": i, "layer": at} for i, at in enumerate(edit_layers(base, requests, layer, seed))]
    params = {"n_edits": n_edits, "seed": seed, "score": score, "threshold": threshold}
    job = runner.Job("forensics-experiment", items, trial_shard, merge_trials, params, shard_size)
    outcome = runner.run(job, {"spec": "factworld", "dtype": str(base.dtype)[6:]}, out=out,
                         engine=engine or runner.InProcess(base))
    trials = [_trial(t) for t in outcome.result]
    null_scans = unedited_scans(base, n_null, seed, threshold)
    label = "default" if layer is None else str(layer)
    return ExperimentResult(n_edits, seed, label, score, threshold, tuple(trials), tuple(null_scans),
                            summarise(trials, null_scans, score, threshold))
