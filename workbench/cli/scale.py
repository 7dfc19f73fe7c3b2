"""Dataset-scale CLI commands (sharded, resumable, optionally on Ray): the averaged trace
(``workbench trace --dataset``) and ``probe-grid``. Composition only, no math.

    workbench trace --dataset known_1000 --relation P36 --n 200 --out runs/p36 --plot p36.png
    workbench trace --dataset known_1000 --n 40 --ray --workers 2
"""
from __future__ import annotations

import argparse
import sys

from workbench.cli.options import engine_from_args, load_from_args, model_spec_from_args


def add_trace_dataset_options(p: argparse.ArgumentParser) -> None:
    """The options ``workbench trace`` gains for averaged traces (its own parser keeps the rest)."""
    from workbench.cli.options import add_run_options

    group = p.add_argument_group("averaged trace (ROME's main figure)")
    group.add_argument("--dataset", default=None, metavar="known_1000|F.jsonl",
                       help="average the trace over a dataset's known facts instead of one prompt")
    group.add_argument("--relation", default=None, help="with --dataset: only this relation (e.g. P36)")
    group.add_argument("--n", type=int, default=200, help="with --dataset: facts to try (the first n)")
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


def register(subparsers, common: argparse.ArgumentParser) -> None:  # noqa: ARG001 (probe-grid comes later)
    pass
