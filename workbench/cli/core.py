"""Core CLI commands: info, generate, lens, weights, factworld. Composition only, no math."""
from __future__ import annotations

import argparse

from workbench.cli.options import (add_json_option, load_from_args, non_negative_float, positive_int,
                                    seed_int)


def register(subparsers, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser("info", parents=[common], help="architecture card of a model")
    p.add_argument("--hashes", action="store_true", help="also hash the source files and in-memory weights")
    add_json_option(p)
    p.set_defaults(handler=cmd_info)

    p = subparsers.add_parser("generate", parents=[common], help="continue a prompt")
    p.add_argument("--prompt", required=True)
    p.add_argument("--max-new-tokens", type=positive_int, default=20)
    p.add_argument("--temperature", type=non_negative_float, default=0.0, help="0 = greedy; above 0 samples")
    p.add_argument("--top-k", type=positive_int, default=None)
    p.add_argument("--seed", type=seed_int, default=0)
    add_json_option(p)
    p.set_defaults(handler=cmd_generate)

    p = subparsers.add_parser("lens", parents=[common], help="logit lens: the answer after every layer")
    p.add_argument("--prompt", required=True)
    p.add_argument("--target", default=None, help="answer whose probability to follow, e.g. ' Paris'")
    p.add_argument("--k", type=positive_int, default=5, help="top tokens per layer")
    p.add_argument("--plot", default=None, metavar="FILE.png", help="save the layers x positions heatmap")
    add_json_option(p)
    p.set_defaults(handler=cmd_lens)

    p = subparsers.add_parser("weights", parents=[common], help="weight statistics, or a slice as an image")
    p.add_argument("--layer", type=int, default=None, help="with --plot: the layer to show")
    p.add_argument("--matrix", default="mlp_out", help="attn_q, attn_k, attn_v, attn_o, mlp_in, mlp_gate, mlp_out")
    p.add_argument("--plot", default=None, metavar="FILE.png", help="save a 64x64 slice of the matrix as an image")
    add_json_option(p)
    p.set_defaults(handler=cmd_weights)

    p = subparsers.add_parser("factworld", help="rebuild or evaluate the embedded factworld model")
    sub = p.add_subparsers(dest="factworld_command", required=True, metavar="ACTION")
    t = sub.add_parser("train", help="rebuild corpus, tokenizer and model from a seed")
    t.add_argument("--out", required=True, help="directory to write (must not exist)")
    t.add_argument("--seed", type=seed_int, default=0)
    add_json_option(t)
    t.set_defaults(handler=cmd_factworld_train)
    e = sub.add_parser("eval", parents=[common], help="recall on training, held-out and two-hop phrasings")
    add_json_option(e)
    e.set_defaults(handler=cmd_factworld_eval)


def cmd_info(args):
    session = load_from_args(args)
    result = session.info.to_dict()
    if args.hashes:
        result |= {"source_sha256": session.source_sha256, "weights_hash": session.weights_hash()}
    text = "\n".join(f"{k:>14}: {v}" for k, v in result.items())
    return result, text


def cmd_generate(args):
    from workbench.generation import generate

    session = load_from_args(args)
    out = generate(session, args.prompt, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                   top_k=args.top_k, seed=args.seed)
    return out.to_dict(), f"{out.prompt}\033[1m{out.completion}\033[0m" if _tty() else out.prompt + out.completion


def cmd_lens(args):
    from workbench import plots
    from workbench.lens import logit_lens

    session = load_from_args(args)
    result = logit_lens(session, args.prompt, target=args.target, k=args.k)
    if args.plot:
        plots.save_png(plots.lens_heatmap(result), args.plot)
    lines = [f"layer {row['layer']:>2}: " + "  ".join(f"{t['token']!r} {t['prob']:.2f}" for t in row["top"][:3])
             + ("" if row["target_prob"] is None else f"   P({args.target!r})={row['target_prob']:.3f}")
             for row in result.layers]
    return result.to_dict(), "\n".join(lines)


def cmd_weights(args):
    from workbench import plots
    from workbench.weights import weight_slice, weight_stats

    session = load_from_args(args)
    if args.plot:
        layer = session.n_layers // 2 if args.layer is None else args.layer
        values = weight_slice(session, layer, args.matrix)
        plots.save_png(plots.matrix_image(values, f"{args.matrix}, layer {layer} (64x64 slice)"), args.plot)
    rows = weight_stats(session)
    text = "\n".join(f"layer {r['layer']:>2} {r['matrix']:<8} {str(tuple(r['shape'])):<14} std {r['std']:.4f} "
                     f"norm {r['norm']:.2f}" for r in rows)
    return {"model": session.name, "matrices": rows}, text


def cmd_factworld_train(args):
    from workbench import factworld

    meta = factworld.train(args.out, seed=args.seed)
    return meta, f"factworld written to {args.out}"


def cmd_factworld_eval(args):
    from workbench import factworld

    session = load_from_args(args)
    scores = factworld.evaluate(session)
    return scores, "\n".join(f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}" for k, v in scores.items())


def _tty() -> bool:
    import sys

    return sys.stdout.isatty()
