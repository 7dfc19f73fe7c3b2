"""Ray parity and faults on a local Ray with 2 CPUs (the CI machine's size).

One local Ray for the module (``ray.init(num_cpus=2)``), always shut down; the only processes
killed are this Ray's workers, by their own pids. Every wait is bounded.
"""
from __future__ import annotations

import json
import os
import signal

import pytest
import torch

from workbench import runner
from workbench.errors import WorkbenchError

from editing.trace_dataset import DatasetTraceResult, trace_dataset, trace_job

ray = pytest.importorskip("ray", reason="Ray is the `cluster` extra (in `dev`): pip install -e '.[cluster]'")
from workbench.ray_engine import RayEngine  # noqa: E402

FACTWORLD = {"spec": "factworld", "device": "cpu"}
TRACE = dict(n=6, kinds=("mlp", "attn"), samples=2, window=1, shard_size=1)


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def in_process_factworld(factworld):
    return trace_dataset(factworld, "known_1000", model_spec=FACTWORLD, **TRACE)


def _close(a: DatasetTraceResult, b: DatasetTraceResult, atol: float = 1e-6) -> None:
    assert (a.kept, a.dropped) == (b.kept, b.dropped)
    for kind in a.mean:
        torch.testing.assert_close(a.mean[kind], b.mean[kind], rtol=0, atol=atol, equal_nan=True)
        torch.testing.assert_close(a.ci[kind], b.ci[kind], rtol=0, atol=atol, equal_nan=True)
        assert torch.equal(a.count[kind], b.count[kind])


def test_parity_factworld(local_ray, in_process_factworld):
    engine = RayEngine(workers=2)
    on_ray = trace_dataset(FACTWORLD, "known_1000", engine=engine, **TRACE)
    assert on_ray.run["workers"] == 2 and on_ray.run["engine"] == "ray"
    _close(on_ray, in_process_factworld)


def test_parity_tiny_gpt_neox(local_ray, tmp_path):
    from workbench import load
    from workbench.testing import save_tiny_model

    model_dir = save_tiny_model("gpt_neox", tmp_path / "neox", seed=3)
    facts = tmp_path / "facts.jsonl"
    facts.write_text("\n".join(json.dumps({"prompt": "The {} is located in the city of", "subject": s, "target": t})
                               for s, t in [("Eiffel Tower", " Paris"), ("Colosseum", " Rome"),
                                            ("Louvre", " Paris"), ("Big Ben", " London")]) + "\n")
    spec = {"spec": str(model_dir), "device": "cpu"}
    kw = dict(kinds="all", samples=2, window=1, keep="all", shard_size=1)
    here = trace_dataset(load(str(model_dir), device="cpu"), str(facts), model_spec=spec, **kw)
    there = trace_dataset(spec, str(facts), engine=RayEngine(workers=2), **kw)
    assert here.kept == 4
    _close(here, there)


def test_killed_worker_same_result_and_resume(local_ray, in_process_factworld, tmp_path):
    """SIGKILL one worker (its own pid) after the first shard: a new worker reruns its shard; the
    result is unchanged, and the run folder it leaves resumes in-process with nothing left to do."""
    engine = RayEngine(workers=2)
    killed: list[int] = []

    def kill_one(index: int) -> None:
        if not killed:
            pid = engine.pids()[0]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    job = trace_job("known_1000", **TRACE)
    outcome = runner.run(job, FACTWORLD, out=tmp_path / "run", engine=engine, on_shard=kill_one)
    assert killed and engine.restarts >= 1
    result = DatasetTraceResult.from_merged(outcome.result, "known_1000", None, job.params)
    _close(result, in_process_factworld)
    again = runner.run(job, FACTWORLD, out=tmp_path / "run", engine=runner.InProcess("never used"))
    assert again.skipped_shards == again.shards and again.result == outcome.result
    with pytest.raises(WorkbenchError, match="other arguments"):
        runner.run(trace_job("known_1000", **(TRACE | {"samples": 3})), FACTWORLD, out=tmp_path / "run",
                   engine=RayEngine(workers=2))


def test_worker_that_cannot_load_the_model(local_ray, tmp_path):
    with pytest.raises(WorkbenchError, match="cannot load the model .*every worker"):
        trace_dataset({"spec": str(tmp_path / "missing")}, "known_1000", n=1, engine=RayEngine(workers=1))


@pytest.mark.slow
def test_stats_and_edit_bench_parity(local_ray, factworld):
    from workbench.devices import single_thread

    from editing.bench_job import sharded_benchmark
    from editing.stats_job import float64_sum, sharded_cov

    cov, count, _, _ = sharded_cov(factworld, 1, tokens=300, shard_size=1, batch_size=1,
                                   engine=RayEngine(workers=2), model_spec=FACTWORLD)
    with single_thread():  # as each of the 2 workers on 2 cores: float32 forwards depend on the thread count
        total, n = float64_sum(factworld, 1, None, 300, batch_size=1)
    assert count == n and float((cov - total / n).abs().max() / (total / n).abs().max()) < 1e-10
    here = sharded_benchmark(factworld, n=2, no_cov=True, shard_size=1, model_spec=FACTWORLD)
    there = sharded_benchmark(FACTWORLD, n=2, no_cov=True, shard_size=1, engine=RayEngine(workers=2))
    assert {k: here[k] for k in ("before", "after", "layers")} == {k: there[k] for k in ("before", "after", "layers")}


def test_probe_grid_parity(local_ray, factworld):
    from probes.grid import probe_grid

    kw = dict(seeds=(0,), limit=60)
    here = probe_grid(["factworld_truth"], [factworld], ["last", "mean"], **kw)
    there = probe_grid(["factworld_truth"], [FACTWORLD], ["last", "mean"],
                       engine_for=lambda spec: RayEngine(workers=2), **kw)
    assert len(here) == 12 and [(r["position"], r["layer"]) for r in here] == [(r["position"], r["layer"]) for r in there]
    for a, b in zip(here, there):
        assert a["value"] == pytest.approx(b["value"], abs=1e-6) and a["control"] == pytest.approx(b["control"], abs=1e-6)
