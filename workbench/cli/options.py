"""Options every command shares, and the command line that reproduces a result.

Nothing here imports torch or a model library: building the parser must stay instant
(``workbench --help``); loading happens in :func:`load_from_args`, inside a handler.

>>> command_line("trace", "factworld", prompt="The {} is in", subject="Louvre", target=None)
"workbench trace --model factworld --prompt 'The {} is in' --subject Louvre"
"""
from __future__ import annotations

import argparse
import math
import shlex
from pathlib import Path


# ---- number types: a bad number is an argparse error (one line, exit 2) before anything loads --------
def _number(kind, text: str):
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def bounded(kind=int, low=None, high=None, above=None):
    """An argparse ``type=``: a finite ``kind`` (int or float) with ``low <= value <= high`` and
    ``value > above`` (each bound optional).

    >>> bounded(int, 1)("3")
    3
    >>> bounded(float, 0.0, 1.0)("1.5")
    Traceback (most recent call last):
    argparse.ArgumentTypeError: 1.5 must be at most 1.0
    """
    def parse(text: str):
        value = _number(kind, text)
        if low is not None and value < low:
            raise argparse.ArgumentTypeError(f"{value} must be at least {low}")
        if above is not None and value <= above:
            raise argparse.ArgumentTypeError(f"{value} must be above {above}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"{value} must be at most {high}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its message
    return parse


positive_int = bounded(int, 1)
non_negative_int = bounded(int, 0)
finite_float = bounded(float)
non_negative_float = bounded(float, 0.0)
positive_float = bounded(float, above=0.0)
probability = bounded(float, 0.0, 1.0)
fraction = bounded(float, above=0.0, high=0.99)  # a held-out share: something must be left to train on
seed_int = bounded(int, 0, 2**32 - 1)  # what every random generator accepts
port_int = bounded(int, 0, 65535)


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


# ---- where outputs may go -----------------------------------------------------------------------
# options naming a file or directory the command writes, and options naming a model it reads
# = workbench.factworld.MODEL_DIR (tests keep them equal): importing that package would import torch
SHIPPED_MODEL = Path(__file__).resolve().parents[1] / "factworld" / "model"
OUTPUTS = ("json", "csv", "plot", "pca_plot", "causal_plot", "report", "save", "save_probe", "out", "revert", "answer")
MODEL_INPUTS = ("model", "base", "edited", "checkpoint", "directory")


def _model_directory(spec) -> Path | None:
    """The local directory a model spec reads (None for hub ids and anything not on disk)."""
    if not isinstance(spec, str) or not spec:
        return None
    if spec == "factworld":
        return SHIPPED_MODEL
    path = Path(spec).expanduser()
    return path.resolve() if path.is_dir() else None


def _writable(path: Path) -> bool:
    """Whether ``path`` can be created or replaced: its nearest existing ancestor is a writable folder."""
    import os

    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)


def check_paths(args: argparse.Namespace) -> None:
    """Refuse, before anything loads, an output that would land inside a model directory the
    command reads (or the shipped factworld model), lands on an existing folder, or cannot be written.

    >>> check_paths(argparse.Namespace(model="factworld", json="out.json"))
    >>> from workbench.factworld import MODEL_DIR
    >>> check_paths(argparse.Namespace(model="factworld", json=str(MODEL_DIR / "model.safetensors")))
    Traceback (most recent call last):
    workbench.errors.WorkbenchError: --json ... lies inside the model directory ... that this command reads; write it elsewhere
    """
    from workbench.errors import WorkbenchError

    reads = {SHIPPED_MODEL}  # the shipped model is never written
    reads |= {d for d in (_model_directory(getattr(args, name, None)) for name in MODEL_INPUTS) if d is not None}
    for name in OUTPUTS:
        value = getattr(args, name, None)
        if not isinstance(value, str) or not value or (name == "json" and value == "-"):
            continue
        if name == "answer" and getattr(args, "reveal", None):
            continue  # read, not written
        flag = "--" + name.replace("_", "-")
        target = Path(value).expanduser().resolve()
        inside = next((d for d in sorted(reads) if target == d or d in target.parents), None)
        if inside is not None:
            raise WorkbenchError(f"{flag} {value} lies inside the model directory {inside} that this command reads; "
                                 "write it elsewhere")
        resumable = name == "out" and getattr(args, "resumable_out", False)
        if name in ("save", "out", "revert") and target.exists() and not resumable:
            raise WorkbenchError(f"{flag} {value} already exists: choose a new directory")
        if name not in ("save", "out", "revert") and target.is_dir():
            raise WorkbenchError(f"{flag} {value} is a folder: give a file name")
        if not _writable(target):
            raise WorkbenchError(f"{flag} {value} cannot be written (its folder is missing, not a folder or read-only)")


def add_run_options(parser: argparse.ArgumentParser, shard_size: int = 4) -> None:
    """``--out/--ray/--workers/--shard-size``: the options of every sharded job (:mod:`workbench.runner`)."""
    group = parser.add_argument_group("run (sharded, resumable)")
    group.add_argument("--out", default=None, metavar="RUN_DIR",
                       help="run folder: each finished shard is saved there; rerun the same command to resume")
    group.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                       help="run on Ray: a local Ray with this machine's cores, or ADDRESS (auto, ray://host:10001; "
                       "default $WORKBENCH_RAY_ADDRESS) of an existing cluster")
    group.add_argument("--workers", type=positive_int, default=None, help="with --ray: number of workers (default: one per "
                       "GPU, else one per core)")
    group.add_argument("--shard-size", type=positive_int, default=shard_size, help="items per shard")
    parser.set_defaults(resumable_out=True)  # an existing --out is a run to resume (check_paths lets it be)


def engine_from_args(args):
    """The engine the run options ask for: None (in this process; Ray is not imported) or a Ray engine."""
    if getattr(args, "ray", None) is None:
        return None
    from workbench.ray_engine import RayEngine

    return RayEngine(args.ray, workers=args.workers)


def model_spec_from_args(args) -> dict:
    """The keyword arguments of :func:`workbench.session.load` the model options name (what Ray workers load)."""
    return {"spec": args.model, "device": args.device, "dtype": args.dtype, "device_map": args.device_map,
            "allow_pickle": args.allow_pickle, "trust_remote_code": args.trust_remote_code, "revision": args.revision}
