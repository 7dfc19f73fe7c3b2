"""Layer sweeps: a probe at every layer, scored on held-out entities over several seeds, with the
control task, selectivity and (optionally) transfer to a second dataset.

>>> from workbench import load
>>> from probes import load_dataset
>>> s = load("factworld", device="cpu")
>>> result = sweep(s, load_dataset("factworld_country"), seeds=(0, 1))
>>> result.best_layer, result.layers[result.best_layer].selectivity  # doctest: +SKIP
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from workbench import sites as site_names
from workbench.errors import WorkbenchError
from workbench.tokens import Position
from workbench.report import Section, num, table

from probes.controls import control_labels
from probes.dataset import ProbeDataset, split
from probes.linear import Probe, fit_probes
from probes.metrics import classification_scores, regression_scores
from probes.store import ActivationStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LayerScore:
    """Held-out scores at one layer, averaged over seeds."""

    layer: int
    metric: str
    value: float
    std: float
    control: float | None
    selectivity: float | None
    extra: dict = field(default_factory=dict)  # auc / km_error / transfer, each averaged over seeds

    def to_dict(self) -> dict:
        return {"layer": self.layer, "metric": self.metric, "value": self.value, "std": self.std,
                "control": self.control, "selectivity": self.selectivity, **self.extra}


@dataclass(frozen=True)
class SweepResult:
    dataset: str
    method: str
    position: Position
    metric: str
    layers: tuple[LayerScore, ...]
    best_layer: int
    seeds: tuple[int, ...]
    n_train: int
    n_test: int
    probe: Probe  # fitted at the best layer (first seed)
    test_dataset: str | None = None
    model: str | None = None

    def score(self, layer: int) -> LayerScore:
        return next(s for s in self.layers if s.layer == layer)

    def to_dict(self) -> dict:
        best = self.score(self.best_layer)
        return {"model": self.model, "dataset": self.dataset, "test_dataset": self.test_dataset,
                "method": self.method, "position": self.position, "metric": self.metric,
                "seeds": list(self.seeds), "n_train": self.n_train, "n_test": self.n_test,
                "layers": [s.to_dict() for s in self.layers], "best_layer": self.best_layer,
                "best": best.to_dict(), "probe": self.probe.to_dict()}

    def to_section(self, images: Sequence[bytes] = (), causal=None) -> Section:
        """The report section: the score per layer with control and selectivity, the figures, and
        (``causal``: a :class:`~probes.causal.CausalResult`) the steering curve."""
        extras = [k for k in ("auc", "km_error", f"transfer_{self.metric}") if k in self.layers[0].extra]
        rows = [("layer", self.metric, "±", "control", "selectivity", *extras)]
        for s in self.layers:
            rows.append((f"{s.layer}{' (best)' if s.layer == self.best_layer else ''}", num(s.value), num(s.std),
                         num(s.control), num(s.selectivity), *(num(s.extra[k]) for k in extras)))
        tables = [table(rows)]
        if causal is not None:
            tables.append(causal.table())
        text = (f"{self.method} probe on {self.dataset} ({self.position}), {self.n_train} train / {self.n_test} "
                f"test rows, seeds {list(self.seeds)}; best layer {self.best_layer}.")
        return Section(f"Probe sweep: {self.dataset}", "probe", text, tuple(tables), tuple(images))


def default_method(dataset: ProbeDataset) -> str:
    return "ridge" if dataset.task == "regression" else "logistic"


def _score(probe: Probe, x: Tensor, y: Tensor, dataset: ProbeDataset) -> dict[str, float]:
    scores = probe.scores(x).cpu()
    if dataset.task == "regression":
        return regression_scores(scores, y, dataset.coordinates)
    return classification_scores(scores, y)


def _align_labels(train: ProbeDataset, test: ProbeDataset) -> Tensor:
    """``test`` labels as indices into ``train.classes`` (error when the class sets differ)."""
    if train.task != test.task:
        raise WorkbenchError(f"cannot test a {train.task} probe of {train.name!r} on {test.task} data {test.name!r}")
    if train.task == "regression":
        if test.labels.shape[1] != train.labels.shape[1]:
            raise WorkbenchError(f"{test.name!r} has {test.labels.shape[1]} targets, {train.name!r} has "
                                 f"{train.labels.shape[1]}")
        return test.labels
    lookup = {c: i for i, c in enumerate(train.classes)}
    unknown = sorted(set(test.classes) - set(lookup))
    if unknown:
        raise WorkbenchError(f"{test.name!r} has classes {unknown[:5]} that {train.name!r} does not")
    return torch.tensor([lookup[test.classes[i]] for i in test.labels.tolist()])


def _control(y: Tensor, dataset: ProbeDataset, train: Tensor, seed: int) -> Tensor:
    """Control labels whose training part holds at least two classes (few entities can draw one)."""
    for attempt in range(20):
        yc = control_labels(y, dataset.entities, seed + 1000 * attempt)
        if dataset.task == "regression" or yc[train].unique().numel() > 1:
            return yc
    raise WorkbenchError(f"dataset {dataset.name!r} has too few entities for a control task; use --no-control")


def sweep_activations(x: Float[Tensor, "layers n d"], dataset: ProbeDataset, layers: Sequence[int],
                      method: str | None = None, seeds: Sequence[int] = (0, 1, 2), control: bool = True,
                      x_test: Tensor | None = None, test_dataset: ProbeDataset | None = None,
                      test_fraction: float = 0.2, site_kind: str = "resid_post", position: Position = "last",
                      device: torch.device | str = "cpu", model: str | None = None, **fit_options) -> SweepResult:
    """The sweep on activations already in hand (``x[i]`` belongs to ``layers[i]``)."""
    method = method or default_method(dataset)
    if (method == "ridge") != (dataset.task == "regression"):
        raise WorkbenchError(f"method {method} does not fit a {dataset.task} dataset: use "
                             f"{'ridge' if dataset.task == 'regression' else 'logistic or mass-mean'}")
    seeds = tuple(seeds) or (0,)
    sites = tuple(site_names.site(site_kind, layer) for layer in layers)
    y = dataset.labels
    y_transfer = None if test_dataset is None else _align_labels(dataset, test_dataset)
    x = x.to(device)
    runs: list[list[dict]] = []  # per seed, per layer
    best_probes: list[Probe] = []
    n_train = n_test = 0
    fixed = dataset.is_test is not None
    for run, seed in enumerate(seeds):
        train, test = split(dataset, test_fraction, seed)
        n_train, n_test = len(train), len(test)
        log.info("%s: seed %d, %d train / %d test rows, %d layers", dataset.name, seed, n_train, n_test, len(layers))
        if run == 0 or not fixed:  # a fixed split gives the same task probe for every seed
            probes = fit_probes(x[:, train], y[train], dataset.classes, sites, method,
                                metadata={"dataset": dataset.name, "seed": seed}, **fit_options)
            task_rows = [_score(p, x[i, test], y[test], dataset) for i, p in enumerate(probes)]
            if y_transfer is not None:
                for i, p in enumerate(probes):
                    transfer = _score(p, x_test[i], y_transfer, test_dataset)
                    task_rows[i] |= {f"transfer_{k}": v for k, v in transfer.items() if not isinstance(v, list)}
        rows = [dict(r) for r in task_rows]
        if run == 0:
            best_probes = probes
        if control:
            yc = _control(y, dataset, train, seed)
            cprobes = fit_probes(x[:, train], yc[train], dataset.classes, sites, method, **fit_options)
            for i, p in enumerate(cprobes):
                rows[i]["control"] = _score(p, x[i, test], yc[test], dataset)
        runs.append(rows)
    metric = "r2" if dataset.task == "regression" else "accuracy"
    scores = []
    for i, layer in enumerate(layers):
        values = torch.tensor([r[i][metric] for r in runs], dtype=torch.float64)
        ctrl = None
        if control:
            ctrl = float(torch.tensor([r[i]["control"][metric] for r in runs], dtype=torch.float64).mean())
        extra = {}
        for key, v in runs[0][i].items():
            if key not in (metric, "control") and isinstance(v, float):
                extra[key] = float(torch.tensor([r[i][key] for r in runs], dtype=torch.float64).nanmean())
        mean = float(values.mean())
        scores.append(LayerScore(layer, metric, mean, float(values.std()) if len(values) > 1 else 0.0, ctrl,
                                 None if ctrl is None else mean - ctrl, extra))
    best = max(range(len(scores)), key=lambda i: (scores[i].value if not math.isnan(scores[i].value) else -1e9))
    return SweepResult(dataset.name, method, position, metric, tuple(scores), scores[best].layer, seeds,
                       n_train, n_test, best_probes[best], None if test_dataset is None else test_dataset.name, model)


def parse_layers(spec: str | Sequence[int] | None, n_layers: int) -> list[int]:
    """``all`` / None, ``"3,5,-1"`` or a list -> layer indices (negative counts from the end)."""
    from workbench.errors import check_layer

    if spec is None or spec == "all":
        return list(range(n_layers))
    if isinstance(spec, str):
        try:
            spec = [int(part) for part in spec.split(",") if part.strip()]
        except ValueError:
            raise WorkbenchError(f"--layers {spec!r}: give all or comma-separated integers") from None
    if not spec:
        raise WorkbenchError("no layers given")
    return sorted({check_layer(int(layer), n_layers) for layer in spec})


def sweep(session, dataset: ProbeDataset, method: str | None = None, layers=None, position: Position | None = None,
          seeds: Sequence[int] = (0, 1, 2), control: bool = True, test_dataset: ProbeDataset | None = None,
          test_fraction: float = 0.2, site_kind: str = "resid_post", cache_dir=None, use_cache: bool = True,
          batch_size: int = 32, progress: bool | None = None, **fit_options) -> SweepResult:
    """Probe ``dataset`` at every layer of ``session`` (activations cached on disk)."""
    layer_list = parse_layers(layers, session.n_layers)
    options = dict(kind=site_kind, cache_dir=cache_dir, use_cache=use_cache, batch_size=batch_size,
                   progress=progress)
    store = ActivationStore(session, dataset, position, **options)
    x = store.layers(layer_list)
    x_test = None
    if test_dataset is not None:
        x_test = ActivationStore(session, test_dataset, position, **options).layers(layer_list)
    return sweep_activations(x, dataset, layer_list, method, seeds, control, x_test, test_dataset, test_fraction,
                             site_kind, store.position, session.device, session.name, **fit_options)
