"""Command line of the app: ``python app.py [--model M] [--host H] [--port P] [--share]``."""
from __future__ import annotations

import argparse
import logging
import time

log = logging.getLogger(__name__)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from workbench.app.blocks import QUEUE_SIZE, default_output_dir

    p = argparse.ArgumentParser(prog="app.py", description="Open Weights Workbench: the interactive app.")
    p.add_argument("--model", default="factworld", help="factworld, a Hugging Face id, or a local HF directory")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--share", action="store_true",
                   help="create a public gradio.live link (anyone with the link can use the app)")
    p.add_argument("--output-dir", default=str(default_output_dir()),
                   help="reports and exported models go here; the only folder the app serves files from")
    p.add_argument("--queue-size", type=int, default=QUEUE_SIZE, help="events allowed to wait before 'queue full'")
    p.add_argument("--debug", action="store_true", help="debug logging")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Build the app on ``--model`` and serve it until interrupted."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from workbench.app.blocks import build_app, launch_options
    from workbench.errors import WorkbenchError

    started = time.perf_counter()
    try:
        demo = build_app(args.model, output_dir=args.output_dir, queue_size=args.queue_size)
    except WorkbenchError as exc:
        log.error("cannot start the app: %s", exc)
        return 2
    if args.share:
        log.warning("--share: creating a PUBLIC link; anyone who has it can run models and edits on this machine")
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("binding to %s: other machines on the network can reach the app", args.host)
    demo.launch(prevent_thread_lock=True, **launch_options(args.host, args.port, args.share, demo.workbench_output_dir))
    log.info("app ready in %.1f s at http://%s:%d (outputs in %s)", time.perf_counter() - started, args.host,
             args.port, demo.workbench_output_dir)
    try:
        demo.block_thread()
    except KeyboardInterrupt:
        pass
    finally:
        demo.close()
    return 0
