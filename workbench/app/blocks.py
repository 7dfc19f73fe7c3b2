"""Assemble the app: one ``gr.Blocks`` with a tab per capability, a bounded queue, no direct API.

Nothing mutable lives at module level: the model pool, the output folder and the browser
state are created inside :func:`build_app`, so two apps in one process share nothing.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable

import gradio as gr

from workbench.app import (tabs_edit, tabs_forensics, tabs_inspect, tabs_model, tabs_probe, tabs_report, tabs_tour,
                           tabs_trace)
from workbench.app.context import AppContext
from workbench.app.settings import MAX_UPLOAD_MB, QUEUE_SIZE, SERVED_FOLDERS, UPLOAD_CACHE, default_output_dir
from workbench.app.state import ModelPool

log = logging.getLogger(__name__)

TABS = (("1. Tour", tabs_tour), ("2. Model", tabs_model), ("3. Inspect", tabs_inspect), ("4. Trace", tabs_trace),
        ("5. Probe", tabs_probe), ("6. Edit", tabs_edit), ("7. Forensics", tabs_forensics), ("8. Report", tabs_report))
INTRO = ("# Open Weights Workbench\nThe weights of an open model are public, yet a file of numbers says nothing "
         "by itself. These instruments make them readable — and show that even a precise edit has consequences "
         "nobody wrote down.")


def default_loader(spec: str):
    """Load a model for the app (CPU or the first GPU, automatic dtype)."""
    from workbench import load

    return load(spec)


def build_app(model_spec: str = "factworld", output_dir: str | Path | None = None,
              loader: Callable[[str], object] | None = None, queue_size: int = QUEUE_SIZE,
              preload: bool = True, offered: tuple[str, ...] = ()) -> gr.Blocks:
    """The workbench app on ``model_spec``; results and exports go under ``output_dir``.

    The Model tab can switch to ``offered`` models (and factworld) only: a browser never names a
    server path.

    With ``preload`` the model is loaded now, so the first click is fast and a bad spec fails
    here with a clear :class:`~workbench.errors.WorkbenchError`.
    """
    output_dir = Path(output_dir or default_output_dir()).expanduser().resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    # components copy the files they serve into Gradio's cache: keep it inside the output folder
    os.environ["GRADIO_TEMP_DIR"] = str(output_dir / UPLOAD_CACHE)  # outside the served folders
    pool = ModelPool(model_spec, loader or default_loader, offered=tuple(offered))
    if preload:
        pool.get(model_spec)
    with gr.Blocks(title="Open Weights Workbench", analytics_enabled=False) as demo:
        gr.Markdown(INTRO)
        ctx = AppContext(pool, output_dir, gr.State(pool.workspace()), [])
        with gr.Tabs():
            for title, module in TABS:
                with gr.Tab(title):
                    module.build(ctx)
    demo.queue(max_size=queue_size, api_open=False, default_concurrency_limit=1)
    demo.workbench_api_names = tuple(ctx.api_names)  # for tests and the launch log
    demo.workbench_output_dir = output_dir
    demo.workbench_pool = pool  # tests check the shared weights end unedited
    return demo


def launch_options(host: str, port: int, share: bool, output_dir: Path, max_upload_mb: float = MAX_UPLOAD_MB) -> dict:
    """Keyword arguments for ``Blocks.launch``: local by default; files served only from the output
    folder's report/export sub-folders (uploads stay outside them, so Gradio serves an uploaded file
    only as a download, never as a page of this origin); uploads above ``max_upload_mb`` refused."""
    served = [str(Path(output_dir) / name) for name in SERVED_FOLDERS]
    return dict(server_name=host, server_port=port, share=share, allowed_paths=served,
                max_file_size=f"{max(1, int(max_upload_mb * 1024 * 1024))}b",
                show_error=False, footer_links=["api"], theme=gr.themes.Default(text_size="lg"))
