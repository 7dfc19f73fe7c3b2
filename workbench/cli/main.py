"""The ``workbench`` command line: reproducible runs that print text or write JSON.

Each command group is a module of this package with ``register(subparsers, model_options)``;
a command's handler returns ``(result_dict, human_text)`` (or a third item, the report) and
this module prints it. Building the parser imports no model library: handlers import what they
compose when they run.
Errors are one line on stderr with a non-zero exit; no tracebacks unless ``--debug``.

    workbench info --model factworld --json
    workbench generate --model factworld --prompt "The Eiffel Tower is located in the city of"
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from workbench.cli import bench, core, editing, forensics, probes, provenance, scale, serve
from workbench.cli.options import check_paths, model_options, reproduce_command
from workbench.errors import WorkbenchError

# the command groups, in the order `workbench --help` lists them
GROUPS = (core, editing, provenance, forensics, probes, scale, bench, serve)


def _write_report(args, outcome: tuple, argv: list[str]) -> None:
    if len(outcome) < 3 or outcome[2] is None:
        raise WorkbenchError(f"`workbench {args.command}` cannot write a report")
    report = outcome[2]() if callable(outcome[2]) else outcome[2]
    path = report.with_command(reproduce_command(argv)).save(args.report)
    print(f"report written to {path}", file=sys.stderr if getattr(args, "json", None) == "-" else sys.stdout)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workbench", description="Open Weights Workbench: look inside, probe, "
                                     "trace and edit open-weight language models.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = model_options()
    for group in GROUPS:
        group.register(subparsers, common)
    return parser


def _emit(args, result: dict, text: str) -> None:
    target = getattr(args, "json", None)
    if target == "-":
        print(json.dumps(result, indent=2, default=str))
        return
    if target:
        from workbench.io import write_json

        write_json(target, result)
    if text:
        print(text)


def _quiet_libraries() -> None:
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # read when transformers loads: no import here
    import warnings

    warnings.filterwarnings("ignore")
    for name in ("transformers", "transformer_lens", "huggingface_hub", "root"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if "transformers" in sys.modules:  # already loaded (in-process callers): tell it directly
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING, format="%(levelname)s %(message)s")
    if not args.debug:
        _quiet_libraries()
    try:
        if os.environ.get("WORKBENCH_THREADS"):  # only then: the devices module imports torch
            from workbench.devices import apply_thread_setting

            apply_thread_setting()  # WORKBENCH_THREADS, once, before any work
        check_paths(args)  # no output inside a model it reads, nor where it cannot be written
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
