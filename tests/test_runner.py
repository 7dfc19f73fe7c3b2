"""The sharded runner in one process: run folder, resume, refusal, a killed driver; the averaged trace."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from workbench import runner
from workbench.cli.main import main
from workbench.errors import WorkbenchError

from editing.trace import causal_trace
from editing.trace_dataset import CLASSES, load_facts, token_classes, trace_dataset

CALLS: list = []


def _count_work(session, items, params):  # a module-level work function that records its calls
    CALLS.append(list(items))
    return {"sum": float(sum(items)) * params["scale"], "n": len(items)}


def _merge(parts):
    return {"sum": sum(p["sum"] for p in parts), "n": sum(p["n"] for p in parts)}


def test_run_folder_resume_and_refusal(tmp_path):
    job = runner.Job("count", tuple(range(10)), _count_work, _merge, {"scale": 2.0}, shard_size=3)
    CALLS.clear()
    out = runner.run(job, {"spec": "none"}, out=tmp_path / "run", engine=runner.InProcess("no model"))
    assert out.result == {"sum": 90.0, "n": 10} and len(CALLS) == 4 and out.skipped_shards == 0
    assert sorted(p.name for p in (tmp_path / "run" / "shards").iterdir()) == [f"{i:05d}.json" for i in range(4)]
    assert json.loads((tmp_path / "run" / "result.json").read_text()) == out.result
    # a lost shard (as if the run had died before it): only that one runs again
    (tmp_path / "run" / "shards" / "00002.json").unlink()
    CALLS.clear()
    again = runner.run(job, {"spec": "none"}, out=tmp_path / "run", engine=runner.InProcess("no model"))
    assert again.result == out.result and CALLS == [[6, 7, 8]] and again.skipped_shards == 3
    # other arguments into the same folder: refused, nothing run
    other = runner.Job("count", tuple(range(10)), _count_work, _merge, {"scale": 3.0}, shard_size=3)
    CALLS.clear()
    with pytest.raises(WorkbenchError, match="other arguments .*scale"):
        runner.run(other, {"spec": "none"}, out=tmp_path / "run", engine=runner.InProcess("no model"))
    assert CALLS == []
    with pytest.raises(WorkbenchError, match="other arguments"):
        runner.run(job, {"spec": "other"}, out=tmp_path / "run", engine=runner.InProcess("no model"))
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "notes.txt").write_text("mine")
    with pytest.raises(WorkbenchError, match="not a run folder"):
        runner.run(job, {"spec": "none"}, out=tmp_path / "stuff", engine=runner.InProcess("no model"))


def test_token_classes_and_facts(tmp_path):
    assert token_classes((2, 5), 9) == [[2], [3], [4], [5], [6, 7], [8]]
    assert token_classes((0, 2), 3) == [[0], [], [1], [], [], [2]]  # first subsequent token is the last token
    facts = load_facts("known_1000", relation="P36", n=5)
    assert len(facts) == 5 and all("{}" in f["prompt"] and f["target"].startswith(" ") for f in facts)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "no braces", "subject": "x"}\n')
    with pytest.raises(WorkbenchError, match="bad.jsonl:1"):
        load_facts(str(bad))


def test_averaged_trace_matches_per_fact_traces(factworld):
    """The class × layer means equal a hand average of single traces; sharding does not change them."""
    kw = dict(relation="P36", n=3, kinds=("mlp",), samples=2, window=1)
    one = trace_dataset(factworld, "known_1000", shard_size=1, **kw)
    three = trace_dataset(factworld, "known_1000", shard_size=3, **kw)
    assert one.kept + one.dropped == 3 and one.kept >= 2
    for kind in ("mlp",):
        torch.testing.assert_close(one.mean[kind], three.mean[kind], rtol=0, atol=1e-12, equal_nan=True)
    rows, clean = [], []
    for fact in load_facts("known_1000", relation="P36", n=3):
        r = causal_trace(factworld, fact["prompt"], fact["subject"], fact["target"], kinds="mlp", samples=2,
                         window=1)
        if _known(factworld, fact):
            last_subject = r.subject_range[1] - 1
            rows.append((r.scores["mlp"][:, last_subject] - r.corrupted_prob).double())
            clean.append(r.clean_prob)
    assert len(rows) == one.kept
    row = CLASSES.index("last subject token")
    torch.testing.assert_close(one.mean["mlp"][row], torch.stack(rows).mean(0), rtol=0, atol=1e-6)  # float32 batching
    assert one.clean_prob == pytest.approx(sum(clean) / len(clean))
    assert int(one.count["mlp"][row]) == one.kept
    d = json.loads(json.dumps(one.to_dict()))
    assert d["classes"] == list(CLASSES) and len(d["ci95"]["mlp"]) == 6 and d["run"]["items"] == 3
    assert set(d["by_relation"]) == {"P36"}


def _known(session, fact) -> bool:
    from editing.trace_dataset import knows

    return knows(session, fact["prompt"].format(fact["subject"]), fact["target"])


def test_cli_averaged_trace_report_and_errors(tmp_path, capsys):
    args = ["trace", "--dataset", "known_1000", "--relation", "P36", "--n", "3", "--samples", "2", "--kind", "mlp",
            "--window", "1"]
    assert main(args + ["--json", str(tmp_path / "r.json"), "--report", str(tmp_path / "r.html"),
                        "--plot", str(tmp_path / "r.png")]) == 0
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["kept"] + result["dropped"] == 3 and (tmp_path / "r.png").stat().st_size > 1000
    assert "Averaged causal trace" in (tmp_path / "r.html").read_text()
    capsys.readouterr()
    assert main(["trace", "--dataset", "nowhere.jsonl"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --dataset 'nowhere.jsonl'")


def test_ray_flag_without_ray_is_one_line(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    assert main(["trace", "--dataset", "known_1000", "--n", "1", "--ray"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "[cluster]" in err[0] and err[0].startswith("error: --ray needs Ray")


@pytest.mark.slow
def test_killed_driver_resumes_from_finished_shards(tmp_path):
    """Kill the CLI (by its pid) once a shard is saved; the rerun reuses the saved shards, imports no Ray,
    and gives the same averages as an uninterrupted run."""
    out = tmp_path / "run"
    args = ["trace", "--dataset", "known_1000", "--n", "6", "--samples", "2", "--kind", "mlp", "--window", "1",
            "--shard-size", "1", "--out", str(out)]
    env = dict(os.environ, WORKBENCH_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None and not list((out / "shards").glob("0*.json")):
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
    saved = len(list((out / "shards").glob("0*.json")))
    assert 1 <= saved < 6 and not (out / "result.json").exists()
    code = ("import sys, json; from workbench.cli.main import main; rc = main(sys.argv[1:]); "
            "assert 'ray' not in sys.modules, 'ray imported'; sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code, *args, "--json", str(tmp_path / "r.json")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    resumed = json.loads((tmp_path / "r.json").read_text())
    assert resumed["run"]["skipped_shards"] >= saved and f"({resumed['run']['skipped_shards']} reused)" in done.stderr
    fresh = json.loads(json.dumps(trace_dataset(_session(), "known_1000", n=6, kinds="mlp", samples=2, window=1,
                                                shard_size=1).to_dict()))
    assert resumed["kept"] == fresh["kept"]
    torch.testing.assert_close(grid(resumed["mean"]["mlp"]), grid(fresh["mean"]["mlp"]), rtol=0, atol=1e-6,
                               equal_nan=True)
    # the same folder with other arguments: one line, exit 2
    assert main(args[:-1] + [str(out), "--samples", "3"]) == 2


def grid(rows) -> torch.Tensor:
    """A JSON grid (None where no fact had the class) as a float64 tensor with NaN."""
    return torch.tensor([[float("nan") if v is None else v for v in row] for row in rows], dtype=torch.float64)


def _session():
    from workbench import load

    return load("factworld", device="cpu")


def test_sharded_stats_merge_exactly(factworld, tmp_path, capsys):
    from editing.stats_job import float64_sum, sharded_cov

    cov, count, name, outcome = sharded_cov(factworld, 1, tokens=300, shard_size=1, batch_size=1,
                                            out=tmp_path / "s")
    total, n = float64_sum(factworld, 1, None, 300, batch_size=1)
    assert count == n == 300 and name == "factworld" and outcome.shards >= 2
    assert float((cov - total / n).abs().max() / (total / n).abs().max()) < 1e-10
    capsys.readouterr()
    args = ["stats", "--layer", "1", "--tokens", "300", "--shard-size", "1", "--out", str(tmp_path / "cli"), "--json"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(args) == 0  # the rerun reads every shard back
    again = json.loads(capsys.readouterr().out)
    assert again["stats"][0]["run"]["skipped_shards"] == again["stats"][0]["run"]["shards"]
    assert again["stats"][0]["trace"] == first["stats"][0]["trace"] == pytest.approx(float((total / n).trace()))


@pytest.mark.slow
def test_sharded_edit_bench_equals_one_process_bench(factworld):
    from editing.bench_job import sharded_benchmark
    from editing.quality_bench import run_benchmark

    sharded = sharded_benchmark(factworld, n=2, no_cov=True, shard_size=1)
    plain = run_benchmark(factworld, "rome", n=2, no_cov=True)
    assert sharded["before"] == plain["before"] and sharded["after"] == plain["after"]
    assert sharded["n_requests"] == plain["n_requests"] == 2 and sharded["layers"] == plain["layers"]


def test_probe_grid_table_csv_and_plot(tmp_path, capsys):
    args = ["probe-grid", "--datasets", "factworld_truth", "--positions", "last", "--seeds", "0", "--limit", "60",
            "--csv", str(tmp_path / "g.csv"), "--plot", str(tmp_path / "g.png"), "--out", str(tmp_path / "run"),
            "--json"]
    assert main(args) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert len(rows) == 6 and {r["layer"] for r in rows} == set(range(6))  # factworld: 6 layers
    assert all(r["dataset"] == "factworld_truth" and r["model"] == "factworld" and r["position"] == "last"
               for r in rows)
    assert all(r["control"] is not None and r["selectivity"] == pytest.approx(r["value"] - r["control"])
               for r in rows)
    header = (tmp_path / "g.csv").read_text().splitlines()[0]
    assert header == "dataset,model,position,method,layer,metric,value,control,selectivity"
    assert (tmp_path / "g.png").stat().st_size > 1000
    assert main(args) == 0  # resumed: the same rows, read back from the run folder
    assert json.loads(capsys.readouterr().out)["rows"] == rows
    assert main(["probe-grid", "--datasets", "cities", "--positions", "everywhere"]) == 2


def test_cli_sequential_bench_resumes_with_out(tmp_path, capsys):
    """`edit-bench --sequential --out DIR` saves each curve point; a rerun reads them back (same curve);
    --ray is refused for sequential runs in one line."""
    args = ["edit-bench", "--model", "factworld", "--sequential", "--n", "2", "--every", "1", "--out",
            str(tmp_path / "run")]
    assert main(args + ["--json", str(tmp_path / "a.json")]) == 0
    first = json.loads((tmp_path / "a.json").read_text())
    assert len(list((tmp_path / "run" / "shards").iterdir())) == 2 and (tmp_path / "run" / "result.json").exists()
    assert [r["order"] for r in first["per_request"]] == [1, 2] and first["key_crosstalk"]
    assert main(args + ["--json", str(tmp_path / "b.json")]) == 0
    assert json.loads((tmp_path / "b.json").read_text())["curve"] == first["curve"]
    capsys.readouterr()
    assert main(args + ["--ray"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "drop --ray" in err[0]
