"""What every tab needs: the model pool, the output folder, the browser's state, and one way to
wire an event (api_name, error conversion, the shared model concurrency group).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import gradio as gr

from workbench.app.errors import user_errors
from workbench.app.state import ModelPool

MODEL_GROUP = "model"  # every event that touches a model runs in this group, one at a time


@dataclass
class AppContext:
    """Built once per app by :func:`workbench.app.blocks.build_app`; never a module global."""

    pool: ModelPool
    output_dir: Path
    workspace: gr.State  # the browser session's Workspace (created inside the Blocks)
    api_names: list[str]

    def on(self, trigger: Callable, fn: Callable, inputs, outputs, api_name: str, touches_model: bool = True,
           **kwargs):
        """Wire ``fn`` to ``trigger`` (e.g. ``button.click``) with its ``api_name``.

        Model-touching events share one concurrency group of size 1; all go through the queue.
        """
        if api_name in self.api_names:
            raise ValueError(f"api_name {api_name!r} used twice")
        self.api_names.append(api_name)
        if touches_model:
            kwargs.update(concurrency_id=MODEL_GROUP, concurrency_limit=1)
        return trigger(user_errors(fn), inputs=inputs, outputs=outputs, api_name=api_name, **kwargs)

    @staticmethod
    def stop_button(*events, label: str = "Stop") -> gr.Button:
        """A button that cancels ``events`` (long jobs are generators: they stop at their next step;
        a step already running finishes first, and the model is restored after it)."""
        button = gr.Button(label, variant="stop", size="sm")
        button.click(None, None, None, cancels=list(events))
        return button

    def folder(self, name: str) -> Path:
        """A sub-folder of the output directory (the only place the app writes or serves files)."""
        path = self.output_dir / name
        path.mkdir(parents=True, exist_ok=True)
        return path
