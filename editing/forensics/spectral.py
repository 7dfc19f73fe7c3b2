"""Blind check without a base: does one layer's MLP output projection look edited?

A ROME edit adds a rank-one matrix ``u vᵀ`` to one MLP output projection, often as large as the
matrix's own top singular value, so that layer's spectrum gains an outlier direction. Per layer
we measure a spectral statistic of the weight alone, then ask how far each layer sits from the
*other* layers (leave-one-out z-score of the log statistic: ``(log s_L - mean_others) / std_others``).
The layer with the largest z is the suspect; it is flagged when z exceeds a threshold.

| statistic    | formula            | what it sees                              |
|--------------|--------------------|-------------------------------------------|
| sigma_ratio  | σ1 / σ2            | one direction standing out of the rest    |
| sigma_bulk   | σ1 / median σ      | the top direction against the bulk        |

No base is needed, but nothing guarantees that an unedited model has no naturally odd layer:
the false-alarm rate has to be measured (see :mod:`editing.forensics.experiment`).

>>> scan = spectral_scan("factworld")     # an unedited model: no layer stands out
>>> scan.flagged
False
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from editing.forensics.tensors import TensorIndex, is_mlp_out, layer_of
from workbench.errors import WorkbenchError

STATISTICS = ("sigma_ratio", "sigma_bulk")
DEFAULT_STATISTIC = "sigma_ratio"
DEFAULT_THRESHOLD = 4.0  # leave-one-out z above which the suspect layer is flagged


@dataclass(frozen=True)
class LayerSpectrum:
    layer: int
    name: str
    sigma: tuple[float, ...]  # the top 3 singular values
    sigma_median: float
    sigma_ratio: float
    sigma_bulk: float
    z: dict  # statistic -> leave-one-out z of its log across layers

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SpectralScan:
    checkpoint: str
    statistic: str
    threshold: float
    layers: tuple[LayerSpectrum, ...]

    @property
    def suspect(self) -> int:
        """The layer whose statistic stands out most."""
        return max(self.layers, key=lambda r: r.z[self.statistic]).layer

    @property
    def z(self) -> float:
        return max(r.z[self.statistic] for r in self.layers)

    @property
    def flagged(self) -> bool:
        return self.z > self.threshold

    def to_dict(self) -> dict:
        return {"checkpoint": self.checkpoint, "statistic": self.statistic, "threshold": self.threshold,
                "suspect_layer": self.suspect, "z": self.z, "flagged": self.flagged,
                "layers": [r.to_dict() for r in self.layers]}

    def lines(self) -> list[str]:
        head = (f"blind spectral scan of {self.checkpoint} ({self.statistic}, leave-one-out z; "
                f"flag above {self.threshold:g})")
        rows = [f"  layer {r.layer}: σ1/σ2 {r.sigma_ratio:.3f}  σ1/median {r.sigma_bulk:.2f}  "
                f"z {r.z[self.statistic]:+.2f}" for r in self.layers]
        verdict = (f"layer {self.suspect} stands out (z {self.z:.2f}): possibly edited" if self.flagged else
                   f"no layer stands out (largest z {self.z:.2f} at layer {self.suspect})")
        return [head, *rows, verdict]


def leave_one_out_z(values: list[float]) -> list[float]:
    """For each value: its distance from the mean of the others, in units of their std."""
    x = torch.tensor(values, dtype=torch.float64)
    out = []
    for i in range(len(x)):
        others = torch.cat([x[:i], x[i + 1:]])
        std = float(others.std()) if len(others) > 1 else 0.0
        out.append(float((x[i] - others.mean()) / max(std, 1e-12)))
    return out


def spectral_scan(checkpoint: str, statistic: str = DEFAULT_STATISTIC,
                  threshold: float = DEFAULT_THRESHOLD) -> SpectralScan:
    """Per-layer spectral statistics of ``checkpoint``'s MLP output projections (streamed)."""
    if statistic not in STATISTICS:
        raise WorkbenchError(f"unknown statistic {statistic!r}: use one of {', '.join(STATISTICS)}")
    index = TensorIndex(checkpoint)
    names = sorted((n for n in index.names() if is_mlp_out(n) and layer_of(n) is not None), key=layer_of)
    if len(names) < 3:
        raise WorkbenchError(f"{checkpoint} has {len(names)} MLP output projection(s); the blind scan compares "
                             "layers with each other and needs at least 3")
    raw = []
    for name in names:
        values = torch.linalg.svdvals(index.get(name).double())  # descending
        raw.append((layer_of(name), name, values))
    stats = {"sigma_ratio": [float(s[0] / s[1]) for _, _, s in raw],
             "sigma_bulk": [float(s[0] / s.median()) for _, _, s in raw]}
    z = {k: leave_one_out_z([float(torch.tensor(x).log()) for x in v]) for k, v in stats.items()}
    rows = tuple(LayerSpectrum(layer, name, tuple(float(x) for x in s[:3]), float(s.median()),
                               stats["sigma_ratio"][i], stats["sigma_bulk"][i], {k: z[k][i] for k in STATISTICS})
                 for i, (layer, name, s) in enumerate(raw))
    return SpectralScan(checkpoint, statistic, threshold, rows)
