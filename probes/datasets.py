"""Probe datasets: texts with a class label or a continuous value, an entity per row, seeded splits.

Each loader returns a :class:`~probes.dataset.ProbeDataset` (the value, its validation and its
splits live in :mod:`probes.dataset`). Built-in sets (see :data:`BUILTINS`) come from ``probes/data`` (Geometry of Truth
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
import io
import json
import logging
import math
from pathlib import Path
from typing import Callable, Sequence

import torch

from workbench.errors import WorkbenchError

from probes import factworld_sets
from probes.dataset import ProbeDataset, grouped_split, limit_rows, make_dataset

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


# ---- files -------------------------------------------------------------------------------------

def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise WorkbenchError(f"dataset file {path} is not UTF-8 text (byte {exc.start} is not UTF-8); "
                             "save it as UTF-8") from None


def _read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        raise WorkbenchError(f"dataset file {path} does not exist; give a built-in name "
                             f"({', '.join(sorted(BUILTINS))}) or a CSV/JSONL path")
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        rows = []
        for number, line in enumerate(_read_text(path).splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise WorkbenchError(f"{path}: line {number} is not valid JSON ({exc.msg})") from None
    elif path.suffix.lower() == ".json":
        try:
            rows = json.loads(_read_text(path))
        except json.JSONDecodeError as exc:
            raise WorkbenchError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(rows, list):
            raise WorkbenchError(f"{path}: a JSON dataset must be a list of objects")
    else:
        try:  # csv's field limit (128 KB) stays: a longer field is a malformed file, not a sentence
            rows = list(csv.DictReader(io.StringIO(_read_text(path), newline="")))
        except csv.Error as exc:
            raise WorkbenchError(f"{path} is not a readable CSV file ({exc})") from None
    if any(not isinstance(row, dict) for row in rows):
        raise WorkbenchError(f"{path}: every row must be an object with named columns")
    return rows


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


BUILTINS: dict[str, Callable[[], ProbeDataset]] = {name: (lambda n=name: truth_set(n)) for name in TRUTH_SETS}
BUILTINS |= {"world_places": world_places, "known_1000": known_relations,
             "factworld_country": factworld_sets.country_set, "factworld_continent": factworld_sets.continent_set,
             "factworld_truth": factworld_sets.truth_set}


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
