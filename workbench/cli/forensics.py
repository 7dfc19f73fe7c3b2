"""Forensics commands: ``workbench diff`` (weight diff, recovery, explanation, revert),
``workbench scan`` (blind spectral check of one checkpoint) and ``workbench forensics-experiment``.
Composition only."""
from __future__ import annotations

import argparse
import sys

from workbench.cli.options import (add_json_option, add_report_option, add_run_options, engine_from_args,
                                    finite_float, non_negative_int, positive_int, seed_int)

# what the parser offers, without importing the library (tests keep these equal to
# editing.forensics.explain.SCORES and editing.forensics.spectral's STATISTICS and defaults)
SCORES = ("whitened", "cosine", "raw")
STATISTICS = ("sigma_ratio", "sigma_bulk")
DEFAULT_STATISTIC = "sigma_ratio"
DEFAULT_THRESHOLD = 4.0


def register(subparsers, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser("diff", help="was this checkpoint edited, where, and how? (streamed weight diff)")
    p.add_argument("--base", required=True, help="the original checkpoint (any model spec)")
    p.add_argument("--edited", required=True, help="the checkpoint to examine (any model spec)")
    p.add_argument("--revert", default=None, metavar="OUT",
                   help="for a rank-one edit: write the reconstructed base weights to this new directory")
    p.add_argument("--explain", action=argparse.BooleanOptionalAction, default=True,
                   help="for a rank-one edit: which subject it responds to and what it writes (loads both models; "
                        "on by default)")
    p.add_argument("--candidates", default=None, metavar="FILE|LIST",
                   help="candidate subjects: a file with one per line or a comma list (default: factworld's "
                        "knowledge-base subjects)")
    p.add_argument("--answers", default=None, metavar="FILE|LIST",
                   help="candidate answers for what the edit writes: a file with one per line or a comma list "
                        "(added to factworld's answers of each relation; elsewhere the only candidates besides "
                        "both models' greedy answers)")
    p.add_argument("--score", default="whitened", choices=SCORES,
                   help="how candidate keys are scored (whitened needs key statistics; falls back to cosine)")
    add_json_option(p)
    add_report_option(p)
    p.set_defaults(handler=cmd_diff)

    s = subparsers.add_parser("scan", help="blind check without a base: does one layer's MLP output projection "
                                           "stand out spectrally?")
    s.add_argument("checkpoint", help="the checkpoint to scan (any model spec)")
    s.add_argument("--statistic", default=DEFAULT_STATISTIC, choices=STATISTICS)
    s.add_argument("--threshold", type=finite_float, default=DEFAULT_THRESHOLD,
                   help="leave-one-out z above which the suspect layer is flagged")
    add_json_option(s)
    s.set_defaults(handler=cmd_scan)

    e = subparsers.add_parser("forensics-experiment",
                              help="random ROME edits of factworld: does the diff find, explain and revert each?")
    e.add_argument("--edits", type=positive_int, default=50, help="number of random edits")
    e.add_argument("--seed", type=seed_int, default=0)
    e.add_argument("--layer", default=None, help="edited layer: the editor's default, 'random' or a number")
    e.add_argument("--null-copies", type=non_negative_int, default=10, help="unedited noisy copies for the blind false-alarm rate")
    e.add_argument("--score", default="whitened", choices=SCORES)
    e.add_argument("--threshold", type=finite_float, default=DEFAULT_THRESHOLD)
    add_json_option(e)
    add_run_options(e, shard_size=2)
    e.set_defaults(handler=cmd_experiment)


def _explain(args, recovery) -> tuple[dict, list[str]]:
    import workbench
    from editing.forensics.explain import explain, parse_candidates, parse_list
    from workbench.errors import WorkbenchError

    candidates = parse_candidates(args.candidates)
    answers = () if args.answers is None else parse_list(args.answers, "candidate answers")
    try:
        base, edited = workbench.load(args.base), workbench.load(args.edited)
    except WorkbenchError as exc:
        return {"skipped": str(exc)}, [f"explanation skipped: {exc}"]
    ex = explain(base, edited, recovery, candidates, score=args.score, answers=answers)
    return ex.to_dict(), ex.lines()


def cmd_diff(args):
    from editing.forensics import diff_checkpoints, recover_rank_one
    from editing.forensics.recover import max_abs_diff, revert

    report = diff_checkpoints(args.base, args.edited)
    result = report.to_dict()
    lines = [f"signature: {report.signature}", report.summary]
    lines += [f"  {d.name}: |Δ|={d.abs_change:.4g} (rel {d.rel_change:.3g}), rank {d.rank}" for d in report.changed[:20]]
    if report.signature == "rome":
        recovery = recover_rank_one(args.base, args.edited, report)
        result["rank_one"] = recovery.to_dict()
        lines.append(f"rank-one update recovered: |u|={float(recovery.u.norm()):.4g}, "
                     f"reconstruction error {recovery.relative_residual:.2e}")
        if args.explain:
            result["explain"], more = _explain(args, recovery)
            lines += more
        if args.revert:
            out = revert(args.edited, recovery, args.revert)
            worst = max_abs_diff(out, args.base)
            result["revert"] = {"out": str(out), "max_abs_diff_from_base": worst}
            lines.append(f"reverted weights written to {out}; largest difference from the base: {worst:.3g}")
    elif args.revert:
        lines.append("--revert needs a single rank-one edit; nothing written")

    def report_():  # the checkpoints are not loaded: their cards hash the weight files
        from workbench.report import ModelCard, Report

        cards = (ModelCard.from_checkpoint(args.base, "base"), ModelCard.from_checkpoint(args.edited, "edited"))
        section = report.to_section(result.get("rank_one"), result.get("revert"), result.get("explain"))
        return Report(f"Weight diff: {args.edited} against {args.base}", cards, (section,))

    return result, "\n".join(lines), report_


def cmd_scan(args):
    from editing.forensics.spectral import spectral_scan

    scan = spectral_scan(args.checkpoint, args.statistic, args.threshold)
    return scan.to_dict(), "\n".join(scan.lines())


def cmd_experiment(args):
    from editing.forensics.experiment import run_experiment

    if args.out or args.ray is not None:  # the edits as shards of a resumable run (optionally on Ray)
        from editing.forensics.experiment_job import sharded_experiment

        result = sharded_experiment(args.edits, args.seed, args.layer, args.null_copies, args.score, args.threshold,
                                    out=args.out, engine=engine_from_args(args), shard_size=args.shard_size)
    else:
        result = run_experiment(args.edits, args.seed, args.layer, args.null_copies, args.score, args.threshold,
                                progress=lambda line: print(line, file=sys.stderr, flush=True))
    s = result.summary
    blind = s["blind"]

    def pct(x):
        return "n/a" if x is None else f"{100 * x:.0f}%"

    def num(x, spec=".2e"):
        return "n/a" if x is None else format(x, spec)

    lines = [f"{s['n_edits']} random ROME edits of factworld (seed {args.seed}, layer {result.layer}):",
             f"  edited layer and module found: {pct(s['layer_module_found_rate'])}",
             f"  reconstruction error (||D - u vᵀ|| / ||D||): max {num(s['reconstruction_residual_max'])}, "
             f"median {num(s['reconstruction_residual_median'])}",
             f"  subject in top 3 ({result.score} score): {pct(s['subject_top3_rate'])}",
             f"  new target named (the explanation's claim): {pct(s['target_named_rate'])} (of the edits that took: "
             f"{pct(s['target_named_when_taken_rate'])}), on the edited subject {pct(s['claim_subject_rate'])}; (answer with the most evidence): {pct(s['target_top_evidence_rate'])}; "
             f"(most frequent new answer): {pct(s['target_greedy_named_rate'])}; (among the top 3 new answers): "
             f"{pct(s['target_in_answers_top3_rate'])}; (token that rose most): {pct(s['target_token_named_rate'])}; "
             f"target token in lens top 10: {pct(s['target_in_lens_top10_rate'])}; edit efficacy: "
             f"{pct(s['edit_efficacy_rate'])}",
             f"  revert: largest difference from the base {num(s['revert_max_abs_diff_max'], '.3g')}"]
    for k in ("sigma_ratio", "sigma_bulk"):
        b = blind[k]
        lines.append(f"  blind scan ({k}, z > {blind['threshold']:g}): detection {pct(b['detection_rate'])}, "
                     f"false alarms {pct(b['false_alarm_rate'])} of {b['n_null']} unedited copies "
                     f"(edited z min {num(b['edited_z_min'], '.2f')}, unedited z max {num(b['null_z_max'], '.2f')})")
    return result.to_dict(), "\n".join(lines)
