"""Library results -> what the page shows (markdown, tables, figures). Formatting only, no math."""
from __future__ import annotations

from workbench.plots import png_bytes


def figure(fig) -> tuple[object, bytes]:
    """``fig`` for a ``gr.Plot`` and its PNG bytes for the report (rendered once, projector size)."""
    return fig, png_bytes(fig)


def percent(p: float) -> str:
    return f"{100 * float(p):.1f}%"


def top_tokens_rows(top: list[dict]) -> list[list[str]]:
    """Rows ``[rank, token, probability]`` from a lens row's ``top`` list."""
    return [[str(i), repr(t["token"]), percent(t["prob"])] for i, t in enumerate(top, 1)]


def card_markdown(info: dict, hashes: dict) -> str:
    """The architecture card of a model as markdown (``info``: ``ModelInfo.to_dict()``)."""
    lines = [f"### {info['model']}", "",
             "| property | value |", "|---|---|",
             f"| architecture | {info['architecture']} ({info['family']}) |",
             f"| parameters | {info['n_params']:,} |",
             f"| layers / d_model / d_mlp / heads | {info['n_layers']} / {info['d_model']} / {info['d_mlp']} / "
             f"{info['n_heads']} |",
             f"| vocabulary / context | {info['vocab_size']:,} / {info['n_ctx']:,} |",
             f"| device / dtype | {info['device']} / {info['dtype']} |",
             f"| weights hash (checkpoint) | `{hashes['original'][:16]}…` |",
             f"| weights hash (with your edits) | `{hashes['current'][:16]}…` |"]
    for name, sha in hashes.get("files", {}).items():
        lines.append(f"| sha256 {name} | `{sha[:16]}…` |")
    return "\n".join(lines)


def table_text(rows: list[list[str]]) -> str:
    """A plain-text rendering of rows (for messages and the report)."""
    return "\n".join(" | ".join(r) for r in rows)


TRACE_KINDS = {"resid": "hidden state", "mlp": "MLP output", "attn": "attention output"}


def describe_trace(result) -> str:
    """The peaks of a causal trace in words, then ROME's two sites (``result``: ``editing.trace.TraceResult``)."""
    window = "one layer at a time" if result.window == 1 else f"{result.window} layers at a time"
    lines = [f"Clean run: P({result.target.strip()}) = {percent(result.clean_prob)}; with the subject blurred: "
             f"{percent(result.corrupted_prob)}. MLP and attention outputs restored {window}."]
    for kind in result.scores:
        layer, token = result.peak(kind)
        best = float(result.scores[kind][layer, token])
        lines.append(f"- Restoring the **{TRACE_KINDS.get(kind, kind)}** at layer **{layer}** on token "
                     f"**{_token(result, token)}** brings it back most (to {percent(best)}).")
    return "\n".join(lines + [two_sites(result)] if {"mlp", "attn"} <= set(result.scores) else lines)


def _token(result, index: int) -> str:
    return result.tokens[index].strip() or repr(result.tokens[index])


def two_sites(result) -> str:
    """ROME's two sites in a trace: the MLPs at the subject's last token, attention at the last token."""
    subject_last, last = result.subject_range[1] - 1, len(result.tokens) - 1
    early, late = result.peak_layer("mlp", subject_last), result.peak_layer("attn", last)
    return (f"\n**Two sites, as in ROME.** Early site: the MLP at the subject's last token "
            f"**{_token(result, subject_last)}** restores most at layer **{early}** "
            f"({percent(float(result.scores['mlp'][early, subject_last]))}): there the fact is recalled. "
            f"Late site: attention at the last token **{_token(result, last)}** restores most at layer **{late}** "
            f"({percent(float(result.scores['attn'][late, last]))}): there it is moved to the answer. "
            f"ROME edits an MLP of the early site.")


def describe_sweep(result) -> str:
    """The best layer of a probe sweep in words."""
    best = result.score(result.best_layer)
    control = "" if best.control is None else (f"; control {best.control:.3f}, selectivity "
                                               f"{best.selectivity:.3f}")
    return (f"Best layer **{result.best_layer}**: {result.metric} {best.value:.3f} ± {best.std:.3f}{control} "
            f"({result.n_train} training rows, {result.n_test} held-out, seeds {list(result.seeds)}).")


def describe_steering(curve, layer: int, best_layer: int, tolerance: float | None = None) -> str:
    """The causal check in words: where it steered, the strongest push against a random one, and a
    few prompts with their steered-to answer before and after (``curve``: ``probes`` CausalResult;
    ``tolerance``: given when the layer was chosen by ``probes.causal.steering_layer``)."""
    row = curve.rows[-1]
    why = "" if tolerance is None else (f" (chosen: the earliest layer whose probe scores within {tolerance} of the "
                                        f"best layer, {best_layer}; an early push leaves the later layers to carry "
                                        f"it to the answer)")
    lines = [f"Steering at layer **{layer}**{why}, over {curve.n_prompts} prompts, each pushed toward another answer "
             f"than its own. At α = {row['alpha']:g}: P(steered-to answer) **{percent(row['p_target'])}** "
             f"(at α = 0: {percent(curve.rows[0]['p_target'])}; the same push in a random direction: "
             f"{percent(row['p_target_random'])}); P(original answer) {percent(row['p_original'])}.", ""]
    if curve.examples:
        lines += ["| prompt | its answer | steered to | P before | P after |", "|---|---|---|---|---|"]
        lines += [f"| {e['prompt']} | {e['original'].strip()} | **{e['target'].strip()}** | "
                  f"{percent(e['p_target_before'])} | {percent(e['p_target_after'])} |" for e in curve.examples]
    return "\n".join(lines)
