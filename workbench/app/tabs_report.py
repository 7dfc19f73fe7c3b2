"""Report tab: everything run in this browser session, as one self-contained HTML file."""
from __future__ import annotations

import gradio as gr

from workbench.app import report
from workbench.app.context import AppContext


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
        return str(report.save(workspace, ctx.folder("reports")))

    ctx.on(summary_btn.click, report_summary, [ctx.workspace], [summary], "report_summary", touches_model=False)
    ctx.on(export_btn.click, export_report, [ctx.workspace], [download], "export_report", touches_model=False)
