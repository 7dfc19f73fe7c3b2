"""Report tab: everything run in this browser session, as one self-contained HTML file.

The file is built by the core report builder (:mod:`workbench.report`, the same one as the CLI's
``--report``): a model card with the hashes, then one section per result, in order.
"""
from __future__ import annotations

import time
from pathlib import Path

import gradio as gr

from workbench.app.context import AppContext
from workbench.report import ModelCard, Report

TITLE = "Open Weights Workbench: session report"


def session_report(workspace, card: ModelCard) -> Report:
    """The report of one browser session: its model card and every result it recorded."""
    return Report(TITLE, (card,), workspace.log, empty_note="Nothing has been run in this session yet.")


def report_path(folder: Path) -> Path:
    """A new file name under ``folder`` (time-stamped, unique within the process)."""
    return Path(folder) / f"report-{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 10**6:06d}.html"


def build(ctx: AppContext) -> None:
    gr.Markdown("Every result you produced in this browser session (and nobody else's) goes into the report. "
                "The file is self-contained: images are embedded and it opens without a network.")
    summary_btn = gr.Button("What is in my report?")
    summary = gr.Markdown()
    export_btn = gr.Button("Export the report as HTML", variant="primary")
    download = gr.File(label="report")

    def report_summary(workspace):
        if not workspace.log:
            return "Nothing has been run in this session yet."
        items = "\n".join(f"{i}. {e.title}" for i, e in enumerate(workspace.log, 1))
        return f"{len(workspace.log)} results on model `{workspace.model}`:\n\n{items}"

    def export_report(workspace):
        original = ctx.pool.original_hash(workspace.model)
        with ctx.pool.use(workspace) as session:  # the card shows the hash with this browser's edits
            card = ModelCard.from_session(session, base_weights_hash=original,
                                          edits=[f"#{e.id} {e.label}" for e in workspace.edits])
        return str(session_report(workspace, card).save(report_path(ctx.folder("reports"))))

    ctx.on(summary_btn.click, report_summary, [ctx.workspace], [summary], "report_summary", touches_model=False)
    ctx.on(export_btn.click, export_report, [ctx.workspace], [download], "export_report")
