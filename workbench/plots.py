"""Figures readable on a projector: large fonts, colour-blind-safe maps, axes labelled with tokens.

Each function returns a matplotlib ``Figure``; the CLI saves it with :func:`save_png`, the app
shows it directly.

>>> from workbench import load, logit_lens
>>> s = load("factworld", device="cpu")
>>> fig = lens_heatmap(logit_lens(s, "The Eiffel Tower is located in the city of", target=" Paris"))
"""
from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from workbench.io import write_bytes  # noqa: E402

SEQUENTIAL = "cividis"  # colour-blind safe
DIVERGING = "PuOr"  # colour-blind safe, centred at zero
plt.rcParams.update({"font.size": 13, "axes.titlesize": 15, "axes.labelsize": 14})


def _token_labels(tokens) -> list[str]:
    return [repr(t)[1:-1] if t.strip() else repr(t) for t in tokens]


def lens_heatmap(result) -> Figure:
    """Layers x positions: colour = probability of the top token, text = the top token."""
    probs = result.top_probs[:, :, 0].numpy()  # (layers, pos)
    n_layers, n_pos = probs.shape
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * n_pos + 2), max(4, 0.5 * n_layers + 1.5)))
    image = ax.imshow(probs, cmap=SEQUENTIAL, vmin=0, vmax=1, aspect="auto", origin="lower")
    for layer in range(n_layers):
        for pos in range(n_pos):
            colour = "black" if probs[layer, pos] > 0.6 else "white"
            ax.text(pos, layer, result.top_strings[layer][pos][0].strip()[:8], ha="center", va="center",
                    fontsize=9, color=colour)
    ax.set_xticks(range(n_pos), _token_labels(result.tokens), rotation=45, ha="right")
    ax.set_yticks(range(n_layers))
    ax.set_xlabel("prompt token")
    ax.set_ylabel("layer")
    ax.set_title("Logit lens: top next token after each layer")
    fig.colorbar(image, ax=ax, label="probability of top token")
    fig.tight_layout()
    return fig


def target_curve(result) -> Figure:
    """Probability of the target token at the last position after each layer."""
    fig, ax = plt.subplots(figsize=(7, 4))
    values = result.target_probs[:, -1].numpy()
    ax.plot(range(len(values)), values, marker="o", lw=2.5, color="#0072B2")
    ax.set_xlabel("layer")
    ax.set_ylabel(f"P({result.target!r})")
    ax.set_ylim(0, 1)
    ax.set_title(f"When does {result.target.strip()!r} appear?")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def matrix_image(values, title: str, row_label: str = "output dim", col_label: str = "input dim") -> Figure:
    """A weight matrix slice as an image, centred at zero."""
    values = values.numpy() if hasattr(values, "numpy") else values
    limit = float(abs(values).max()) or 1.0
    fig, ax = plt.subplots(figsize=(7, 6))
    image = ax.imshow(values, cmap=DIVERGING, vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xlabel(col_label)
    ax.set_ylabel(row_label)
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="weight")
    fig.tight_layout()
    return fig


def png_bytes(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def save_png(fig: Figure, path: str | Path) -> None:
    """Save ``fig`` as PNG atomically and close it."""
    write_bytes(path, png_bytes(fig))
