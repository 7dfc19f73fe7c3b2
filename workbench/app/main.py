"""Command line of the app: ``python app.py [--model M] [--host H] [--port P] [--share]``, and
``workbench serve`` with the same options. Parsing imports neither gradio nor torch.

>>> args = parse_args(["--model", "factworld", "--port", "7861"])
>>> (args.host, args.port, args.share)
('127.0.0.1', 7861, False)
"""
from __future__ import annotations

import argparse
import logging
import time

from workbench.app.settings import LOCAL_HOSTS, MAX_UPLOAD_MB, QUEUE_SIZE, default_output_dir
from workbench.cli.options import port_int, positive_float, positive_int

log = logging.getLogger(__name__)

def add_arguments(p: argparse.ArgumentParser) -> None:
    """The app's options (shared by ``app.py`` and ``workbench serve``)."""
    p.add_argument("--model", default="factworld", help="factworld, a Hugging Face id, or a local HF directory")
    p.add_argument("--offer", action="append", default=[], metavar="MODEL",
                   help="another model the Model tab may switch to (repeatable; browsers pick only from these)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    p.add_argument("--port", type=port_int, default=7860)
    p.add_argument("--share", action="store_true",
                   help="create a public gradio.live link (anyone with the link can use the app)")
    p.add_argument("--output-dir", default=str(default_output_dir()),
                   help="reports and exported models go here; the only folder the app serves files from")
    p.add_argument("--max-upload-mb", type=positive_float, default=MAX_UPLOAD_MB,
                   help="largest upload accepted, in MB (the Probe tab's datasets)")
    p.add_argument("--queue-size", type=positive_int, default=QUEUE_SIZE, help="events allowed to wait before 'queue full'")
    p.add_argument("--debug", action="store_true", help="debug logging")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="app.py", description="Open Weights Workbench: the interactive app.")
    add_arguments(p)
    return p.parse_args(argv)


def serve(args: argparse.Namespace) -> int:
    """Build the app on ``args.model`` and serve it until interrupted; 2 if it cannot start."""
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from workbench.app.blocks import build_app, launch_options
    from workbench.errors import WorkbenchError

    started = time.perf_counter()
    try:
        demo = build_app(args.model, output_dir=args.output_dir, queue_size=args.queue_size,
                         offered=tuple(args.offer))
    except WorkbenchError as exc:
        log.error("cannot start the app: %s", exc)
        return 2
    if args.share:
        log.warning("--share: creating a PUBLIC link; anyone who has it can run models and edits on this machine")
    if args.host not in LOCAL_HOSTS:
        log.warning("binding to %s: other machines on the network can reach the app", args.host)
    # quiet: Gradio's own banner advises `share=True` in code; here the option is --share
    demo.launch(prevent_thread_lock=True, quiet=True,
                **launch_options(args.host, args.port, args.share, demo.workbench_output_dir, args.max_upload_mb))
    public = f"; public link: {demo.share_url}" if args.share and getattr(demo, "share_url", None) else \
        "" if args.share else "; --share makes a public link"
    log.info("app ready in %.1f s at http://%s:%d (outputs in %s%s)", time.perf_counter() - started, args.host,
             args.port, demo.workbench_output_dir, public)
    try:
        demo.block_thread()
    except KeyboardInterrupt:
        pass
    finally:
        demo.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python app.py``: parse the options and serve."""
    return serve(parse_args(argv))
