"""The ``workbench`` command line: reproducible runs that print text or write JSON.

Each command group lives in its own module and exposes ``register(subparsers, model_options)``;
a command's handler returns ``(result_dict, human_text)`` and this module prints it.
Errors are one line on stderr with a non-zero exit; no tracebacks unless ``--debug``.

    workbench info --model factworld --json
    workbench generate --model factworld --prompt "The Eiffel Tower is located in the city of"
"""
from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys

from workbench.errors import WorkbenchError
from workbench.io import write_json

# modules that add sub-commands (a group that is not installed is skipped)
COMMAND_GROUPS = ("workbench.commands", "editing.commands", "editing.forensics.commands", "probes.commands",
                  "workbench.serve")


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
    (or a function making one, so figures are drawn only when asked); :func:`main` writes it."""
    parser.add_argument("--report", default=None, metavar="F.html",
                        help="also write a self-contained HTML report (model card, results, the command to rerun)")


def command_line(subcommand: str, model: str, **options) -> str:
    """The ``workbench`` command for ``subcommand`` with these options (None left out, True as a
    bare flag, underscores as dashes).

    >>> command_line("trace", "factworld", prompt="The {} is in", subject="Louvre", target=None)
    "workbench trace --model factworld --prompt 'The {} is in' --subject Louvre"
    """
    import shlex

    args = ["workbench", subcommand, "--model", model]
    for name, value in options.items():
        if value is None or value is False:
            continue
        args.append("--" + name.replace("_", "-"))
        if value is not True:
            args.append(str(value))
    return shlex.join(args)


def reproduce_command(argv: list[str]) -> str:
    """The command line that was run, without ``--report`` and ``--json`` (and their values)."""
    import shlex

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


def _write_report(args, outcome: tuple, argv: list[str]) -> None:
    if len(outcome) < 3 or outcome[2] is None:
        raise WorkbenchError(f"`workbench {args.command}` cannot write a report")
    report = outcome[2]() if callable(outcome[2]) else outcome[2]
    path = report.with_command(reproduce_command(argv)).save(args.report)
    print(f"report written to {path}", file=sys.stderr if getattr(args, "json", None) == "-" else sys.stdout)


def optional_modules(names: tuple[str, ...]):
    """Import each module in ``names`` that is installed; a module that is absent is skipped."""
    for name in names:
        try:
            yield importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workbench", description="Open Weights Workbench: look inside, probe, "
                                     "trace and edit open-weight language models.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = model_options()
    for module in optional_modules(COMMAND_GROUPS):
        module.register(subparsers, common)
    return parser


def _emit(args, result: dict, text: str) -> None:
    target = getattr(args, "json", None)
    if target == "-":
        print(json.dumps(result, indent=2, default=str))
        return
    if target:
        write_json(target, result)
    if text:
        print(text)


def _quiet_libraries() -> None:
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import warnings

    warnings.filterwarnings("ignore")
    for name in ("transformers", "transformer_lens", "huggingface_hub", "root"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING, format="%(levelname)s %(message)s")
    if not args.debug:
        _quiet_libraries()
    try:
        from workbench.devices import apply_thread_setting

        apply_thread_setting()  # WORKBENCH_THREADS, once, before any work
        outcome = args.handler(args)  # (result, text) or (result, text, report)
        _emit(args, outcome[0], outcome[1])
        if getattr(args, "report", None):
            _write_report(args, outcome, argv)
        return getattr(args, "exit_status", 0)  # a handler may report a negative finding with status 1
    except WorkbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: say so in one line, keep the traceback behind --debug
        if args.debug:
            raise
        print(f"error: internal error ({type(exc).__name__}: {exc}); rerun with --debug for the traceback",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
