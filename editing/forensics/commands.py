"""``workbench diff``: weight-diff forensics between two checkpoints. Composition only."""
from __future__ import annotations

import argparse

from workbench.cli import add_json_option, add_report_option


def register(subparsers, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser("diff", help="was this checkpoint edited, where, and how? (streamed weight diff)")
    p.add_argument("--base", required=True, help="the original checkpoint (any model spec)")
    p.add_argument("--edited", required=True, help="the checkpoint to examine (any model spec)")
    p.add_argument("--revert", default=None, metavar="OUT",
                   help="for a rank-one edit: write the reconstructed base weights to this new directory")
    add_json_option(p)
    add_report_option(p)
    p.set_defaults(handler=cmd_diff)


def cmd_diff(args):
    from editing.forensics import diff_checkpoints, recover_rank_one
    from editing.forensics.recover import revert
    from editing.forensics.tensors import TensorIndex

    report = diff_checkpoints(args.base, args.edited)
    result = report.to_dict()
    lines = [f"signature: {report.signature}", report.summary]
    lines += [f"  {d.name}: |Δ|={d.abs_change:.4g} (rel {d.rel_change:.3g}), rank {d.rank}" for d in report.changed[:20]]
    if report.signature == "rome":
        recovery = recover_rank_one(args.base, args.edited, report)
        result["rank_one"] = recovery.to_dict()
        lines.append(f"rank-one update recovered: |u|={float(recovery.u.norm()):.4g}, "
                     f"reconstruction error {recovery.relative_residual:.2e}")
        if args.revert:
            out = revert(args.edited, recovery, args.revert)
            restored, base = TensorIndex(str(out)), TensorIndex(args.base)
            worst = max(float((restored.get(n).double() - base.get(n).double()).abs().max()) for n in base.names())
            result["revert"] = {"out": str(out), "max_abs_diff_from_base": worst}
            lines.append(f"reverted weights written to {out}; largest difference from the base: {worst:.3g}")
    elif args.revert:
        lines.append("--revert needs a single rank-one edit; nothing written")

    def report():  # the checkpoints are not loaded: their cards hash the weight files
        from workbench.report import ModelCard, Report, diff_section

        cards = (ModelCard.from_checkpoint(args.base, "base"), ModelCard.from_checkpoint(args.edited, "edited"))
        return Report(f"Weight diff: {args.edited} against {args.base}", cards, (diff_section(result),))

    return result, "\n".join(lines), report
