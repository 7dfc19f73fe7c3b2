"""Trace tab: causal tracing — where along the layers does the model recall the fact?"""
from __future__ import annotations

import gradio as gr

from workbench.app import backends
from workbench.app.context import AppContext
from workbench.app.forms import text
from workbench.app.views import describe_trace, figure

EXPLAIN = ("Blur the subject's words with noise, then restore one hidden state at a time from the clean run: "
           "where restoring brings the answer back is where the fact is carried. Three views: the whole hidden "
           "state after one layer, the MLP outputs, and the attention outputs.")


def build(ctx: AppContext) -> None:
    gr.Markdown(EXPLAIN)
    with gr.Row():
        prompt = gr.Textbox(label="prompt with {} for the subject", value="The {} is located in the city of",
                            scale=3)
        subject = gr.Textbox(label="subject", value="Eiffel Tower")
        target = gr.Textbox(label="answer (empty = the model's own)", value="")
    with gr.Row() as buttons:
        trace_btn = gr.Button("Trace", variant="primary", scale=4)
    peak = gr.Markdown()
    heatmaps = gr.Plot(label="causal trace: hidden states, MLP, attention", show_label=False)

    def causal_trace(workspace, prompt_text, subject_text, target_text):
        yield "Tracing … (many corrupted runs; seconds on factworld, longer on big models)", gr.skip(), gr.skip()
        answer = target_text if target_text and target_text.strip() else None
        with ctx.pool.use(workspace) as session:
            result = backends.trace(session, text(prompt_text, "prompt"), text(subject_text, "subject"), answer)
        fig, png = figure(backends.trace_figure(result))
        words = describe_trace(result)
        command = workspace.command("trace", prompt=prompt_text, subject=subject_text, target=answer)
        yield words, fig, workspace.record(f"Causal trace: {result.prompt}", words, images=[png], command=command)

    event = ctx.on(trace_btn.click, causal_trace, [ctx.workspace, prompt, subject, target],
                   [peak, heatmaps, ctx.workspace], "trace")
    with buttons:
        ctx.stop_button(event)
