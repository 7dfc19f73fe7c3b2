"""Probe tab: read a property out of the activations, layer by layer, against a control task."""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from workbench.app import backends
from workbench.app.context import AppContext
from workbench.app.forms import layer_or_auto, text, whole
from workbench.app.views import describe_steering, describe_sweep, figure
from workbench.errors import WorkbenchError

EXPLAIN = ("A probe is a small linear classifier trained on the model's hidden states. High held-out accuracy "
           "with low control accuracy (the same probe on random labels) means the property is readable at that "
           "layer. The causal check then pushes the hidden state along the probe's direction and watches the "
           "answer move — next to the same push in a random direction.")


@dataclass(frozen=True)
class LastSweep:
    """This browser's latest sweep: how its dataset was chosen, and the result (scores, best probe)."""

    dataset: str
    rows: int
    result: object
    uploaded: str | None = None  # the upload it read (a path in Gradio's upload folder), if any


def build(ctx: AppContext) -> None:
    gr.Markdown(EXPLAIN)
    names = backends.probe_datasets()
    default = "factworld_country" if "factworld_country" in names else (names[0] if names else None)
    with gr.Row():
        dataset = gr.Dropdown(names + [backends.UPLOADED], value=default, allow_custom_value=False,
                              label="dataset (built-in, or the file you upload below)")
        method = gr.Dropdown(list(backends.PROBE_METHODS), value="auto", label="method")
        layers = gr.Textbox(label="layers (all, or 2,4,6)", value="all")
        limit = gr.Number(label="rows (a subset keeps CPU runs short)", value=400, precision=0)
    upload = gr.File(label="your own dataset: CSV / JSONL / TXT with a text column and a label or value column",
                     file_types=list(backends.UPLOAD_TYPES), type="filepath", height=90)
    uploaded = gr.State(None)  # the path of the file this browser uploaded (never a client-named path)
    with gr.Row() as buttons:
        sweep_btn = gr.Button("Sweep layers", variant="primary", scale=4)
    summary = gr.Markdown()
    with gr.Row():
        sweep_plot = gr.Plot(show_label=False)  # the figures carry their own titles
        pca_plot = gr.Plot(show_label=False)
    pca_btn = gr.Button("PCA at the best layer")
    with gr.Row():
        strength = gr.Slider(0, 4, value=2, step=0.25, label="causal check: push strength α (in typical residual norms)",
                             scale=3)
        steer_layer = gr.Textbox(value="auto", label="steer at layer (auto: the earliest layer within "
                                 f"{backends.STEER_TOLERANCE} of the best score)")
    check_btn = gr.Button("Run the causal check")
    check_out = gr.Markdown()
    check_plot = gr.Plot(show_label=False)
    last = gr.State(None)  # this browser's LastSweep (values only)

    def remember_upload(path):  # and select it in the dataset dropdown
        return backends.check_upload(path), backends.UPLOADED

    def probe_sweep(workspace, upload_path, dataset_name, method_name, layer_text, rows,
                    progress=gr.Progress(track_tqdm=True)):
        yield "Collecting activations and fitting probes …", gr.skip(), gr.skip(), gr.skip()
        name, n = text(dataset_name, "dataset").strip(), whole(rows, "rows")
        if n < 1:
            raise WorkbenchError(f"rows must be at least 1, got {n}")
        data = backends.probe_dataset(name, n, upload_path)  # read before the model is taken
        with ctx.pool.use(workspace) as session:
            result = backends.probe_sweep(session, data, method_name, layer_text)
        fig, png = figure(backends.sweep_figure(result))
        words = describe_sweep(result)
        method = None if method_name == "auto" else method_name
        command = workspace.command("probe", dataset="YOUR_FILE.csv" if name == backends.UPLOADED else name, limit=n, method=method, layers=layer_text)
        yield words, fig, LastSweep(name, n, result, upload_path), workspace.record(
            f"Probe sweep: {result.dataset} ({result.method})", words, images=[png], command=command)

    def probe_pca(workspace, sweep):
        sweep = _need(sweep)
        with ctx.pool.use(workspace) as session:
            data = backends.probe_dataset(sweep.dataset, sweep.rows, sweep.uploaded)
            fig, png = figure(backends.pca_figure(session, data, sweep.result))
        return fig, workspace.record(f"Probe PCA: {sweep.dataset}, layer {sweep.result.best_layer}", images=[png])

    def causal_check(workspace, sweep, alpha, layer_text):
        sweep = _need(sweep)
        asked = layer_or_auto(layer_text)
        with ctx.pool.use(workspace) as session:
            layer, curve, curve_fig = backends.steering(session, backends.probe_dataset(sweep.dataset, sweep.rows,
                                                                                        sweep.uploaded),
                                                        sweep.result, float(alpha), asked)
        fig, png = figure(curve_fig)
        words = describe_steering(curve, layer, sweep.result.best_layer,
                                  tolerance=backends.STEER_TOLERANCE if asked is None else None)
        return words, fig, workspace.record(f"Probe causal check: {sweep.dataset}, layer {layer}, α = {alpha}", words,
                                            images=[png])

    ctx.on(upload.upload, remember_upload, [upload], [uploaded, dataset], "probe_upload", touches_model=False)
    ctx.on(upload.clear, lambda: None, None, [uploaded], "probe_upload_clear", touches_model=False)
    event = ctx.on(sweep_btn.click, probe_sweep, [ctx.workspace, uploaded, dataset, method, layers, limit],
                   [summary, sweep_plot, last, ctx.workspace], "probe_sweep")
    with buttons:
        ctx.stop_button(event)
    ctx.on(pca_btn.click, probe_pca, [ctx.workspace, last], [pca_plot, ctx.workspace], "probe_pca")
    ctx.on(check_btn.click, causal_check, [ctx.workspace, last, strength, steer_layer],
           [check_out, check_plot, ctx.workspace],
           "probe_causal_check")


def _need(sweep: LastSweep | None) -> LastSweep:
    if sweep is None:
        raise WorkbenchError("run a layer sweep first: the PCA and the causal check use its best probe")
    return sweep
