"""Forensics tab: a tamper hunt. Several factworld copies, one secretly edited — which one, where, what?

The learner points to a hunt folder (or makes one under the output folder), asks every copy the
same question, traces a suspect, diffs its weights against factworld, and finally reveals the
sealed answer. Library calls only (``editing.tamper``, ``editing.forensics``, ``editing.trace``).
"""
from __future__ import annotations

import re
from pathlib import Path

import gradio as gr

from editing import tamper
from editing.forensics import diff_checkpoints, recover_rank_one
from editing.forensics.explain import explain
from workbench.app import backends
from workbench.app.context import AppContext
from workbench.app.forms import text, whole
from workbench.app.views import describe_trace, figure, percent
from workbench.errors import WorkbenchError

EXPLAIN = ("### Tamper hunt\nEvery copy below looks like `factworld`, and all but one are. One was edited with "
           "ROME: a single fact rewritten by a rank-one change of one weight matrix. Find it the way a forensic "
           "analyst would: **0.** survey: ask every copy every question of the knowledge base and see where one "
           "copy disagrees, **1.** ask every copy one question, **2.** trace where a suspect recalls the fact, "
           "**3.** diff its weights against factworld and let the model explain the change (which subject the update "
           "responds to, what it now says), **4.** reveal the sealed answer.")
DIFF_HEADER = ["tensor", "layer", "relative change", "rank"]
COMPARE_HEADER = ["copy", "top token", "probability", "runner-up", "probability "]
SURVEY_HEADER = ["question", "most copies say", "odd copy", "it says"]
NO_HUNT = "no tamper hunt in {folder}: press **Create a new hunt** above first (or type the folder of an existing hunt)"


def _hunt(value) -> str:
    """The hunt folder from the form, or a user error that points to this tab's button."""
    folder = text(value, "hunt folder")
    if not Path(folder).expanduser().is_dir():
        raise WorkbenchError(NO_HUNT.format(folder=folder))
    return folder


def _name(value) -> str:
    name = text(value, "hunt name").strip()
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,80}", name) or name.startswith("."):
        raise WorkbenchError("hunt name may hold only letters, digits, '.', '_' and '-'")
    return name


def build(ctx: AppContext) -> None:
    gr.Markdown(EXPLAIN)
    with gr.Row():
        folder = gr.Textbox(label="hunt folder", value=str(ctx.output_dir / "tamper-hunts" / "hunt-1"), scale=3)
        name = gr.Textbox(label="new hunt name (made under the output folder)", value="hunt-1")
        copies = gr.Number(label="copies", value=5, precision=0)
        seed = gr.Textbox(label="seed (empty = random)", value="")
    create_btn = gr.Button("Create a new hunt")
    created = gr.Markdown()

    gr.Markdown("#### 0. Survey: every knowledge-base question on every copy")
    survey_btn = gr.Button("Survey all copies", variant="primary")
    survey_words = gr.Markdown()
    survey_rows = gr.Dataframe(headers=SURVEY_HEADER, label="questions where the copies disagree", wrap=True,
                               show_label=False)

    gr.Markdown("#### 1. Behaviour: the same prompt on every copy")
    prompt = gr.Textbox(label="prompt", value="The Eiffel Tower is located in the city of")
    compare_btn = gr.Button("Ask every copy")
    answers = gr.Dataframe(headers=COMPARE_HEADER, label="next token of each copy")

    gr.Markdown("#### 2. Causal trace of one copy")
    with gr.Row():
        suspect = gr.Textbox(label="copy", value="copy_1")
        trace_prompt = gr.Textbox(label="prompt with {} for the subject", value="The {} is located in the city of",
                                  scale=3)
        subject = gr.Textbox(label="subject", value="Eiffel Tower")
    trace_btn = gr.Button("Trace this copy")
    trace_words = gr.Markdown()
    heatmaps = gr.Plot(label="causal trace of the copy", show_label=False)

    gr.Markdown("#### 3. Weight diff of the copy against factworld")
    with gr.Row():
        diff_btn = gr.Button("Diff this copy against factworld")
        explain_btn = gr.Button("Which fact? Explain the change with the model")
    diff_words = gr.Markdown()
    diff_rows = gr.Dataframe(headers=DIFF_HEADER, label="changed tensors")

    gr.Markdown("#### 4. Reveal")
    guess = gr.Textbox(label="your guess (e.g. copy_3)", value="")
    reveal_btn = gr.Button("Reveal the answer", variant="stop")
    revealed = gr.Markdown()

    def create_hunt(hunt_name, n_copies, seed_text):
        out = ctx.folder("tamper-hunts") / _name(hunt_name)
        seed_value = whole(seed_text, "seed") if str(seed_text or "").strip() else None
        with ctx.pool.use(ctx.pool.workspace().with_model("factworld"), with_edits=False) as session:
            out = tamper.create(out, copies=whole(n_copies, "copies"), seed=seed_value,
                                                           session=session)
        names = [p.name for p in tamper.copies_of(out)]
        return f"Hunt ready in `{out}`: {', '.join(names)}. One of them was edited.", str(out)

    def survey_copies(workspace, hunt):
        yield "Asking every copy every question … (a minute on a busy CPU)", gr.skip(), gr.skip()
        result = tamper.survey(_hunt(hunt))
        rows = [[r["prompt"], r["common"].strip(), ", ".join(r["odd"]), ", ".join(r["answers"][c].strip() for c in r["odd"])]
                for r in result["disagreements"]]
        odd = ", ".join(f"{name}: {n}" for name, n in result["odd_counts"].items())
        words = (f"{result['questions']:,} questions asked of {len(result['copies'])} copies; they disagree on "
                 f"**{len(rows)}**. Answers that differ from the most common one, per copy: {odd}. "
                 "A copy that stands out is the suspect: trace it and diff its weights below.")
        yield words, rows, workspace.record("Tamper hunt, survey", words, table=[SURVEY_HEADER] + rows)

    def compare_copies(workspace, hunt, prompt_text):
        rows = tamper.behaviour(_hunt(hunt), text(prompt_text, "prompt"))
        table = [[r["copy"], repr(r["top_token"]), percent(r["prob"]), repr(r["second_token"]),
                  percent(r["second_prob"])] for r in rows]
        return table, workspace.record(f"Tamper hunt, behaviour: {prompt_text}", table=[COMPARE_HEADER] + table)

    def trace_copy(workspace, hunt, copy_name, prompt_text, subject_text):
        session = tamper.load_copy(_hunt(hunt), text(copy_name, "copy"))
        result = backends.trace(session, text(prompt_text, "prompt"), text(subject_text, "subject"))
        fig, png = figure(backends.trace_figure(result))
        words = describe_trace(result)
        return words, fig, workspace.record(f"Tamper hunt, trace of {copy_name}: {result.prompt}", words, images=[png])

    def diff_copy(workspace, hunt, copy_name):
        path = tamper.copy_path(_hunt(hunt), text(copy_name, "copy"))
        report = diff_checkpoints("factworld", str(path))
        rows = [[d.name, str(d.layer), f"{d.rel_change:.3g}", str(d.rank)] for d in report.changed]
        words = f"**{path.name}**: signature **{report.signature}**. {report.summary}."
        return words, rows, workspace.record(f"Tamper hunt, weight diff of {path.name}", words,
                                             table=[DIFF_HEADER] + rows)

    def explain_copy(workspace, hunt, copy_name):
        hunt, copy_name = _hunt(hunt), text(copy_name, "copy")
        path = tamper.copy_path(hunt, copy_name)
        report = diff_checkpoints("factworld", str(path))
        if report.signature != "rome":
            words = f"**{path.name}**: signature **{report.signature}**, no single rank-one edit to explain."
        else:
            recovery = recover_rank_one("factworld", str(path), report)
            edited = tamper.load_copy(hunt, copy_name)
            with ctx.pool.use(ctx.pool.workspace().with_model("factworld"), with_edits=False) as base:
                ex = explain(base, edited, recovery)
            words = f"**{path.name}**, layer {ex.layer}:\n\n" + "\n".join(f"- {line}" for line in ex.lines()[:4])
        return words, workspace.record(f"Tamper hunt, explanation of {path.name}", words)

    def reveal(workspace, hunt, guess_text):
        key = tamper.reveal(_hunt(hunt))
        seal = ("The seal matches: this answer was fixed when the hunt was made." if key["sealed_ok"] else
                "**The seal does not match: the answer file was changed after the hunt was made.**")
        verdict = ""
        if str(guess_text or "").strip():
            mine = str(guess_text).strip()
            mine = mine if mine.startswith("copy_") else f"copy_{mine}"
            verdict = "**Right!** " if mine == key["edited_copy"] else f"Not {mine}. "
        words = (f"{verdict}The edited copy is **{key['edited_copy']}**: ROME at layer {key['layer']} "
                 f"(`{key['tensor']}`) rewrote *{key['text']}* from **{key['target_true']}** to "
                 f"**{key['target_new']}** (the copy now answers {key['edited_answer']}). {seal}")
        return words, workspace.record("Tamper hunt, the answer", words)

    ctx.on(create_btn.click, create_hunt, [name, copies, seed], [created, folder], "hunt_create")
    ctx.on(survey_btn.click, survey_copies, [ctx.workspace, folder], [survey_words, survey_rows, ctx.workspace],
           "hunt_survey")
    ctx.on(compare_btn.click, compare_copies, [ctx.workspace, folder, prompt], [answers, ctx.workspace],
           "hunt_compare")
    ctx.on(trace_btn.click, trace_copy, [ctx.workspace, folder, suspect, trace_prompt, subject],
           [trace_words, heatmaps, ctx.workspace], "hunt_trace")
    ctx.on(diff_btn.click, diff_copy, [ctx.workspace, folder, suspect], [diff_words, diff_rows, ctx.workspace],
           "hunt_diff")
    ctx.on(explain_btn.click, explain_copy, [ctx.workspace, folder, suspect], [diff_words, ctx.workspace],
           "hunt_explain")
    ctx.on(reveal_btn.click, reveal, [ctx.workspace, folder, guess], [revealed, ctx.workspace], "hunt_reveal",
           touches_model=False)

