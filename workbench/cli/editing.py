"""Editing CLI commands: trace, stats, edit, edit-bench. Composition only, no math."""
from __future__ import annotations

import argparse

from workbench.cli import scale
from workbench.cli.options import (add_json_option, add_report_option, add_run_options, load_from_args,
                                    non_negative_float, non_negative_int, positive_float, positive_int, seed_int)


def register(subparsers, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser("trace", parents=[common], help="causal trace: where is a fact recalled?")
    p.add_argument("--prompt", default=None, help="prompt with {} where the subject goes")
    p.add_argument("--subject", default=None)
    p.add_argument("--target", default=None, help="answer to follow (default: the model's answer)")
    p.add_argument("--kind", default="all", choices=["all", "resid", "mlp", "attn"])
    p.add_argument("--samples", type=positive_int, default=10, help="noise samples")
    p.add_argument("--noise", type=positive_float, default=None, help="noise std (default 3 x std of subject embeddings)")
    p.add_argument("--window", type=positive_int, default=None,
                   help="layers restored together for mlp/attn (default: a quarter of the depth, 1 to 10)")
    p.add_argument("--method", default="exact", choices=["exact", "attribution"],
                   help="exact restorations, or fast attribution patching (approximate)")
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--plot", default=None, metavar="FILE.png", help="save the heatmaps")
    add_json_option(p)
    add_report_option(p)
    scale.add_trace_dataset_options(p)
    p.set_defaults(handler=cmd_trace)

    p = subparsers.add_parser("stats", parents=[common], help="precompute MLP key statistics for editing")
    p.add_argument("--layer", type=int, action="append", required=True, help="layer (repeatable)")
    _stats_options(p)
    add_json_option(p)
    add_run_options(p)
    p.set_defaults(handler=cmd_stats)

    p = subparsers.add_parser("edit", parents=[common], help="rewrite a fact (ROME, MEMIT or AlphaEdit)")
    p.add_argument("--prompt", default=None, help="prompt with {} where the subject goes")
    p.add_argument("--subject", default=None)
    p.add_argument("--target", default=None, help="the new answer")
    p.add_argument("--requests", default=None, metavar="F.jsonl", help="many requests, one JSON object a line")
    _edit_options(p)
    p.add_argument("--save", default=None, metavar="DIR", help="write the edited model (HF format + edits.json)")
    add_json_option(p)
    add_report_option(p)
    p.set_defaults(handler=cmd_edit)

    p = subparsers.add_parser("edit-bench", parents=[common], help="edit the benchmark requests and score them")
    p.add_argument("--n", type=positive_int, default=100, help="number of requests")
    p.add_argument("--sequential", action="store_true", help="keep every edit (no undo between them): a curve")
    p.add_argument("--every", type=positive_int, default=10, help="with --sequential: score after this many edits")
    p.add_argument("--batch", type=positive_int, default=1, help="with --sequential: memit/alphaedit requests per edit")
    p.add_argument("--plot", default=None, metavar="FILE.png", help="with --sequential: save the curve")
    p.add_argument("--ridge", type=non_negative_float, default=0.0,
                   help="with --sequential (rome, memit): penalise each update's norm (C + ridge x mean eigenvalue x I)")
    p.add_argument("--requests", default=None, metavar="F.jsonl", help="other requests than the shipped set")
    p.add_argument("--fluency", type=non_negative_int, default=0, help="prompts per request to generate from (slow)")
    _edit_options(p)
    add_json_option(p)
    add_run_options(p)
    p.set_defaults(handler=cmd_edit_bench)


def _stats_options(p) -> None:
    p.add_argument("--corpus", default=None, help="text file, folder, or HF dataset name (factworld: its corpus)")
    p.add_argument("--tokens", type=positive_int, default=100_000, help="corpus tokens to average over")
    p.add_argument("--no-cov", action="store_true", help="use C = I instead of statistics (edits leak more)")


def _edit_options(p) -> None:
    p.add_argument("--method", default="rome", choices=["rome", "memit", "alphaedit"])
    p.add_argument("--layer", default=None, help="layer (MEMIT: the last edited one), or auto (causal-trace peak)")
    p.add_argument("--seed", type=seed_int, default=0)
    _stats_options(p)


def cmd_trace(args):
    from workbench import plots
    from workbench.errors import WorkbenchError

    if args.dataset:
        return scale.cmd_trace_dataset(args)
    if not (args.prompt and args.subject):
        raise WorkbenchError("give --prompt and --subject (or --dataset for an averaged trace)")
    from workbench.tokens import fill

    fill(args.prompt, args.subject)  # a prompt without {} fails before the model loads

    from editing.trace import causal_trace, plot

    session = load_from_args(args)
    result = causal_trace(session, args.prompt, args.subject, args.target, kinds=args.kind, samples=args.samples,
                          noise=args.noise, window=args.window, seed=args.seed, method=args.method)
    if args.plot:
        plots.save_png(plot(result), args.plot)
    lines = [f"P({result.target!r}): clean {result.clean_prob:.3f}, corrupted {result.corrupted_prob:.3f}"]
    for kind in result.scores:
        layer, token = result.peak(kind)
        lines.append(f"{kind:>5}: peak {float(result.scores[kind][layer, token]):.3f} at layer {layer}, "
                     f"token {result.tokens[token]!r}")

    def report():  # drawn only for --report
        from workbench.report import ModelCard, Report

        return Report(f"Causal trace: {args.subject}", (ModelCard.from_session(session),),
                      (result.to_section(plots.png_bytes(plot(result))),))

    return result.to_dict(), "\n".join(lines), report


def cmd_stats(args):
    from editing.covariance import get_stats

    if args.out or args.ray is not None:
        return scale.cmd_stats_sharded(args)

    session = load_from_args(args)
    rows = [get_stats(session, layer, no_cov=args.no_cov, **({} if args.no_cov else
                                                              {"corpus": args.corpus, "tokens": args.tokens})).to_dict()
            for layer in args.layer]
    return {"model": session.name, "stats": rows}, "\n".join(
        f"layer {r['layer']}: {r['tokens']} tokens from {r['corpus']}" for r in rows)


def cmd_edit(args):
    from workbench.errors import WorkbenchError

    from editing.requests import EditRequest, load_requests  # no torch: a bad request fails at once

    if args.requests:
        requests = load_requests(args.requests)
    elif args.prompt and args.subject and args.target is not None:
        requests = [EditRequest(args.prompt, args.subject, args.target)]
    else:
        raise WorkbenchError("give --prompt, --subject and --target, or --requests F.jsonl")
    from editing.editor import edit
    from editing.export import save

    session = load_from_args(args)
    base_hash = session.weights_hash() if args.report else None  # for the report's model card
    kwargs = {} if args.no_cov else {"corpus": args.corpus, "tokens": args.tokens}
    result = edit(session, requests, args.method, args.layer, no_cov=args.no_cov, seed=args.seed, **kwargs)
    out = result.to_dict()
    if args.save:
        out["saved"] = str(save(session, args.save))
    b, a, m = out["before"], out["after"], out["metrics"]
    text = (f"{args.method.upper()} at layer {out['layer']} ({out['elapsed_s']:.1f}s): "
            f"{b['top_token']!r} -> {a['top_token']!r}, P(new) {b['target_prob']:.3f} -> {a['target_prob']:.3f}\n"
            + "  ".join(f"{k} {v:.2f}" for k, v in m.items() if v is not None)
            + (f"\nsaved to {out['saved']}" if args.save else ""))

    def report():
        from workbench.report import ModelCard, Report

        card = ModelCard.from_session(session, base_weights_hash=base_hash)
        return Report(f"Edit: {requests[0].subject} ->{requests[0].target_new}", (card,),
                      (result.to_section(out.get("saved")),))

    return out, text, report


def cmd_edit_bench(args):
    from workbench.errors import WorkbenchError

    if args.ridge and not args.sequential:
        raise WorkbenchError("--ridge controls sequential runs: add --sequential")
    if args.ray is not None or (args.out and not args.sequential):
        return scale.cmd_edit_bench_sharded(args)
    from editing.quality_bench import run_benchmark
    from editing.sequential_bench import NormControl

    session = load_from_args(args)
    kwargs = {} if args.no_cov else {"corpus": args.corpus, "tokens": args.tokens}
    result = run_benchmark(session, args.method, n=args.n, sequential=args.sequential, every=args.every,
                           batch=args.batch, layer=args.layer, no_cov=args.no_cov, seed=args.seed, path=args.requests,
                           fluency_prompts=args.fluency, control=NormControl(args.ridge), out=args.out, **kwargs)
    if args.plot and result.get("curve"):
        from editing.sequential_bench import plot_curves

        plot_curves({args.method: result["curve"]}, args.plot)
    text = "\n".join(f"{k}: {v}" for k, v in result.items() if k not in ("curve", "per_request"))
    return result, text
