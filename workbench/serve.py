"""``workbench serve``: start the Gradio app (the same as ``python app.py``)."""
from __future__ import annotations

import argparse


def register(subparsers, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser("serve", help="start the Gradio app (same as python app.py)")
    p.add_argument("--model", default="factworld")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--share", action="store_true", help="create a public share link (off by default)")
    p.set_defaults(handler=cmd_serve)


def cmd_serve(args):
    import importlib

    app = importlib.import_module("app")
    app.main(["--model", args.model, "--host", args.host, "--port", str(args.port)] + (["--share"] if args.share else []))
    return {}, ""
