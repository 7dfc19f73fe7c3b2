"""Probe shift: read an attribute probe on a subject before and after a weight edit.

A country probe is trained on the *unedited* model at every layer (the edited subject's own
rows are held out, so the probe has never seen it), then read on the subject at every layer,
once with the original weights and once with the edit applied. Does the probe at the Eiffel
Tower's last token now read Italy? The edit itself comes from the caller as a context manager
(``editing.applied`` in the CLI): this module does not import ``editing``.

>>> from workbench import load
>>> import editing
>>> from probes.factworld_sets import country_set
>>> s = load("factworld", device="cpu")
>>> r = editing.edit(s, editing.EditRequest("The {} is located in the city of", "Eiffel Tower", "Rome"))
>>> editing.undo(s)                                                              # doctest: +SKIP
>>> shift = probe_shift(s, country_set(min_count=9), "Eiffel Tower",
...                     lambda: editing.applied(s, r.edits[0]), new_class="Italy")  # doctest: +SKIP
>>> [row.p_new for row in shift.after]                                           # doctest: +SKIP
"""
from __future__ import annotations

import logging
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from jaxtyping import Float
from matplotlib.figure import Figure
from torch import Tensor

from workbench import sites as site_names
from workbench.activations import collect
from workbench.errors import WorkbenchError
from workbench.tokens import Position, fill
from workbench.report import Section, num, table

from probes.dataset import ProbeDataset, split
from probes.linear import Probe, fit_probes
from probes.store import ActivationStore
from probes.sweep import parse_layers

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reading:
    """What one layer's probe says about the subject."""

    layer: int
    predicted: str
    p_predicted: float
    p_old: float | None  # probability of the subject's original class (None: the probe has no such class)
    p_new: float  # probability of the edit's new class
    margin: float | None  # log-odds of the new class against the old one under the probe (None: no old class)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class ShiftResult:
    dataset: str
    method: str
    position: Position
    subject: str
    text: str  # the text read (the subject's row of the dataset, or the edit prompt)
    target: str
    old_class: str | None
    new_class: str
    layers: tuple[int, ...]
    probe_accuracy: tuple[float, ...]  # held-out accuracy of each layer's probe (other entities)
    before: tuple[Reading, ...]
    after: tuple[Reading, ...]
    weights_restored: bool  # weights hash after the edit was undone == before it was applied
    edit: dict = field(default_factory=dict)  # how the edit was made (method, layers), from the caller

    @property
    def moved_layers(self) -> list[int]:
        """Layers where P(new class) rose after the edit."""
        return [b.layer for b, a in zip(self.before, self.after) if a.p_new > b.p_new]

    @property
    def summary(self) -> str:
        reads_new = [a.layer for a in self.after if a.predicted == self.new_class]
        gain = max(a.p_new - b.p_new for b, a in zip(self.before, self.after))
        return (f"P({self.new_class}) rose at layers {self.moved_layers or 'none'} (largest rise {gain:+.3f}); "
                f"after the edit the probe reads {self.new_class} at layers {reads_new or 'none'}; weights "
                f"{'restored bit-exactly' if self.weights_restored else 'NOT restored'} after the edit was undone.")

    def to_dict(self) -> dict:
        return {"dataset": self.dataset, "method": self.method, "position": self.position, "subject": self.subject,
                "text": self.text, "target": self.target, "old_class": self.old_class, "new_class": self.new_class,
                "edit_method": self.edit.get("method"), "edit_layers": self.edit.get("layers"),
                "weights_restored": self.weights_restored, "moved_layers": self.moved_layers,
                "summary": self.summary,
                "layers": [{"layer": layer, "probe_accuracy": acc, "before": b.to_dict(), "after": a.to_dict()}
                           for layer, acc, b, a in zip(self.layers, self.probe_accuracy, self.before, self.after)]}

    def to_section(self, image: bytes | None = None) -> Section:
        """The report section: the reading at every layer before and after the edit, and the figure."""
        old, new = self.old_class, self.new_class
        rows = [("layer", "probe acc.", "read before", f"P({old}) before", f"P({new}) before",
                 "read after", f"P({old}) after", f"P({new}) after")]
        for layer, acc, b, a in zip(self.layers, self.probe_accuracy, self.before, self.after):
            rows.append((layer, num(acc), b.predicted, num(b.p_old), num(b.p_new), a.predicted, num(a.p_old),
                         num(a.p_new)))
        text = (f"Probe {self.method} on {self.dataset} (trained on the unedited model without {self.subject!r}), "
                f"read at {self.position} of {self.text!r} before and after the edit {self.subject!r} -> "
                f"{self.target!r} ({self.edit.get('method')} at layer(s) {self.edit.get('layers')}). {self.summary}")
        return Section(f"Probe shift: {self.subject} -> {self.target}", "probe-shift", text, (table(rows),),
                       (image,) if image else ())


def class_log_probabilities(probe: Probe, x: Float[Tensor, "n d"]) -> Float[Tensor, "n classes"]:
    """The probe's class log-probabilities (one binary score: log-sigmoid of -s and s; else log-softmax)."""
    scores = probe.scores(x).float()
    if scores.shape[1] == 1:
        return torch.stack([-scores[:, 0], scores[:, 0]], -1).log_softmax(-1)
    return scores.log_softmax(-1)


def _class_of(dataset: ProbeDataset, entity: str) -> str | None:
    rows = [i for i, e in enumerate(dataset.entities) if e == entity]
    return dataset.classes[int(dataset.labels[rows[0]])] if rows else None


def _read(session, probes: Sequence[Probe], layers: Sequence[int], text: str, subject: str, position: Position,
          old: int | None, new: int) -> tuple[Reading, ...]:
    names = [site_names.resid_post(layer) for layer in layers]
    acts = collect(session, [text], names, position, [subject])
    out = []
    for layer, name, probe in zip(layers, names, probes):
        logp = class_log_probabilities(probe, acts[name])[0]  # (classes,)
        p, top = logp.exp(), int(logp.argmax())
        out.append(Reading(layer, probe.classes[top], float(p[top]), None if old is None else float(p[old]),
                           float(p[new]), None if old is None else float(logp[new] - logp[old])))
    return tuple(out)


def probe_shift(session, dataset: ProbeDataset, subject: str, edited: Callable[[], AbstractContextManager],
                *, new_class: str | None = None, target: str | None = None, old_class: str | None = None,
                text: str | None = None, prompt: str | None = None, method: str = "logistic",
                position: Position | None = None, layers=None, seed: int = 0, test_fraction: float = 0.2,
                edit_info: dict | None = None, cache_dir=None, use_cache: bool = True, batch_size: int = 32,
                **fit_options) -> ShiftResult:
    """Train ``dataset``'s probe at every layer on the unedited model (``subject`` held out), read
    it on ``subject`` before and inside ``edited()``; check the weights come back bit-exactly.

    ``new_class``: the class the edit should move the subject to (default: the class of the
    dataset entity named ``target``, e.g. Rome -> Italy). ``old_class``: default the subject's
    class in the dataset. ``text``: default the subject's own row of the dataset, else
    ``prompt`` (with ``{}`` for the subject) filled in.
    """
    if dataset.task != "classification":
        raise WorkbenchError(f"probe shift needs a classification dataset; {dataset.name!r} holds values")
    new_class = new_class or (_class_of(dataset, target.strip()) if target else None)
    if new_class is None:
        raise WorkbenchError(f"cannot tell which class the edit moves {subject!r} to: {target!r} is no entity of "
                             f"{dataset.name!r}; name the class (e.g. --new-class Italy)")
    old_class = old_class or _class_of(dataset, subject)
    for name in (new_class, old_class):
        if name is not None and name not in dataset.classes:
            raise WorkbenchError(f"{dataset.name!r} has no class {name!r}, so its probe cannot read it "
                                 f"(classes: {', '.join(dataset.classes)})")
    own = [i for i, e in enumerate(dataset.entities) if e == subject]
    text = text or (dataset.texts[own[0]] if own else None) or (prompt.format(subject) if prompt else None)
    if text is None:
        raise WorkbenchError(f"{subject!r} is not in {dataset.name!r}: give the text to read it in")
    if subject not in text:
        raise WorkbenchError(f"the text {text!r} does not contain the subject {subject!r}")
    layer_list = parse_layers(layers, session.n_layers)
    store = ActivationStore(session, dataset, position, cache_dir=cache_dir, use_cache=use_cache,
                            batch_size=batch_size)
    keep = [i for i, e in enumerate(dataset.entities) if e != subject]  # the probe never sees the subject
    others = dataset.subset(keep)
    x = store.layers(layer_list)[:, keep]  # (L, n - own, d)
    train, test = split(others, test_fraction, seed)
    sites = [site_names.resid_post(layer) for layer in layer_list]
    probes = fit_probes(x[:, train], others.labels[train], dataset.classes, sites, method,
                        metadata={"dataset": dataset.name, "seed": seed, "held_out_subject": subject}, **fit_options)
    accuracy = tuple(float((p.predict(x[i, test]) == others.labels[test]).float().mean())
                     for i, p in enumerate(probes))
    old = None if old_class is None else dataset.classes.index(old_class)
    new = dataset.classes.index(new_class)
    at = fill(prompt, subject)[1] if prompt and "{}" in prompt and text == prompt.format(subject) else subject
    read = lambda: _read(session, probes, layer_list, text, at, store.position, old, new)  # noqa: E731
    start = session.weights_hash()
    before = read()
    with edited():
        if session.weights_hash() == start:
            raise WorkbenchError("the edit did not change the weights: nothing to compare")
        after = read()
    restored = session.weights_hash() == start
    if not restored:
        log.error("weights differ from the start after the edit was undone")
    return ShiftResult(dataset.name, method, store.position, subject, text, target or "", old_class, new_class,
                       tuple(layer_list), accuracy, before, after, restored, dict(edit_info or {}))


def shift_figure(result: ShiftResult) -> Figure:
    """P(old class) and P(new class) per layer, before (solid) and after (dashed) the edit."""
    from probes.plots import BLUE, ORANGE
    from workbench.plots import plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    layers = list(result.layers)
    ax.plot(layers, [r.p_new for r in result.before], marker="o", lw=2.5, color=ORANGE,
            label=f"P({result.new_class}) before")
    ax.plot(layers, [r.p_new for r in result.after], marker="o", lw=2.5, ls="--", color=ORANGE,
            label=f"P({result.new_class}) after")
    if result.old_class is not None:
        ax.plot(layers, [r.p_old for r in result.before], marker="s", lw=2.5, color=BLUE,
                label=f"P({result.old_class}) before")
        ax.plot(layers, [r.p_old for r in result.after], marker="s", lw=2.5, ls="--", color=BLUE,
                label=f"P({result.old_class}) after")
    ax.set_xlabel("layer")
    ax.set_ylabel("probe probability")
    ax.set_ylim(0, 1)
    ax.set_xticks(layers)
    ax.set_title(f"{result.dataset} probe on {result.subject!r}: before / after the edit")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=10)
    fig.tight_layout()
    return fig
