"""Inspect tab: the model's next tokens, the logit lens (layers x positions), and generation."""
from __future__ import annotations

import gradio as gr

from workbench import generate, logit_lens
from workbench.app.context import AppContext
from workbench.app.forms import text, whole
from workbench.app.views import figure, top_tokens_rows
from workbench.plots import lens_heatmap, target_curve

EIFFEL = "The Eiffel Tower is located in the city of"


def build(ctx: AppContext) -> None:
    prompt = gr.Textbox(label="prompt", value=EIFFEL)
    with gr.Row():
        k = gr.Number(label="top k", value=10, precision=0)
        target = gr.Textbox(label="answer to follow through the layers (optional)", value=" Paris")
    with gr.Row():
        next_btn = gr.Button("Top next tokens", variant="primary")
        lens_btn = gr.Button("Logit lens")
    top = gr.Dataframe(headers=["rank", "token", "probability"], label="next token")
    lens_plot = gr.Plot(label="logit lens: top token after each layer, at each position", show_label=False)
    curve_plot = gr.Plot(label="probability of the answer after each layer", show_label=False)
    gr.Markdown("#### Generation")
    with gr.Row():
        max_new = gr.Number(label="new tokens", value=20, precision=0)
        temperature = gr.Number(label="temperature (0 = greedy)", value=0.0)
        seed = gr.Number(label="seed", value=0, precision=0)
    gen_btn = gr.Button("Generate")
    completion = gr.Textbox(label="continuation", lines=4)

    def next_tokens(workspace, prompt_text, k_value):
        with ctx.pool.use(workspace) as session:
            result = logit_lens(session, text(prompt_text, "prompt"), k=whole(k_value, "top k"))
        rows = top_tokens_rows(result.layers[-1]["top"])
        return rows, workspace.record(f"Next tokens: {prompt_text}", table=[["rank", "token", "probability"]] + rows,
                                      command=workspace.command("lens", prompt=prompt_text, k=whole(k_value, "top k")))

    def lens(workspace, prompt_text, target_text):
        follow = target_text if target_text and target_text.strip() else None
        with ctx.pool.use(workspace) as session:
            result = logit_lens(session, text(prompt_text, "prompt"), target=follow)
        heat, heat_png = figure(lens_heatmap(result))
        images = [heat_png]
        curve = None
        if follow is not None:
            curve, curve_png = figure(target_curve(result))
            images.append(curve_png)
        return heat, curve, workspace.record(f"Logit lens: {prompt_text}", images=images,
                                             command=workspace.command("lens", prompt=prompt_text, target=follow))

    def generation(workspace, prompt_text, new_tokens, temp, seed_value):
        with ctx.pool.use(workspace) as session:
            out = generate(session, text(prompt_text, "prompt"), max_new_tokens=whole(new_tokens, "new tokens"),
                           temperature=float(temp or 0), seed=whole(seed_value, "seed"))
        command = workspace.command("generate", prompt=prompt_text, max_new_tokens=whole(new_tokens, "new tokens"),
                                    temperature=float(temp or 0), seed=whole(seed_value, "seed"))
        return out.completion, workspace.record(f"Generation: {prompt_text}", prompt_text + out.completion,
                                                command=command)

    ctx.on(next_btn.click, next_tokens, [ctx.workspace, prompt, k], [top, ctx.workspace], "next_tokens")
    ctx.on(lens_btn.click, lens, [ctx.workspace, prompt, target], [lens_plot, curve_plot, ctx.workspace], "logit_lens")
    ctx.on(gen_btn.click, generation, [ctx.workspace, prompt, max_new, temperature, seed],
           [completion, ctx.workspace], "generate")
