"""Probe datasets: texts with a class label or a continuous value, an entity per row, seeded splits.

A :class:`ProbeDataset` is a value: the texts to run, the labels, the entity each row is about
(so a split never puts one entity on both sides), the subject words for ``subject_last`` and,
where a class names a model answer (" France"), the answer text of every class for the causal
check. Built-in sets (see :data:`BUILTINS`) come from ``probes/data`` (Geometry of Truth
statements, world places), ``known_1000`` (the factworld copy) and the factworld knowledge base;
anything else is a CSV or JSONL file.

>>> ds = load_dataset("cities")
>>> ds.task, ds.classes, ds.default_position
('classification', ('false', 'true'), 'last')
>>> train, test = grouped_split(ds.entities, test_fraction=0.2, seed=0)
>>> set(ds.entities[i] for i in train).isdisjoint(ds.entities[i] for i in test)
True
"""
from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import random
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import torch
from jaxtyping import Int
from torch import Tensor

from workbench.errors import WorkbenchError

log = logging.getLogger(__name__)

DATA_DIR = Path(__file__).resolve().parent / "data"
TRUTH_SETS = ("cities", "neg_cities", "sp_en_trans", "neg_sp_en_trans", "larger_than", "smaller_than",
              "animal_class", "neg_animal_class", "facts", "neg_facts", "cities_conj", "cities_disj",
              "common_claim_true_false")
_TRUTH_ENTITY = {"cities": "city", "neg_cities": "city", "larger_than": "n1", "smaller_than": "n1"}
TEXT_COLUMNS = ("text", "statement")
LABEL_COLUMNS = ("label",)
VALUE_COLUMNS = ("value",)
ENTITY_COLUMNS = ("entity",)


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
    default_position: str = "last"
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


# ---- files -------------------------------------------------------------------------------------

def _read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        raise WorkbenchError(f"dataset file {path} does not exist; give a built-in name "
                             f"({', '.join(sorted(BUILTINS))}) or a CSV/JSONL path")
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        rows = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise WorkbenchError(f"{path}: line {number} is not valid JSON ({exc.msg})") from None
        return rows
    if path.suffix.lower() == ".json":
        rows = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(rows, list):
            raise WorkbenchError(f"{path}: a JSON dataset must be a list of objects")
        return rows
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _pick_column(rows: list[dict], wanted: str | None, defaults: Sequence[str], what: str, path,
                 required: bool = True) -> str | None:
    columns = list(rows[0]) if rows else []
    for name in ([wanted] if wanted else defaults):
        if name in columns:
            return name
    if not required:
        return None
    names = wanted or " or ".join(defaults)
    raise WorkbenchError(f"{path}: no {what} column {names!r}; columns are {', '.join(columns)} "
                         f"(choose one with --{what}-column)")


def load_file(path: str | Path, text_column: str | None = None, label_column: str | None = None,
              value_column: str | None = None, entity_column: str | None = None,
              subject_column: str | None = None, name: str | None = None) -> ProbeDataset:
    """A CSV / JSONL file: a text column and a ``label`` (classification) or ``value`` (regression)
    column, optionally ``entity`` (split groups) and a subject column (for ``subject_last``)."""
    path = Path(path)
    rows = _read_rows(path)
    if not rows:
        raise WorkbenchError(f"dataset {path} is empty: it has no rows")
    text = _pick_column(rows, text_column, TEXT_COLUMNS, "text", path)
    label = None if value_column else _pick_column(rows, label_column, LABEL_COLUMNS, "label", path,
                                                   required=bool(label_column))
    value = None if label else _pick_column(rows, value_column, VALUE_COLUMNS, "value", path, required=False)
    if label is None and value is None:
        raise WorkbenchError(f"{path}: no label column ('label', for classes) or value column ('value', for "
                             f"regression); columns are {', '.join(rows[0])} (choose with --label-column or "
                             f"--value-column)")
    entity = _pick_column(rows, entity_column, ENTITY_COLUMNS, "entity", path, required=bool(entity_column))
    subject = _pick_column(rows, subject_column, (), "subject", path, required=bool(subject_column))
    fields = {}
    if subject:
        fields = dict(subjects=tuple(str(r[subject]) for r in rows), default_position="subject_last")
    if value:
        values = [_to_float(r[value], i, path) for i, r in enumerate(rows)]
        return make_dataset(name or path.stem, [r[text] for r in rows], values,
                            [r[entity] for r in rows] if entity else None, task="regression", classes=(value,),
                            **fields)
    return make_dataset(name or path.stem, [r[text] for r in rows], [_label_text(r[label]) for r in rows],
                        [r[entity] for r in rows] if entity else None, **fields)


def _to_float(raw, row: int, path) -> float:
    try:
        return float(raw) if raw not in ("", None) else math.nan
    except (TypeError, ValueError):
        raise WorkbenchError(f"{path}: row {row} has a value {raw!r} that is not a number") from None


def _label_text(raw) -> str:
    if isinstance(raw, bool):
        return str(int(raw))
    if isinstance(raw, float) and raw.is_integer():
        return str(int(raw))
    return str(raw)


# ---- built-in sets -----------------------------------------------------------------------------

def truth_set(name: str) -> ProbeDataset:
    """A Geometry-of-Truth statement set (label 1 true, 0 false), read at the last token."""
    path = DATA_DIR / "truth" / f"{name}.csv"
    rows = _read_rows(path)
    entity = _TRUTH_ENTITY.get(name)
    return make_dataset(name, [r["statement"] for r in rows], ["true" if r["label"] == "1" else "false" for r in rows],
                        [r[entity] for r in rows] if entity else None, classes=("false", "true"))


def world_places() -> ProbeDataset:
    """World places (Gurnee & Tegmark): name -> (latitude, longitude), fixed ``is_test`` split,
    read at the last token of the name."""
    rows = _read_rows(DATA_DIR / "places" / "world_place.csv")
    names = [r["name"] for r in rows]
    return make_dataset("world_places", names, [(float(r["latitude"]), float(r["longitude"])) for r in rows],
                        names, task="regression", classes=("latitude", "longitude"), subjects=tuple(names),
                        is_test=torch.tensor([r["is_test"] == "True" for r in rows]),
                        default_position="subject_last", coordinates=True)


def known_relations(relation: str | None = None, min_count: int = 5) -> ProbeDataset:
    """``known_1000`` prompts (the factworld copy). Without ``relation``: label = relation id;
    with one (``known_1000:P30``): label = the attribute. Classes with fewer than ``min_count``
    rows are dropped."""
    from workbench.factworld import kb as factworld_kb

    rows = json.loads((factworld_kb.DATA_DIR / "known_1000.json").read_text(encoding="utf-8"))
    key = "relation_id" if relation is None else "attribute"
    if relation is not None:
        rows = [r for r in rows if r["relation_id"] == relation]
        if not rows:
            raise WorkbenchError(f"known_1000 has no relation {relation!r}: use a Wikidata id such as P30")
    counts: dict[str, int] = {}
    for r in rows:
        counts[r[key]] = counts.get(r[key], 0) + 1
    rows = [r for r in rows if counts[r[key]] >= min_count]
    classes = sorted({r[key] for r in rows})
    name = "known_1000" if relation is None else f"known_1000:{relation}"
    if len(classes) < 2:
        raise WorkbenchError(f"{name}: fewer than two classes have {min_count} or more rows")
    return make_dataset(name, [r["prompt"] for r in rows], [r[key] for r in rows], [r["subject"] for r in rows],
                        classes=classes, subjects=tuple(r["subject"] for r in rows), default_position="subject_last",
                        answers=None if relation is None else tuple(" " + a for a in classes))


def _factworld(kind: str) -> Callable[[], ProbeDataset]:
    def build() -> ProbeDataset:
        from probes import factworld_sets

        return getattr(factworld_sets, kind)()
    return build


BUILTINS: dict[str, Callable[[], ProbeDataset]] = {name: (lambda n=name: truth_set(n)) for name in TRUTH_SETS}
BUILTINS |= {"world_places": world_places, "known_1000": known_relations,
             "factworld_country": _factworld("country_set"), "factworld_continent": _factworld("continent_set"),
             "factworld_truth": _factworld("truth_set")}


def load_dataset(spec: str, limit: int | None = None, seed: int = 0, **columns) -> ProbeDataset:
    """A built-in set by name (see :data:`BUILTINS`; ``known_1000:P17`` picks one relation) or a
    CSV/JSONL path; ``limit`` keeps a seeded random subset of whole entities (about ``limit`` rows).

    >>> load_dataset("world_places", limit=100).task
    'regression'
    """
    if spec in BUILTINS:
        dataset = BUILTINS[spec]()
    elif spec.startswith("known_1000:"):
        dataset = known_relations(spec.split(":", 1)[1])
    elif Path(spec).suffix.lower() in (".csv", ".jsonl", ".ndjson", ".json") or Path(spec).exists():
        dataset = load_file(spec, **columns)
    else:
        raise WorkbenchError(f"unknown dataset {spec!r}: use a built-in name ({', '.join(sorted(BUILTINS))}, "
                             f"known_1000:<relation>) or a CSV/JSONL path")
    if limit is not None and limit < len(dataset):
        dataset = limit_rows(dataset, limit, seed)
    return dataset


def limit_rows(dataset: ProbeDataset, limit: int, seed: int = 0) -> ProbeDataset:
    """A seeded subset of about ``limit`` rows made of whole entities (both sides of a fixed split kept)."""
    if limit < 2:
        raise WorkbenchError(f"limit {limit} is too small: keep at least two rows")
    keep, _ = grouped_split(dataset.entities, test_fraction=1 - limit / len(dataset), seed=seed)
    subset = dataset.subset(keep)
    if subset.task == "classification" and len(subset.labels.unique()) < 2:
        raise WorkbenchError(f"limit {limit} leaves a single class in {dataset.name!r}: raise the limit")
    return subset
