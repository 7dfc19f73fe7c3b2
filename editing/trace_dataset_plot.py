"""The averaged causal trace figure in ROME's style: one heatmap per kind over the six token
classes × layers, and the last-subject-token row of each kind as a line with its 95% interval.

>>> import torch
>>> from editing.trace_dataset import CLASSES
>>> class R: mean = {"mlp": torch.rand(6, 4)}; ci = {"mlp": torch.rand(6, 4) / 10}; kept = 3; dataset = "demo"; relation = None
>>> fig = plot_dataset_trace(R())
>>> len(fig.axes) >= 2
True
"""
from __future__ import annotations

from editing.trace_dataset import CLASSES

TITLES = {"resid": "single restored layer (resid)", "mlp": "MLP", "attn": "attention"}


def plot_dataset_trace(result):
    """Heatmaps (classes × layers) of the mean indirect effect per kind, then the last-subject-token lines."""
    from workbench import plots

    plt = plots.plt
    kinds = list(result.mean)
    fig, axes = plt.subplots(2, len(kinds), figsize=(5.2 * len(kinds), 7.5), squeeze=False,
                             gridspec_kw={"height_ratios": [1.1, 1]})
    row = CLASSES.index("last subject token")
    for ax, kind in zip(axes[0], kinds):
        grid = result.mean[kind].numpy()  # (6, layers)
        image = ax.imshow(grid, cmap=plots.SEQUENTIAL, aspect="auto")
        ax.set_yticks(range(len(CLASSES)), CLASSES)
        ax.set_xlabel("layer")
        ax.set_title(f"Average indirect effect: {TITLES.get(kind, kind)}")
        fig.colorbar(image, ax=ax, label="P(restored) − P(corrupted)")
    for ax, kind in zip(axes[1], kinds):
        mean, half = result.mean[kind][row].numpy(), result.ci[kind][row].nan_to_num(0.0).numpy()
        layers = range(len(mean))
        ax.plot(layers, mean, marker="o", label="last subject token")
        ax.fill_between(layers, mean - half, mean + half, alpha=0.25, label="95% CI")
        ax.axhline(0.0, color="grey", lw=0.8)
        ax.set_xlabel("layer")
        ax.set_ylabel("average indirect effect")
        ax.set_title(f"{TITLES.get(kind, kind)} at the last subject token")
        ax.legend(loc="best", fontsize=8)
    where = result.dataset + (f", relation {result.relation}" if result.relation else "")
    fig.suptitle(f"Averaged causal trace over {result.kept} known facts ({where})")
    fig.tight_layout()
    return fig
