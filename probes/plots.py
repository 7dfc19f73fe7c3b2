"""Probe figures in the workbench style: metric vs layer with the control line, PCA by label,
and the causal-check curve.

>>> import workbench
>>> from probes import load_dataset, sweep
>>> result = sweep(workbench.load("factworld"), load_dataset("factworld_truth", limit=120), layers="0,3", seeds=(0,))
>>> figure = sweep_figure(result)   # workbench.plots.save_png(figure, "sweep.png") writes it
>>> len(figure.axes) >= 1
True
"""
from __future__ import annotations

import torch
from matplotlib.figure import Figure

from workbench.plots import plt  # the shared style (fonts, colour-blind-safe maps)

from probes.causal import CausalResult
from probes.sweep import SweepResult

BLUE, ORANGE, GREEN, GREY = "#0072B2", "#E69F00", "#009E73", "#777777"  # Okabe-Ito


def sweep_figure(result: SweepResult) -> Figure:
    """Held-out metric per layer (± std over seeds), the control task and the selectivity."""
    layers = [s.layer for s in result.layers]
    values = [s.value for s in result.layers]
    stds = [s.std for s in result.layers]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.errorbar(layers, values, yerr=stds, marker="o", lw=2.5, color=BLUE, capsize=3, label=f"task ({result.metric})")
    if result.layers[0].control is not None:
        ax.plot(layers, [s.control for s in result.layers], marker="s", lw=2, ls="--", color=ORANGE,
                label="control task")
        ax.plot(layers, [s.selectivity for s in result.layers], marker="^", lw=1.5, color=GREEN,
                label="selectivity")
    transfer = f"transfer_{result.metric}"
    if transfer in result.layers[0].extra:
        ax.plot(layers, [s.extra[transfer] for s in result.layers], marker="D", lw=1.5, color=GREY,
                label=f"on {result.test_dataset}")
    ax.axvline(result.best_layer, color=GREY, lw=1, ls=":")
    ax.set_xticks(layers)
    ax.set_xlabel("layer")
    ax.set_ylabel(result.metric)
    ax.set_title(f"{result.method} probe on {result.dataset} ({result.position})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=10)
    fig.tight_layout()
    return fig


def pca_figure(x: torch.Tensor, labels: torch.Tensor, classes, title: str, max_classes: int = 8) -> Figure:
    """The first two principal components of activations ``(n, d)``, coloured by label
    (the ``max_classes`` most frequent classes; regression: coloured by the first target)."""
    centred = x.float() - x.float().mean(0)
    _, _, v = torch.linalg.svd(centred, full_matrices=False)
    pcs = (centred @ v[:2].T).numpy()
    fig, ax = plt.subplots(figsize=(7, 6))
    if labels.dtype == torch.long:
        counts = torch.bincount(labels, minlength=len(classes))
        palette = plt.get_cmap("tab10" if len(classes) > 2 else "cividis")
        for rank, c in enumerate(counts.argsort(descending=True)[:max_classes].tolist()):
            mask = (labels == c).numpy()
            colour = palette(rank) if len(classes) > 2 else (BLUE, ORANGE)[c]
            ax.scatter(pcs[mask, 0], pcs[mask, 1], s=14, alpha=0.7, color=colour, label=str(classes[c]))
        ax.legend(fontsize=9, markerscale=1.5)
    else:
        points = ax.scatter(pcs[:, 0], pcs[:, 1], s=10, c=labels[:, 0].numpy(), cmap="cividis")
        fig.colorbar(points, ax=ax, label=str(classes[0]))
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def causal_figure(result: CausalResult, target_name: str = "steered-to answer") -> Figure:
    """P(target) and P(original answer) versus α, with the random-direction baseline."""
    alphas = [r["alpha"] for r in result.rows]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(alphas, [r["p_target"] for r in result.rows], marker="o", lw=2.5, color=BLUE,
            label=f"P({target_name}), probe direction")
    ax.plot(alphas, [r["p_target_random"] for r in result.rows], marker="s", lw=2, ls="--", color=GREY,
            label="same push, random direction")
    ax.plot(alphas, [r["p_original"] for r in result.rows], marker="^", lw=2, color=ORANGE,
            label="P(original answer), probe direction")
    ax.plot(alphas, [r["p_original_random"] for r in result.rows], marker="v", lw=1.5, ls="--", color=ORANGE,
            alpha=0.6, label="P(original answer), random direction")
    ax.set_xlabel("α (× mean activation norm)")
    ax.set_ylabel("probability")
    ax.set_title(f"Steering at {result.site} ({result.position})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    fig.tight_layout()
    return fig
