"""Options every command shares, and the command line that reproduces a result.

Nothing here imports torch or a model library: building the parser must stay instant
(``workbench --help``); loading happens in :func:`load_from_args`, inside a handler.

>>> command_line("trace", "factworld", prompt="The {} is in", subject="Louvre", target=None)
"workbench trace --model factworld --prompt 'The {} is in' --subject Louvre"
"""
from __future__ import annotations

import argparse
import shlex


def model_options() -> argparse.ArgumentParser:
    """Options shared by every command that loads a model."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("model")
    group.add_argument("--model", default="factworld", help="factworld, a Hugging Face id, or a local HF directory")
    group.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    group.add_argument("--dtype", default="auto", help="auto (bf16 on a capable GPU, else float32), float32, ...")
    group.add_argument("--device-map", default=None, help="e.g. auto: spread a large model over several GPUs")
    group.add_argument("--allow-pickle", action="store_true", help="allow pickle (.bin) weights: only if trusted")
    group.add_argument("--trust-remote-code", action="store_true", help="run the model repository's own code")
    group.add_argument("--revision", default=None, help="hub revision (branch, tag or commit)")
    return parent


def load_from_args(args):
    """A :class:`~workbench.session.Session` from the common model options."""
    from workbench.session import load

    return load(args.model, device=args.device, dtype=args.dtype, device_map=args.device_map,
                allow_pickle=args.allow_pickle, trust_remote_code=args.trust_remote_code, revision=args.revision)


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", nargs="?", const="-", default=None, metavar="FILE",
                        help="write the result as JSON (to FILE, or stdout without one)")


def add_report_option(parser: argparse.ArgumentParser) -> None:
    """``--report F.html``: the command's handler returns a third item, a :class:`workbench.report.Report`
    (or a function making one, so figures are drawn only when asked); the CLI's main writes it."""
    parser.add_argument("--report", default=None, metavar="F.html",
                        help="also write a self-contained HTML report (model card, results, the command to rerun)")


def command_line(subcommand: str, model: str, **options) -> str:
    """The ``workbench`` command for ``subcommand`` with these options (None left out, True as a
    bare flag, underscores as dashes)."""
    args = ["workbench", subcommand, "--model", model]
    for name, value in options.items():
        if value is None or value is False:
            continue
        args.append("--" + name.replace("_", "-"))
        if value is not True:
            args.append(str(value))
    return shlex.join(args)


def reproduce_command(argv: list[str]) -> str:
    """The command line that was run, without ``--report`` and ``--json`` (and their values).

    >>> reproduce_command(["info", "--model", "factworld", "--json", "out.json"])
    'workbench info --model factworld'
    """
    def dropped(arg: str) -> str | None:  # argparse also accepts unambiguous prefixes (--rep)
        name = arg.split("=", 1)[0]
        return next((o for o in ("--report", "--json") if len(name) > 3 and o.startswith(name)), None)

    kept, i = [], 0
    while i < len(argv):
        option = dropped(argv[i])
        if option is None:
            kept.append(argv[i])
        elif "=" not in argv[i] and i + 1 < len(argv) and (option == "--report" or not argv[i + 1].startswith("-")):
            i += 1  # its value
        i += 1
    return shlex.join(["workbench", *kept])


def add_run_options(parser: argparse.ArgumentParser, shard_size: int = 4) -> None:
    """``--out/--ray/--workers/--shard-size``: the options of every sharded job (:mod:`workbench.runner`)."""
    group = parser.add_argument_group("run (sharded, resumable)")
    group.add_argument("--out", default=None, metavar="RUN_DIR",
                       help="run folder: each finished shard is saved there; rerun the same command to resume")
    group.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                       help="run on Ray: a local Ray with this machine's cores, or ADDRESS (auto, ray://host:10001; "
                       "default $WORKBENCH_RAY_ADDRESS) of an existing cluster")
    group.add_argument("--workers", type=int, default=None, help="with --ray: number of workers (default: one per "
                       "GPU, else one per core)")
    group.add_argument("--shard-size", type=int, default=shard_size, help="items per shard")


def engine_from_args(args):
    """The engine the run options ask for: None (in this process; Ray is not imported) or a Ray engine."""
    if getattr(args, "ray", None) is None:
        return None
    if args.workers is not None and args.workers < 1:
        from workbench.errors import WorkbenchError

        raise WorkbenchError("--workers must be at least 1")
    from workbench.ray_engine import RayEngine

    return RayEngine(args.ray, workers=args.workers)


def model_spec_from_args(args) -> dict:
    """The keyword arguments of :func:`workbench.session.load` the model options name (what Ray workers load)."""
    return {"spec": args.model, "device": args.device, "dtype": args.dtype, "device_map": args.device_map,
            "allow_pickle": args.allow_pickle, "trust_remote_code": args.trust_remote_code, "revision": args.revision}
