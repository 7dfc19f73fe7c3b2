"""Probe tab: read a property out of the activations, layer by layer, against a control task."""
from __future__ import annotations

import gradio as gr

from workbench.app import backends
from workbench.app.context import AppContext
from workbench.app.views import figure

EXPLAIN = ("A probe is a small classifier trained on the model's hidden states. High accuracy with low control "
           "accuracy (random labels) means the property is readable at that layer; the causal check steers along "
           "the probe's direction and watches the answer move.")


def build(ctx: AppContext) -> None:
    gr.Markdown(EXPLAIN)
    unavailable = backends.missing("probes", ["sweep"])
    if unavailable:
        gr.Markdown(f"**Probes are {unavailable}.**")
    with gr.Row():
        dataset = gr.Textbox(label="dataset", value="cities")
        method = gr.Dropdown(["logistic", "mass_mean"], value="logistic", label="method")
        layers = gr.Textbox(label="layers (all, 3, 2,4,6 or 2-6)", value="all")
    sweep_btn = gr.Button("Sweep layers", variant="primary")
    summary = gr.Markdown()
    with gr.Row():
        sweep_plot = gr.Plot(label="accuracy by layer (with control)")
        pca_plot = gr.Plot(label="PCA of activations at the best layer")
    strength = gr.Slider(-10, 10, value=0, step=0.5, label="causal check: steering strength along the probe")
    check_btn = gr.Button("Run causal check")
    check_out = gr.Markdown()

    def probe_sweep(workspace, dataset_name, method_name, layer_text):
        yield "Sweeping …", gr.skip(), gr.skip(), gr.skip()
        with ctx.pool.use(workspace) as session:
            result = backends.probe_sweep(session, dataset_name, method_name, layer_text)
        (sweep_fig, sweep_png), (pca_fig, pca_png) = (figure(f) for f in backends.probe_figures(session, result))
        words = backends.probe_summary(result)
        workspace = workspace.record(f"Probe sweep: {dataset_name} ({method_name})", words,
                                     images=[sweep_png, pca_png])
        yield words, sweep_fig, pca_fig, workspace

    def causal_check(workspace, dataset_name, method_name, layer_text, alpha):
        with ctx.pool.use(workspace) as session:
            words = backends.probe_causal_check(session, dataset_name, method_name, layer_text, float(alpha))
        return words, workspace.record(f"Probe causal check: {dataset_name}, strength {alpha}", words)

    ctx.on(sweep_btn.click, probe_sweep, [ctx.workspace, dataset, method, layers],
           [summary, sweep_plot, pca_plot, ctx.workspace], "probe_sweep")
    ctx.on(check_btn.click, causal_check, [ctx.workspace, dataset, method, layers, strength],
           [check_out, ctx.workspace], "probe_causal_check")
