"""A probe dataset as a value, how it is built and validated, and its seeded splits by entity.

A :class:`ProbeDataset` holds the texts to run, the labels, the entity each row is about (so a
split never puts one entity on both sides), the subject words for ``subject_last`` and, where a
class names a model answer (" France"), the answer text of every class for the causal check.
:mod:`probes.datasets` loads the built-in sets and user files into it.

>>> ds = make_dataset("toy", ["Paris is in France", "Rome is in France"], ["true", "false"], ["Paris", "Rome"])
>>> train, test = grouped_split(ds.entities, test_fraction=0.5, seed=0)
>>> len(train) + len(test), set(train.tolist()).isdisjoint(test.tolist())
(2, True)
"""
from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, replace
from typing import Sequence

import torch
from jaxtyping import Int
from torch import Tensor

from workbench.errors import WorkbenchError
from workbench.tokens import Position


@dataclass(frozen=True)
class ProbeDataset:
    """Rows to probe. Classification: ``labels`` are class indices into ``classes``; regression:
    ``labels`` is ``(n, targets)`` float and ``classes`` names the targets."""

    name: str
    texts: tuple[str, ...]
    labels: Tensor  # (n,) long | (n, targets) float
    classes: tuple[str, ...]
    entities: tuple[str, ...]
    task: str = "classification"  # | "regression"
    subjects: tuple[str, ...] | None = None  # words whose last token `subject_last` reads
    is_test: Tensor | None = None  # (n,) bool: a fixed split shipped with the data
    default_position: Position = "last"
    answers: tuple[str, ...] | None = None  # per class: the model's answer text (" France")
    coordinates: bool = False  # regression targets are (latitude, longitude) in degrees

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def input_hash(self) -> str:
        """Hash of what the model sees (texts and subjects): the activation cache key, so that
        relabelling the same rows costs no forward pass."""
        digest = hashlib.sha256()
        for part in (self.texts, self.subjects or ()):
            digest.update(json.dumps(list(part)).encode())
        return digest.hexdigest()

    @property
    def hash(self) -> str:
        """Content hash of the whole dataset (inputs and labels)."""
        return hashlib.sha256(self.input_hash.encode() + self.labels.contiguous().numpy().tobytes()).hexdigest()

    def subset(self, index: Sequence[int] | Tensor, name: str | None = None) -> "ProbeDataset":
        """The rows at ``index`` (a new dataset, with its own hash)."""
        index = torch.as_tensor(index, dtype=torch.long)
        rows = index.tolist()
        pick = lambda seq: None if seq is None else tuple(seq[i] for i in rows)  # noqa: E731
        return replace(self, name=name or self.name, texts=pick(self.texts), labels=self.labels[index],
                       entities=pick(self.entities), subjects=pick(self.subjects),
                       is_test=None if self.is_test is None else self.is_test[index])

    def to_dict(self) -> dict:
        out = {"name": self.name, "rows": len(self), "task": self.task, "classes": list(self.classes),
               "entities": len(set(self.entities)), "default_position": self.default_position,
               "fixed_split": self.is_test is not None}
        if self.task == "classification":
            out["class_counts"] = torch.bincount(self.labels, minlength=len(self.classes)).tolist()
        return out


# ---- construction and validation ---------------------------------------------------------------

def make_dataset(name: str, texts: Sequence[str], labels: Sequence, entities: Sequence[str] | None = None,
                 task: str = "classification", classes: Sequence[str] | None = None, **fields) -> ProbeDataset:
    """Build and validate a dataset; class labels may be strings or numbers (sorted to indices).

    >>> ds = make_dataset("toy", ["a is b", "c is d"], ["yes", "no"])
    >>> ds.classes, ds.labels.tolist()
    (('no', 'yes'), [1, 0])
    """
    texts = tuple(texts)
    if not texts:
        raise WorkbenchError(f"dataset {name!r} is empty: it has no rows")
    if len(labels) != len(texts):
        raise WorkbenchError(f"dataset {name!r}: {len(labels)} labels for {len(texts)} texts")
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise WorkbenchError(f"dataset {name!r}: row {i} has an empty text")
    entities = tuple(str(e) for e in entities) if entities is not None else texts
    if task == "classification":
        names = [str(v) for v in labels]
        if classes is None:
            classes = sorted(set(names), key=_natural_key)
        lookup = {c: i for i, c in enumerate(classes)}
        missing = sorted(set(names) - set(lookup))
        if missing:
            raise WorkbenchError(f"dataset {name!r}: labels {missing[:5]} are not among the classes")
        tensor = torch.tensor([lookup[v] for v in names], dtype=torch.long)
        if len(set(names)) < 2:
            raise WorkbenchError(f"dataset {name!r} has a single class ({names[0]!r}): a probe needs at least two")
    elif task == "regression":
        tensor = torch.tensor(labels, dtype=torch.float32)
        tensor = tensor.unsqueeze(1) if tensor.dim() == 1 else tensor
        bad = (~torch.isfinite(tensor)).any(1).nonzero().flatten()
        if len(bad):
            raise WorkbenchError(f"dataset {name!r}: row {int(bad[0])} has a NaN or infinite value "
                                 f"({len(bad)} such rows); drop or fill them")
        classes = tuple(classes or [f"value{i}" for i in range(tensor.shape[1])])
    else:
        raise WorkbenchError(f"unknown task {task!r}: classification or regression")
    return ProbeDataset(name, texts, tensor, tuple(classes), entities, task, **fields)


def _natural_key(value: str):
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)


# ---- splits ------------------------------------------------------------------------------------

def grouped_split(entities: Sequence[str], test_fraction: float = 0.2,
                  seed: int = 0) -> tuple[Int[Tensor, "n_train"], Int[Tensor, "n_test"]]:
    """Row indices ``(train, test)``: whole entities go to one side, about ``test_fraction`` of rows
    to test; seeded, so the same seed gives the same split."""
    if not 0 < test_fraction < 1:
        raise WorkbenchError(f"test fraction must be between 0 and 1, got {test_fraction}")
    groups: dict[str, list[int]] = {}
    for i, entity in enumerate(entities):
        groups.setdefault(entity, []).append(i)
    if len(groups) < 2:
        raise WorkbenchError("the dataset has a single entity: a grouped split needs at least two")
    order = sorted(groups)
    random.Random(seed).shuffle(order)
    target = test_fraction * len(entities)
    test: list[int] = []
    for entity in order[:-1]:  # at least one entity stays in train
        if len(test) >= target:
            break
        test.extend(groups[entity])
    test_set = set(test)
    train = [i for i in range(len(entities)) if i not in test_set]
    return torch.tensor(train, dtype=torch.long), torch.tensor(sorted(test), dtype=torch.long)


def split(dataset: ProbeDataset, test_fraction: float = 0.2, seed: int = 0) -> tuple[Tensor, Tensor]:
    """The dataset's fixed split when it ships one, else a seeded split grouped by entity."""
    if dataset.is_test is not None:
        return (~dataset.is_test).nonzero().flatten(), dataset.is_test.nonzero().flatten()
    return grouped_split(dataset.entities, test_fraction, seed)


def limit_rows(dataset: ProbeDataset, limit: int, seed: int = 0) -> ProbeDataset:
    """A seeded subset of about ``limit`` rows made of whole entities (both sides of a fixed split kept)."""
    if limit < 2:
        raise WorkbenchError(f"limit {limit} is too small: keep at least two rows")
    keep, _ = grouped_split(dataset.entities, test_fraction=1 - limit / len(dataset), seed=seed)
    subset = dataset.subset(keep)
    if subset.task == "classification" and len(subset.labels.unique()) < 2:
        raise WorkbenchError(f"limit {limit} leaves a single class in {dataset.name!r}: raise the limit")
    return subset
