"""``workbench serve``: start the Gradio app, the same as ``python app.py`` (works from an installed package).

    workbench serve --model factworld --port 7861
"""
from __future__ import annotations

import argparse


def register(subparsers, common: argparse.ArgumentParser) -> None:
    from workbench.app.main import add_arguments

    p = subparsers.add_parser("serve", help="start the Gradio app (same as python app.py)")
    add_arguments(p)
    p.set_defaults(handler=cmd_serve)


def cmd_serve(args):
    from workbench.app.main import serve

    args.exit_status = serve(args)
    return {}, ""
