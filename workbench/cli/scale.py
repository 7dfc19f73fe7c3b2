"""Dataset-scale CLI commands (sharded, resumable, optionally on Ray): the averaged trace
(``workbench trace --dataset``) and ``probe-grid``. Composition only, no math.

    workbench trace --dataset known_1000 --relation P36 --n 200 --out runs/p36 --plot p36.png
    workbench trace --dataset known_1000 --n 40 --ray --workers 2
"""
from __future__ import annotations

import argparse
import sys

from workbench.cli.options import (add_json_option, add_run_options, engine_from_args, load_from_args, model_spec_from_args,
                                    positive_int)


def add_trace_dataset_options(p: argparse.ArgumentParser) -> None:
    """The options ``workbench trace`` gains for averaged traces (its own parser keeps the rest)."""
    group = p.add_argument_group("averaged trace (ROME's main figure)")
    group.add_argument("--dataset", default=None, metavar="known_1000|F.jsonl",
                       help="average the trace over a dataset's known facts instead of one prompt")
    group.add_argument("--relation", default=None, help="with --dataset: only this relation (e.g. P36)")
    group.add_argument("--n", type=positive_int, default=200, help="with --dataset: facts to try (the first n)")
    group.add_argument("--all-facts", action="store_true", help="with --dataset: also trace facts the model "
                       "does not know (their given answer)")
    add_run_options(p)


def _print_cost(outcome: dict) -> None:
    if outcome:
        print(f"[run] {outcome['items']} items, {outcome['shards']} shards ({outcome['skipped_shards']} reused), "
              f"{outcome['wall_s']:.1f} s wall on {outcome['workers']} {outcome['engine']} worker(s); "
              f"{outcome['per_item_s']:.3f} s per item per worker", file=sys.stderr)


def cmd_trace_dataset(args):
    from workbench import plots
    from workbench.errors import WorkbenchError

    from editing.trace_dataset import trace_dataset
    from editing.trace_dataset_plot import plot_dataset_trace

    if args.prompt or args.subject:
        raise WorkbenchError("give either --dataset or --prompt/--subject, not both")
    if args.method != "exact":
        raise WorkbenchError("--dataset traces use the exact method")
    engine = engine_from_args(args)
    model = model_spec_from_args(args) if engine is not None else load_from_args(args)
    result = trace_dataset(model, args.dataset, relation=args.relation, n=args.n, kinds=args.kind,
                           samples=args.samples, noise=args.noise, window=args.window, seed=args.seed,
                           keep="all" if args.all_facts else "known", out=args.out, engine=engine,
                           shard_size=args.shard_size, model_spec=model_spec_from_args(args))
    _print_cost(result.run)
    if args.plot:
        plots.save_png(plot_dataset_trace(result), args.plot)

    def report():
        from workbench.report import ModelCard, Report

        card = ModelCard.from_checkpoint(args.model) if engine is not None else ModelCard.from_session(model)
        return Report(f"Averaged causal trace: {args.dataset}", (card,),
                      (result.to_section(plots.png_bytes(plot_dataset_trace(result))),))

    return result.to_dict(), "\n".join(result.summary_lines()), report


def cmd_stats_sharded(args):
    from workbench.errors import WorkbenchError

    from editing.stats_job import sharded_cov

    if args.no_cov:
        raise WorkbenchError("--no-cov computes nothing: drop --out/--ray")
    session = load_from_args(args)  # the driver plans the corpus with the model's tokenizer
    engine = engine_from_args(args)
    rows = []
    for layer in args.layer:
        out = None if args.out is None else f"{args.out}/layer{layer}"
        cov, count, name, outcome = sharded_cov(session, layer, args.corpus, args.tokens, out=out, engine=engine,
                                                shard_size=args.shard_size, model_spec=model_spec_from_args(args))
        _print_cost(outcome.to_dict())
        rows.append({"layer": layer, "tokens": count, "corpus": name, "trace": float(cov.trace()),
                     "run": outcome.to_dict()})
    return {"model": session.name, "stats": rows}, "\n".join(
        f"layer {r['layer']}: {r['tokens']} tokens from {r['corpus']} (merged from shards)" for r in rows)


def cmd_edit_bench_sharded(args):
    from workbench.errors import WorkbenchError

    from editing.bench_job import sharded_benchmark

    if args.sequential or args.method != "rome":
        raise WorkbenchError("sharded runs (--out/--ray) are single ROME edits: a MEMIT/AlphaEdit batch runs in one "
                             "process, and a sequential run resumes with --out but runs in one process (drop --ray)")
    engine = engine_from_args(args)
    model = model_spec_from_args(args) if engine is not None else load_from_args(args)
    result = sharded_benchmark(model, n=args.n, layer=args.layer, no_cov=args.no_cov, seed=args.seed,
                               path=args.requests, fluency_prompts=args.fluency, corpus=args.corpus,
                               tokens=args.tokens, out=args.out, engine=engine, shard_size=args.shard_size,
                               model_spec=model_spec_from_args(args))
    _print_cost(result["run"])
    text = "\n".join(f"{k}: {v}" for k, v in result.items() if k not in ("per_request", "run"))
    return result, text


def register(subparsers, common: argparse.ArgumentParser) -> None:

    p = subparsers.add_parser("probe-grid", parents=[common], help="probe sweeps over datasets x models x "
                              "positions (x methods): one tidy table (CSV and JSON) and a summary plot")
    p.add_argument("--datasets", required=True, help="comma-separated dataset names or files")
    p.add_argument("--models", default=None, help="comma-separated models (default: --model)")
    p.add_argument("--positions", default="last", help="comma-separated: last, subject_last, mean")
    p.add_argument("--methods", default=None, help="comma-separated: logistic, mass-mean, ridge (default: per dataset)")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds of the held-out splits")
    p.add_argument("--limit", type=positive_int, default=None, help="about this many rows per dataset (seeded subset)")
    p.add_argument("--csv", default=None, metavar="F.csv", help="write the tidy table as CSV")
    p.add_argument("--plot", default=None, metavar="F.png", help="save the summary plot")
    add_json_option(p)
    add_run_options(p, shard_size=1)
    p.set_defaults(handler=cmd_probe_grid)


def _split(text: str | None) -> list[str] | None:
    return None if text is None else [part.strip() for part in text.split(",") if part.strip()]


def cmd_probe_grid(args):
    from workbench import plots
    from workbench.errors import WorkbenchError
    from workbench.io import write_text
    from workbench.tokens import ONE_VECTOR, check_position

    from probes.grid import probe_grid, summary_figure, to_csv

    positions = [check_position(p, ONE_VECTOR, "probes") for p in _split(args.positions)]
    try:
        seeds = [int(s) for s in _split(args.seeds)]
    except ValueError:
        raise WorkbenchError(f"--seeds {args.seeds!r}: give comma-separated integers") from None
    names = _split(args.models) or [args.model]
    specs = [model_spec_from_args(args) | {"spec": name} for name in names]
    engine_for = None
    if args.ray is not None:
        engine_for = lambda spec: engine_from_args(args)  # noqa: E731 (a fresh engine per model)
        models = specs
    else:
        from workbench.session import load

        models = [load(**spec) for spec in specs]
    rows = probe_grid(_split(args.datasets), models, positions, _split(args.methods), seeds=seeds, limit=args.limit,
                      out=args.out, engine_for=engine_for, shard_size=args.shard_size)
    if args.csv:
        write_text(args.csv, to_csv(rows))
    if args.plot:
        plots.save_png(summary_figure(rows), args.plot)
    best: dict = {}
    for r in rows:
        key = (r["dataset"], r["model"], r["position"], r["method"])
        if key not in best or r["value"] > best[key]["value"]:
            best[key] = r
    text = "\n".join(f"{' / '.join(map(str, k))}: best {r['metric']} {r['value']:.3f} at layer {r['layer']} "
                     f"(selectivity {r['selectivity'] if r['selectivity'] is None else round(r['selectivity'], 3)})"
                     for k, r in best.items())
    return {"rows": rows}, text
