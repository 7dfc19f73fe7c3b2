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
             "| | |", "|---|---|",
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
    """The peaks of a causal trace in words (``result``: ``editing.trace.TraceResult``)."""
    lines = [f"Clean run: P({result.target.strip()}) = {percent(result.clean_prob)}; with the subject blurred: "
             f"{percent(result.corrupted_prob)}."]
    for kind in result.scores:
        layer, token = result.peak(kind)
        best = float(result.scores[kind][layer, token])
        lines.append(f"- Restoring the **{TRACE_KINDS.get(kind, kind)}** at layer **{layer}** on token "
                     f"**{result.tokens[token].strip() or repr(result.tokens[token])}** brings it back most "
                     f"(to {percent(best)}).")
    return "\n".join(lines)


def sweep_figure(result):
    """Held-out score per layer with the control task's score, best layer marked (``probes`` SweepResult)."""
    from matplotlib.ticker import MaxNLocator

    from workbench.plots import plt

    layers = [s.layer for s in result.layers]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.errorbar(layers, [s.value for s in result.layers], yerr=[s.std for s in result.layers], marker="o", lw=2.5,
                color="#0072B2", label=f"probe ({result.method})")
    controls = [(s.layer, s.control) for s in result.layers if s.control is not None]
    if controls:
        ax.plot(*zip(*controls), ls="--", marker="s", lw=2, color="#D55E00", label="control (random labels)")
    ax.axvline(result.best_layer, color="grey", ls=":", lw=2, label=f"best layer {result.best_layer}")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("layer")
    ax.set_ylabel(result.metric)
    ax.set_title(f"{result.dataset}: {result.metric} on held-out entities")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def describe_sweep(result) -> str:
    """The best layer of a probe sweep in words."""
    best = result.score(result.best_layer)
    control = "" if best.control is None else (f"; control {best.control:.3f}, selectivity "
                                               f"{best.selectivity:.3f}")
    return (f"Best layer **{result.best_layer}**: {result.metric} {best.value:.3f} ± {best.std:.3f}{control} "
            f"({result.n_train} training rows, {result.n_test} held-out, seeds {list(result.seeds)}).")
