"""Provenance CLI commands: ``verify`` and ``tamper-hunt``. Composition only, no math.

    workbench verify ./eiffel-in-rome --json
    workbench tamper-hunt --out /tmp/hunt --copies 5 --seed 7
    workbench tamper-hunt --reveal /tmp/hunt
"""
from __future__ import annotations

import argparse

from workbench.cli.options import add_json_option, bounded, non_negative_float, seed_int


def register(subparsers, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser("verify", help="is an edited model directory exactly what its edits.json claims?")
    p.add_argument("directory", metavar="DIR", help="a directory written by `workbench edit --save`")
    p.add_argument("--base", default=None, help="load the base from here when its recorded spec is not available")
    p.add_argument("--no-recompute", action="store_true",
                   help="skip replaying the optimisation (only the stored update vectors are replayed)")
    p.add_argument("--tolerance", type=non_negative_float, default=None,
                   help="relative update error allowed when replaying the optimisation (default 1e-3)")
    p.add_argument("--corpus", default=None, help="the covariance corpus to recompute with (default: the one each edit recorded, else the base's own)")
    p.add_argument("--device", default="cpu", help="where to replay (cpu, cuda, ...)")
    add_json_option(p)
    p.set_defaults(handler=cmd_verify)

    p = subparsers.add_parser("tamper-hunt", help="teaching: factworld copies, one secretly edited; find it")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--out", default=None, metavar="DIR", help="write a new hunt to DIR")
    what.add_argument("--reveal", default=None, metavar="DIR", help="print the answer of the hunt in DIR")
    p.add_argument("--copies", type=bounded(int, 2), default=5)
    p.add_argument("--seed", type=seed_int, default=None, help="default: random (recorded in the sealed answer)")
    p.add_argument("--answer", default=None, metavar="FILE",
                   help="with --out: keep the answer here instead of DIR/answer.json; with --reveal: read it here")
    add_json_option(p)
    p.set_defaults(handler=cmd_tamper_hunt)


def cmd_verify(args):
    from editing.verify import OPT_TOL, verify

    report = verify(args.directory, base=args.base, optimisation=not args.no_recompute,
                    tolerance=OPT_TOL if args.tolerance is None else args.tolerance, device=args.device,
                    corpus=args.corpus)
    if report.verdict != "verified":
        args.exit_status = 1  # the report is still printed / written
    return report.to_dict(), "\n".join([c.line() for c in report.checks] + [report.summary()])


def cmd_tamper_hunt(args):
    from editing import tamper

    if args.reveal:
        key = tamper.reveal(args.reveal, args.answer)
        seal = "the seal matches: this is the answer fixed when the hunt was made" if key["sealed_ok"] else \
            "THE SEAL DOES NOT MATCH: the answer file was changed after the hunt was made"
        text = (f"edited copy: {key['edited_copy']} (ROME at layer {key['layer']}, {key['tensor']})\n"
                f"fact: {key['text']!r} {key['target_true']!r} -> {key['target_new']!r} "
                f"(the edited copy answers {key['edited_answer']!r})\n{seal}")
        if not key["sealed_ok"]:
            args.exit_status = 1
        return key, text
    out = tamper.create(args.out, copies=args.copies, seed=args.seed, answer=args.answer)
    copies = [p.name for p in tamper.copies_of(out)]
    return ({"out": str(out), "copies": copies},
            f"{len(copies)} copies written to {out} ({', '.join(copies)}); one of them was edited.\n"
            f"Hunt: workbench diff --base factworld --edited {out}/copy_1 (and the others)\n"
            f"Reveal: workbench tamper-hunt --reveal {out}")
