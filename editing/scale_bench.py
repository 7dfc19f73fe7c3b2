"""Scale figures, as ratios measured in one run (``workbench bench --only scale``).

``parallel_speedup``: the averaged trace of 40 factworld facts (quick: 8) in this process
(load + run) divided by the same job on a local Ray with 2 workers (workers start and load the
model + run; starting Ray itself is not counted, as on a running cluster). Both use every core:
in-process torch's own threads, on Ray one thread per worker. ``parallel_speedup_vs_one_thread``
divides the in-process run with one torch thread instead (on a busy small CPU, one thread can be
faster than torch's pool, which flatters ``parallel_speedup``; this one separates the effects). ``stats_merge_error``: max
relative difference between the key covariance merged from per-shard float64 sums (one batch
per shard) and a single float64 pass over the same tokens. ``scale_per_fact_s``: the trace's
worker seconds per fact, the basis of the cost estimates in the README.
"""
from __future__ import annotations

import os
import time


def _trace_walls(n: int) -> dict:
    from workbench import load
    from workbench.ray_engine import RayEngine, import_ray

    from editing.trace_dataset import trace_dataset

    kw = dict(n=n, kinds="all", samples=10, window=1, shard_size=2)
    spec = {"spec": "factworld", "device": "cpu"}
    from workbench.devices import single_thread

    t0 = time.perf_counter()
    here = trace_dataset(load("factworld", device="cpu"), "known_1000", model_spec=spec, **kw)
    in_process = time.perf_counter() - t0
    with single_thread():
        t0 = time.perf_counter()
        trace_dataset(load("factworld", device="cpu"), "known_1000", model_spec=spec, **kw)
        one_thread = time.perf_counter() - t0
    ray = import_ray()
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=min(2, os.cpu_count() or 1), include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    try:
        t0 = time.perf_counter()
        there = trace_dataset(spec, "known_1000", engine=RayEngine(workers=2), **kw)
        on_ray = time.perf_counter() - t0
    finally:
        if started:
            ray.shutdown()
    gap = max(float((here.mean[k] - there.mean[k]).abs().nan_to_num().max()) for k in here.mean)
    return {"parallel_speedup": round(in_process / on_ray, 3), "parallel_in_process_s": round(in_process, 2),
            "parallel_speedup_vs_one_thread": round(one_thread / on_ray, 3),
            "parallel_in_process_one_thread_s": round(one_thread, 2),
            "parallel_ray_2_workers_s": round(on_ray, 2), "parallel_facts": n, "parallel_max_cell_gap": gap,
            "scale_per_fact_s": round(here.run["per_item_s"], 4), "scale_cores": os.cpu_count()}


def _merge_error(tokens: int) -> dict:
    from workbench import load

    from editing.stats_job import float64_sum, sharded_cov

    session = load("factworld", device="cpu")
    layer = session.n_layers // 2
    merged, count, _, outcome = sharded_cov(session, layer, tokens=tokens, shard_size=1)
    total, n = float64_sum(session, layer, None, tokens)
    single = total / n
    error = float((merged - single).abs().max() / single.abs().max())
    return {"stats_merge_error": error, "stats_merge_shards": outcome.shards, "stats_merge_tokens": count}


def scale_speed(quick: bool = False, device: str = "cpu") -> dict:  # noqa: ARG001 (CPU figures)
    """The scale figures (see the module docstring); always on the CPU. Without Ray installed the
    parallel figures are None, with a note naming the extra."""
    from workbench.errors import WorkbenchError
    from workbench.ray_engine import import_ray

    results = _merge_error(2_000 if quick else 20_000)
    try:
        import_ray()
    except WorkbenchError as exc:  # Ray missing: say so instead of failing the whole bench
        return results | {"parallel_speedup": None, "parallel_note": str(exc)}
    return results | _trace_walls(8 if quick else 40)
