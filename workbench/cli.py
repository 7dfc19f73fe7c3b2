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
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING, format="%(levelname)s %(message)s")
    if not args.debug:
        _quiet_libraries()
    try:
        result, text = args.handler(args)
        _emit(args, result, text)
        return 0
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
