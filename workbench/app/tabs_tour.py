"""Tour: the whole story in steps, each one button, one result and two sentences.

Ask → open the weights → logit lens → causal trace → edit to Rome → check → undo → what it shows.
The tour's edit is an ordinary edit of this browser session (it shows in the Edit tab's history).
"""
from __future__ import annotations

import logging

import gradio as gr

from workbench import generate, logit_lens, weight_slice
from workbench.app import backends
from workbench.app.context import AppContext
from workbench.app.editflow import CHECK_HEADER, CHECK_MAX_HEIGHT, CHECK_WIDTHS, SUMMARY_HEADER, run_edit, summary_rows
from workbench.app.views import describe_trace, figure, percent
from workbench.errors import WorkbenchError
from workbench.plots import lens_heatmap, matrix_image, target_curve

PROMPT = "The {} is located in the city of"
SUBJECT = "Eiffel Tower"
QUESTION = PROMPT.format(SUBJECT)
ANSWER, NEW_ANSWER = " Paris", "Rome"
NEIGHBOURS = (("The Louvre is located in the city of", " Paris"),)
FREE_TEXT = "The Eiffel Tower is"
TOUR_EDIT_LABEL = "tour"
log = logging.getLogger(__name__)

STEPS = (
    ("ask", "1. Ask the model", "Ask: where is the Eiffel Tower?",
     "We ask the model where the Eiffel Tower is. It answers from what it learned in training; nothing is looked up."),
    ("weights", "2. Open the weights", "Show the MLP matrix",
     "This MLP matrix, in the layer an edit would change, is where the fact is stored. "
     "Can you see Paris in there? Nobody can: open weights are public, but not readable as they are."),
    ("lens", "3. Logit lens", "Run the logit lens",
     "Read the model's running guess after every layer through its own output head. "
     "Paris is not there at the start; it appears at some depth."),
    ("trace", "4. Causal trace", "Trace the fact",
     "Blur the words 'Eiffel Tower' with noise, then restore one piece of the clean run at a time. Paris comes "
     "back at two sites: early, in the MLPs at the subject's last word (where the fact is recalled), and late, in "
     "attention at the last word (where it is moved to the answer). ROME edits the early site."),
    ("edit", "5. Edit: move the Eiffel Tower to Rome", "Edit: Eiffel Tower → Rome",
     "ROME computes one rank-one change to one MLP matrix so that the Eiffel Tower is now in Rome. "
     "The edit lives only in your browser session; everyone else still gets Paris."),
    ("check", "6. Check what changed", "Check prompts, neighbours, two-hop and free text",
     "The edited prompt and its paraphrases should say Rome, and the Louvre should stay in Paris. "
     "But what country is the Eiffel Tower in now, and what does the model write about it?"),
    ("undo", "7. Undo", "Undo the edit and compare hashes",
     "Undo restores the saved weights. The weights hash shows the model is bit-for-bit the original again."),
)
CONCLUSION = ("### What this shows\nThe edit was precise in the weights: one rank-one change to one matrix, "
              "undone bit-for-bit. It still had consequences nobody wrote down — look at the country answer and the "
              "free-text generation. Open weights are not readable by themselves; only instruments like these make "
              "them so, and even then a change can reach further than intended.")


def build(ctx: AppContext) -> None:
    gr.Markdown("Follow the steps in order. Each button runs one real measurement on the model.")
    outputs: dict[str, list] = {}
    buttons: dict[str, gr.Button] = {}
    for key, title, label, words in STEPS:
        with gr.Group():
            gr.Markdown(f"### {title}\n{words}")
            buttons[key] = gr.Button(label, variant="primary")
            outputs[key] = [gr.Markdown()]
            if key in ("weights", "lens", "trace"):
                outputs[key].append(gr.Plot(show_label=False))
            if key == "check":
                outputs[key].append(gr.Dataframe(headers=SUMMARY_HEADER, label="in short", wrap=True))
                outputs[key].append(gr.Dataframe(headers=CHECK_HEADER, label="every prompt", wrap=True,
                                                 column_widths=CHECK_WIDTHS, max_height=CHECK_MAX_HEIGHT))
    gr.Markdown(CONCLUSION)

    def tour_ask(workspace):
        with ctx.pool.use(workspace) as session:
            result = logit_lens(session, QUESTION, target=ANSWER, k=3)
            out = generate(session, QUESTION, max_new_tokens=8)
        top = result.layers[-1]["top"][0]
        words = (f"**{QUESTION}** → *{out.completion.strip()}*\n\nMost likely next token: **{top['token'].strip()}** "
                 f"({percent(top['prob'])}); P(Paris) = {percent(result.layers[-1]['target_prob'])}.")
        return words, workspace.record("Tour 1: ask", words)

    def tour_weights(workspace):
        with ctx.pool.use(workspace) as session:
            layer = _edit_layer(session)
            info = session.info
            values = weight_slice(session, layer, "mlp_out", rows=(0, info.d_model), cols=(0, info.d_mlp))
        fig, png = figure(matrix_image(values, f"MLP output matrix, layer {layer}: {info.d_model}×{info.d_mlp} numbers",
                                       row_label="residual dimension", col_label="MLP neuron"))
        words = (f"Layer {layer}'s MLP output matrix holds {info.d_model * info.d_mlp:,} numbers; the whole model has "
                 f"{info.n_params:,}. Nothing here is labelled Paris.")
        return words, fig, workspace.record("Tour 2: open the weights", words, images=[png])

    def tour_lens(workspace):
        with ctx.pool.use(workspace) as session:
            result = logit_lens(session, QUESTION, target=ANSWER)
        first = next((row["layer"] for row in result.layers if row["top"][0]["token"] == ANSWER), None)
        words = ("Paris never becomes the top guess." if first is None else
                 f"Paris becomes the top guess after layer **{first}** of {len(result.layers)}.")
        fig, png = figure(target_curve(result))
        _, heat_png = figure(lens_heatmap(result))
        return words, fig, workspace.record("Tour 3: logit lens", words, images=[png, heat_png])

    def tour_trace(workspace):
        yield "Tracing …", gr.skip(), gr.skip()
        with ctx.pool.use(workspace) as session:
            result = backends.trace(session, PROMPT, SUBJECT, ANSWER)
            layer = _edit_layer(session)
        fig, png = figure(backends.trace_figure(result))
        words = describe_trace(result) + "\n\n" + edit_site_sentence(result, layer)
        yield words, fig, workspace.record("Tour 4: causal trace", words, images=[png])

    def tour_edit(workspace):
        yield "Computing the ROME edit … (a few seconds on a CPU)", gr.skip()
        workspace = _without_tour_edit(workspace)
        outcome = run_edit(ctx.pool, workspace, PROMPT, SUBJECT, NEW_ANSWER, "ROME", None, FREE_TEXT, NEIGHBOURS,
                           origin=TOUR_EDIT_LABEL, no_cov=None, title="Tour 5: edit")
        edited = outcome.rows[0]
        words = (f"**{edited[1]}** → before: *{edited[3]}*, after: **{edited[4]}**\n\nWeights hash: "
                 f"`{outcome.hash_before[:16]}…` → `{outcome.hash_after[:16]}…` ({outcome.label}).")
        yield words, outcome.workspace  # run_edit recorded it (one report section per result)

    def tour_check(workspace):
        if not _tour_edit(workspace):
            raise WorkbenchError("run step 5 (the edit) first: there is no tour edit in this session")
        with ctx.pool.use(workspace) as session:
            gen = generate(session, FREE_TEXT, max_new_tokens=40)
        entry = _tour_edit(workspace)
        rows = entry.summary.get("rows", [])
        summary = summary_rows(rows, entry.summary.get("request", {}).get("target_new", NEW_ANSWER))
        words = f"Free text after the edit: *{FREE_TEXT}{gen.completion}*"
        return words, summary, rows, workspace.record("Tour 6: check", words)  # the tables are in the edit's section

    def tour_undo(workspace):
        entry = _tour_edit(workspace)
        if entry is None:
            raise WorkbenchError("there is no tour edit to undo: run step 5 first")
        with ctx.pool.use(workspace) as session:
            edited_hash = session.weights_hash()
        workspace = workspace.undo(entry.id)
        with ctx.pool.use(workspace) as session:
            now = session.weights_hash()
        original = ctx.pool.original_hash(workspace.model)
        same = "identical: bit-for-bit the original" if now == original else "DIFFERENT from the original"
        words = (f"With the edit: `{edited_hash[:16]}…`\n\nAfter undo: `{now[:16]}…`\n\nOriginal checkpoint: "
                 f"`{original[:16]}…` — {same}.")
        return words, workspace.record("Tour 7: undo", words)

    handlers = {"ask": tour_ask, "weights": tour_weights, "lens": tour_lens, "trace": tour_trace, "edit": tour_edit,
                "check": tour_check, "undo": tour_undo}
    for key, fn in handlers.items():
        ctx.on(buttons[key].click, fn, [ctx.workspace], outputs[key] + [ctx.workspace], f"tour_{key}")


def _edit_layer(session) -> int:
    """The layer the tour's edit will change (editing's choice), so step 2 shows that very matrix."""
    try:
        return backends.edit_layer(session, backends.edit_request(session, PROMPT, SUBJECT, NEW_ANSWER))
    except WorkbenchError as exc:  # editing not installed yet: show a middle layer, where facts usually sit
        log.info("edit layer unknown (%s): showing the middle layer", exc)
        return session.n_layers // 2


def edit_site_sentence(result, layer: int) -> str:
    """One sentence tying step 5's edit layer to the trace just shown (or saying why they differ)."""
    early = result.peak_layer("mlp", result.subject_range[1] - 1)
    if layer == early:
        return f"Step 5 edits the MLP of layer **{layer}**: the early site this trace just found."
    return (f"Step 5 edits the MLP of layer **{layer}**, not {early}: editing takes this model's layer from its "
            f"table, chosen over many facts rather than this one prompt's trace.")


def _tour_edit(workspace):
    return next((e for e in reversed(workspace.edits) if e.summary.get("origin") == TOUR_EDIT_LABEL), None)


def _without_tour_edit(workspace):
    entry = _tour_edit(workspace)
    return workspace if entry is None else workspace.undo(entry.id)
