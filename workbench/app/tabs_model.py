"""Model tab: pick a checkpoint, read its architecture card and hashes, look at a weight matrix."""
from __future__ import annotations

import gradio as gr

from workbench import weight_slice, weight_stats
from workbench.app.context import AppContext
from workbench.app.forms import span, whole
from workbench.app.views import card_markdown, figure
from workbench.modules import MATRICES
from workbench.plots import matrix_image


STATS_HEADER = ["layer", "matrix", "shape", "mean", "std", "norm", "max |w|"]


def hashes(ctx: AppContext, workspace) -> dict:
    """Checkpoint hash, hash with this browser's edits applied, and source file hashes."""
    original = ctx.pool.original_hash(workspace.model)
    with ctx.pool.use(workspace) as session:
        current = session.weights_hash()
    files = ctx.pool.get(workspace.model).source_sha256
    return {"original": original, "current": current, "edited": current != original, "files": files}


def build(ctx: AppContext) -> None:
    with gr.Row():
        spec = gr.Dropdown(list(ctx.pool.offered), value=ctx.pool.default, scale=4,
                           label="model (the ones this app was started with; add more with --offer MODEL)")
        load_btn = gr.Button("Load model", variant="primary", scale=1)
    status = gr.Markdown()
    card_btn = gr.Button("Show architecture card and hashes")
    card = gr.Markdown()
    hash_json = gr.JSON(label="weight hashes (full sha256)")
    gr.Markdown("#### Weight matrix viewer\nRaw numbers of one matrix: nothing in them says \"Paris\".")
    with gr.Row():
        layer = gr.Number(label="layer", value=0, precision=0)
        name = gr.Dropdown(list(MATRICES), value="mlp_out", label="matrix")
        rows = gr.Textbox(label="rows (start:end)", value="0:64")
        cols = gr.Textbox(label="columns (start:end)", value="0:64")
    matrix_btn = gr.Button("Show matrix")
    matrix_plot = gr.Plot(label="weights", show_label=False)
    stats_btn = gr.Button("Weight statistics (all layers)")
    stats = gr.Dataframe(headers=STATS_HEADER, label="weight statistics", wrap=True)

    def load_model(spec_text, workspace, progress=gr.Progress()):
        spec_text = (spec_text or "").strip()
        yield f"Loading **{spec_text}** …", gr.skip(), gr.skip(), workspace
        progress(0.1, desc=f"loading {spec_text}")
        ctx.pool.get(spec_text)  # raises a WorkbenchError with a clear message when it cannot
        workspace = workspace.with_model(spec_text)
        h = hashes(ctx, workspace)
        info = ctx.pool.get(spec_text).info.to_dict()
        workspace = workspace.record(f"Loaded model {spec_text}", card_markdown(info, h))
        yield f"Loaded **{spec_text}**; your previous edits (if any) were dropped.", card_markdown(info, h), h, workspace

    def model_card(workspace):
        h = hashes(ctx, workspace)
        info = ctx.pool.get(workspace.model).info.to_dict()
        return card_markdown(info, h), h

    def weight_matrix(workspace, layer_value, matrix_name, rows_text, cols_text):
        r, c, at = span(rows_text, "rows"), span(cols_text, "columns"), whole(layer_value, "layer")
        with ctx.pool.use(workspace) as session:
            values = weight_slice(session, at, matrix_name, rows=r, cols=c)
        fig, png = figure(matrix_image(values, f"{matrix_name}, layer {at}, rows {r}, cols {c}"))
        return fig, workspace.record(f"Weights: {matrix_name} layer {at}", images=[png])

    def stats_table(workspace):
        with ctx.pool.use(workspace) as session:
            rows_ = weight_stats(session)
        return [[r["layer"], r["matrix"], "×".join(map(str, r["shape"])), f"{r['mean']:.3g}", f"{r['std']:.3g}",
                 f"{r['norm']:.3g}", f"{r['max_abs']:.3g}"] for r in rows_]

    ctx.on(load_btn.click, load_model, [spec, ctx.workspace], [status, card, hash_json, ctx.workspace], "load_model")
    ctx.on(card_btn.click, model_card, [ctx.workspace], [card, hash_json], "model_card")
    ctx.on(matrix_btn.click, weight_matrix, [ctx.workspace, layer, name, rows, cols], [matrix_plot, ctx.workspace],
           "weight_matrix")
    ctx.on(stats_btn.click, stats_table, [ctx.workspace], [stats], "weight_stats")

