"""Edit tab: rewrite a fact (ROME / MEMIT), see what changed and what did not, undo, export."""
from __future__ import annotations

import re

import gradio as gr

from workbench.app import backends
from workbench.app.background import in_background
from workbench.app.context import AppContext
from workbench.app.editflow import (CHECK_HEADER, CHECK_MAX_HEIGHT, CHECK_WIDTHS, METRICS_HEADER, SUMMARY_HEADER,
                                    history_rows, metrics_rows, run_edit)
from workbench.app.forms import layer_or_auto, text, whole
from workbench.errors import WorkbenchError

NOTICE = ("Your edits stay in this browser session: other users never see them, and the shared model is "
          "restored after every click.")


def build(ctx: AppContext) -> None:
    gr.Markdown(NOTICE)
    with gr.Row():
        prompt = gr.Textbox(label="prompt with {} for the subject", value="The {} is located in the city of", scale=3)
        subject = gr.Textbox(label="subject", value="Eiffel Tower")
        target = gr.Textbox(label="new answer", value="Rome")
    with gr.Row():
        method = gr.Dropdown(list(backends.EDIT_METHODS), value="ROME", label="method")
        layer = gr.Textbox(label="layer (auto or a number)", value="auto")
        no_cov = gr.Checkbox(label="no corpus statistics (C = I): for models without a covariance corpus",
                             value=False)
    gen_prompt = gr.Textbox(label="free-text generation prompt", value="The Eiffel Tower is")
    with gr.Row() as stop_row:
        edit_btn = gr.Button("Edit", variant="primary", scale=4)
    status = gr.Markdown()
    with gr.Row():
        summary = gr.Dataframe(headers=SUMMARY_HEADER, label="what the edit did", wrap=True, scale=1)
        metrics = gr.Dataframe(headers=METRICS_HEADER, label="metrics (before → after)", wrap=True, scale=1)
    checks = gr.Dataframe(headers=CHECK_HEADER, label="every prompt before / after", wrap=True,
                          column_widths=CHECK_WIDTHS, max_height=CHECK_MAX_HEIGHT)
    with gr.Row():
        before = gr.Textbox(label="generation before", lines=4)
        after = gr.Textbox(label="generation after", lines=4)
    gr.Markdown("#### Edit history (this browser session)")
    history = gr.Dataframe(headers=["id", "edit"], label="edits in effect, oldest first")
    with gr.Row():
        undo_id = gr.Textbox(label="edit id to undo (empty = the latest)", value="")
        undo_btn = gr.Button("Undo")
        history_btn = gr.Button("Refresh history")
    with gr.Row():
        export_name = gr.Textbox(label="export folder name", value="edited-model")
        export_btn = gr.Button("Export edited model")
    exported = gr.Markdown()

    def edit(workspace, prompt_text, subject_text, target_text, method_name, layer_text, identity_cov, gen_text):
        yield f"Computing the {method_name} edit … (this takes a little while on a CPU)", *[gr.skip()] * 7
        outcome = yield from in_background(  # a Stop answers within a tick; the edit ends on its own
            run_edit, ctx.pool, workspace, text(prompt_text, "prompt"), text(subject_text, "subject"),
            text(target_text, "new answer"), method_name, layer_or_auto(layer_text), gen_text or "",
            no_cov=bool(identity_cov), skip=tuple(gr.skip() for _ in range(8)))
        message = (f"Edited: **{outcome.label}**. Weights hash `{outcome.hash_before[:12]}…` → "
                   f"`{outcome.hash_after[:12]}…` (only for you).")
        yield (message, outcome.summary, outcome.rows, metrics_rows(outcome.metrics), outcome.generation_before, outcome.generation_after,
               history_rows(outcome.workspace), outcome.workspace)

    def undo_edit(workspace, id_text):
        edit_id = None if not str(id_text or "").strip() else whole(str(id_text).strip().lstrip("#"), "edit id")
        workspace = workspace.undo(edit_id)
        return f"Undone. {len(workspace.edits)} edit(s) remain in this session.", history_rows(workspace), workspace

    def edit_history(workspace):
        return history_rows(workspace)

    def export_edited(workspace, name):
        if not workspace.edits:
            raise WorkbenchError("there are no edits to export: make an edit first")
        name = text(name, "export folder name").strip()
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,80}", name) or name.startswith("."):
            raise WorkbenchError("export folder name may hold only letters, digits, '.', '_' and '-'")
        folder = ctx.folder("exports") / name
        with ctx.pool.use(workspace, with_edits=False) as session:
            backends.export_model(session, [edit for e in workspace.edits for edit in e.value], folder)
        return f"Exported {len(workspace.edits)} edit(s) to `{folder}` (with `edits.json`)."

    edit_event = ctx.on(edit_btn.click, edit, [ctx.workspace, prompt, subject, target, method, layer, no_cov, gen_prompt],
           [status, summary, checks, metrics, before, after, history, ctx.workspace], "edit")
    with stop_row:
        ctx.stop_button(edit_event)
    ctx.on(undo_btn.click, undo_edit, [ctx.workspace, undo_id], [status, history, ctx.workspace], "undo_edit",
           touches_model=False)
    ctx.on(history_btn.click, edit_history, [ctx.workspace], [history], "edit_history", touches_model=False)
    ctx.on(export_btn.click, export_edited, [ctx.workspace, export_name], [exported], "export_model")
