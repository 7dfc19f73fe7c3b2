"""Probe tab: read a property out of the activations, layer by layer, against a control task."""
from __future__ import annotations

import gradio as gr

from workbench.app import backends
from workbench.app.context import AppContext
from workbench.app.forms import text, whole
from workbench.app.views import describe_sweep, figure, sweep_figure
from workbench.errors import WorkbenchError

EXPLAIN = ("A probe is a small linear classifier trained on the model's hidden states. High held-out accuracy "
           "with low control accuracy (the same probe on random labels) means the property is readable at that "
           "layer. The causal check then steers along the probe's direction and watches the answer move.")


def build(ctx: AppContext) -> None:
    gr.Markdown(EXPLAIN)
    unavailable = backends.missing("probes.sweep", ["sweep"])
    if unavailable:
        gr.Markdown(f"**Probes are {unavailable}.**")
    names = backends.probe_datasets()
    with gr.Row():
        dataset = gr.Dropdown(names, value=names[0] if names else None, allow_custom_value=True,
                              label="dataset (built-in name or a CSV/JSONL path)")
        method = gr.Dropdown(list(backends.PROBE_METHODS), value="auto", label="method")
        layers = gr.Textbox(label="layers (all, or 2,4,6)", value="all")
        limit = gr.Number(label="rows (a subset keeps CPU runs short)", value=400, precision=0)
    with gr.Row() as buttons:
        sweep_btn = gr.Button("Sweep layers", variant="primary", scale=4)
    summary = gr.Markdown()
    with gr.Row():
        sweep_plot = gr.Plot(label="score by layer, with the control task")
        pca_plot = gr.Plot(label="PCA of activations at the best layer")
    pca_btn = gr.Button("PCA at the best layer")
    strength = gr.Slider(-10, 10, value=0, step=0.5, label="causal check: steering strength along the probe")
    check_btn = gr.Button("Run the causal check")
    check_out = gr.Markdown()
    last = gr.State(None)  # this browser's latest SweepResult (a value: scores and one fitted probe)

    def probe_sweep(workspace, dataset_name, method_name, layer_text, rows, progress=gr.Progress(track_tqdm=True)):
        yield "Collecting activations and fitting probes …", gr.skip(), gr.skip(), gr.skip()
        with ctx.pool.use(workspace) as session:
            result = backends.probe_sweep(session, text(dataset_name, "dataset"), method_name, layer_text,
                                          whole(rows, "rows"))
        fig, png = figure(sweep_figure(result))
        words = describe_sweep(result)
        yield words, fig, result, workspace.record(f"Probe sweep: {result.dataset} ({result.method})", words,
                                                   images=[png])

    def probe_pca(workspace, result):
        with ctx.pool.use(workspace) as session:
            fig, png = figure(backends.probe_pca(session, _need(result)))
        return fig, workspace.record(f"Probe PCA: {result.dataset}, layer {result.best_layer}", images=[png])

    def causal_check(workspace, result, alpha):
        with ctx.pool.use(workspace) as session:
            words = backends.probe_causal_check(session, _need(result), float(alpha))
        return words, workspace.record(f"Probe causal check: {result.dataset}, strength {alpha}", words)

    event = ctx.on(sweep_btn.click, probe_sweep, [ctx.workspace, dataset, method, layers, limit],
                   [summary, sweep_plot, last, ctx.workspace], "probe_sweep")
    with buttons:
        ctx.stop_button(event)
    ctx.on(pca_btn.click, probe_pca, [ctx.workspace, last], [pca_plot, ctx.workspace], "probe_pca")
    ctx.on(check_btn.click, causal_check, [ctx.workspace, last, strength], [check_out, ctx.workspace],
           "probe_causal_check")


def _need(result):
    if result is None:
        raise WorkbenchError("run a layer sweep first: the PCA and the causal check use its best probe")
    return result
