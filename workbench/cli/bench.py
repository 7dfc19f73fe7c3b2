"""``workbench bench``: the speed ratios of the core, ``editing``, ``probes`` and the command line, measured
in one run.

    workbench bench --json
    workbench bench --only editing --quick
"""
from __future__ import annotations

import argparse

from workbench.cli.options import add_json_option

GROUPS = ("core", "editing", "probes", "scale", "cli")


def register(subparsers, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser("bench", help="speed ratios measured in one run (JSON)")
    p.add_argument("--only", action="append", default=None, choices=GROUPS,
                   help="run only this benchmark (repeatable)")
    p.add_argument("--quick", action="store_true", help="smaller sizes (for a smoke test)")
    p.add_argument("--device", default="cpu", help="auto|cpu|cuda: where the core benchmark and our probe fits run "
                   "(scikit-learn and the editing benchmark stay on the CPU)")
    add_json_option(p)
    p.set_defaults(handler=cmd_bench)


def benchmarks() -> dict:
    """Group name -> its ``run(quick, device) -> dict`` (imported only when the command runs)."""
    from editing.scale_bench import scale_speed
    from editing.speed_bench import editing_speed
    from probes.speed_bench import probes_speed
    from workbench.cli.speed import cli_speed
    from workbench.speed_bench import core_speed

    return {"core": core_speed, "editing": editing_speed, "probes": probes_speed, "scale": scale_speed,
            "cli": cli_speed}


def cmd_bench(args):
    results: dict = {}
    for name, run in benchmarks().items():
        if args.only is None or name in args.only:
            results |= run(quick=args.quick, device=args.device)
    return results, "\n".join(f"{k}: {v}" for k, v in results.items())
