"""A probe grid: datasets × models × positions × methods, one layer sweep per cell, one tidy table.

Each cell is a :func:`probes.sweep.sweep` (held-out entities, seeds, control task); cells are the
items of a :mod:`workbench.runner` job, one job per model (a worker loads one model), so a grid
shards, resumes and runs on Ray like any other job. The table has one row per cell and layer:
dataset, model, position, method, layer, metric, value, control, selectivity.

>>> import workbench
>>> rows = probe_grid(["factworld_truth"], [workbench.load("factworld")], ["last"], seeds=(0,), limit=120)
>>> sorted(rows[0]) == sorted(COLUMNS), len(rows) == 6
(True, True)
"""
from __future__ import annotations

import csv
import io

from workbench import runner
from workbench.errors import WorkbenchError

COLUMNS = ("dataset", "model", "position", "method", "layer", "metric", "value", "control", "selectivity")


def cells(datasets, positions, methods) -> list[dict]:
    """The grid's cells for one model (``methods`` None: each dataset's default method)."""
    if not datasets or not positions:
        raise WorkbenchError("a probe grid needs at least one dataset and one position")
    return [{"dataset": d, "position": p, "method": m} for d in datasets for p in positions for m in (methods or [None])]


def grid_shard(session, items: list[dict], params: dict) -> list[dict]:
    """The runner's work: sweep each cell and return its tidy rows."""
    from probes.datasets import load_dataset
    from probes.sweep import sweep

    rows = []
    for cell in items:
        dataset = load_dataset(cell["dataset"], limit=params["limit"])
        result = sweep(session, dataset, method=cell["method"], position=cell["position"], seeds=params["seeds"],
                       use_cache=False, progress=False)
        for layer in result.layers:
            rows.append({"dataset": cell["dataset"], "model": params["model"], "position": result.position,
                         "method": result.method, "layer": layer.layer, "metric": layer.metric, "value": layer.value,
                         "control": layer.control, "selectivity": layer.selectivity})
    return rows


def merge_rows(parts: list[list[dict]]) -> list[dict]:
    return [row for part in parts for row in part]


def probe_grid(datasets, models, positions, methods=None, seeds=(0, 1, 2), limit: int | None = None, out=None,
               engine_for=None, shard_size: int = 1) -> list[dict]:
    """Rows of the tidy table. ``models``: sessions or ``load`` keyword dicts; ``engine_for(spec)``
    gives each model's engine (default: this process); ``out/model_<i>`` holds each model's run."""
    rows = []
    for i, model in enumerate(models):
        spec = model if isinstance(model, dict) else {"spec": model.name, "dtype": str(model.dtype)[6:]}
        params = {"model": spec["spec"], "seeds": list(seeds), "limit": limit}
        job = runner.Job("probe-grid", cells(datasets, positions, methods), grid_shard, merge_rows, params, shard_size)
        engine = engine_for(spec) if engine_for else runner.InProcess(None if isinstance(model, dict) else model)
        rows += runner.run(job, spec, out=None if out is None else f"{out}/model_{i}", engine=engine).result
    return rows


def to_csv(rows: list[dict]) -> str:
    """The tidy table as CSV text (header: :data:`COLUMNS`)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def summary_figure(rows: list[dict]):
    """One line per (dataset, model, position, method): value by layer, with the control dashed."""
    from workbench import plots

    plt = plots.plt
    fig, ax = plt.subplots(figsize=(8, 5))
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["dataset"], row["model"], row["position"], row["method"]), []).append(row)
    for key, group in groups.items():
        group.sort(key=lambda r: r["layer"])
        line, = ax.plot([r["layer"] for r in group], [r["value"] for r in group], marker="o", label=" / ".join(key))
        if all(r["control"] is not None for r in group):
            ax.plot([r["layer"] for r in group], [r["control"] for r in group], ls="--", color=line.get_color())
    ax.set_xlabel("layer")
    ax.set_ylabel(f"held-out {rows[0]['metric']} (dashed: control task)" if rows else "score")
    ax.set_title("Probe grid")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig
