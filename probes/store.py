"""Activations of a dataset, cached on disk so that a sweep re-run costs no forward pass.

Key: (weights hash, hash of the dataset's texts and subjects, position, site), so relabelling
the same rows costs no forward pass either. Each site is one ``.npy`` file written batch by
batch into a memory map (memory stays bounded for large sets) and renamed into place when
complete, so a reader never sees a half-written file. The cache lives in
``$WORKBENCH_CACHE/activations`` (default ``~/.cache/open-weights-workbench/activations``).

>>> import workbench
>>> from probes.datasets import load_dataset
>>> s, cities = workbench.load("factworld"), load_dataset("cities", limit=60)
>>> acts = layer_activations(s, cities, layers=[0, 5])   # read from the cache the second time
>>> acts.shape == (2, len(cities), s.info.d_model)
True
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from workbench import sites as site_names
from workbench.activations import batches, collect
from workbench.errors import WorkbenchError, check_layer
from workbench.io import write_json
from workbench.tokens import ONE_VECTOR, Position, check_position

from probes.dataset import ProbeDataset

log = logging.getLogger(__name__)
CHUNK_BATCHES = 8  # batches per collect() call: one pass writes this many batches to every site


def cache_root() -> Path:
    """``$WORKBENCH_CACHE/activations`` or ``$XDG_CACHE_HOME/open-weights-workbench/activations``."""
    root = os.environ.get("WORKBENCH_CACHE") or \
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "open-weights-workbench"
    return Path(root) / "activations"


def check_context(session, dataset: ProbeDataset) -> None:
    """A one-line error naming the first row longer than the model's context."""
    n_ctx = session.info.n_ctx
    lengths = [len(ids) for ids in session.tokenizer(list(dataset.texts))["input_ids"]]
    too_long = [i for i, n in enumerate(lengths) if n > n_ctx]
    if too_long:
        i = too_long[0]
        raise WorkbenchError(f"dataset {dataset.name!r}: row {i} is {lengths[i]} tokens long, longer than the "
                             f"model's context of {n_ctx} tokens ({len(too_long)} such rows); shorten or drop them")


def resolve_position(dataset: ProbeDataset, position: Position | None) -> Position:
    position = position or dataset.default_position
    if position == "subject_last" and dataset.subjects is None:
        raise WorkbenchError(f"dataset {dataset.name!r} has no subject column: use --position last "
                             f"(or give --subject-column)")
    return check_position(position, ONE_VECTOR, "probes")


class ActivationStore:
    """Cached activations of one (session weights, dataset, position).

    >>> import workbench
    >>> from probes.datasets import load_dataset
    >>> store = ActivationStore(workbench.load("factworld"), load_dataset("cities", limit=60))
    >>> x = store.layers([0, 2, 5])        # (3, n, d_model) float32, memory-mapped from disk
    >>> x.shape[0], x.dtype
    (3, torch.float32)
    """

    def __init__(self, session, dataset: ProbeDataset, position: Position | None = None, kind: str = "resid_post",
                 cache_dir: str | Path | None = None, use_cache: bool = True, batch_size: int = 32,
                 progress: bool | None = None):
        self.session, self.dataset, self.kind = session, dataset, kind
        self.position = resolve_position(dataset, position)
        self.batch_size, self.progress, self.use_cache = batch_size, progress, use_cache
        self._weights_hash: str | None = None
        self._memory: dict[str, Tensor] = {}
        self._root = Path(cache_dir) if cache_dir else cache_root()

    @property
    def directory(self) -> Path:
        if self._weights_hash is None:
            self._weights_hash = self.session.weights_hash()
        key = f"{self._weights_hash}|{self.dataset.input_hash}|{self.position}"
        key = hashlib.sha256(key.encode()).hexdigest()[:24]
        return self._root / key

    def _path(self, site: str) -> Path:
        return self.directory / f"{site}.npy"

    def layers(self, layers: Sequence[int]) -> Float[Tensor, "layers n d_model"]:
        """Activations at ``kind`` of each layer, computing only the sites not cached yet."""
        names = [site_names.site(self.kind, check_layer(int(l), self.session.n_layers)) for l in layers]
        missing = [n for n in names if n not in self._memory and not (self.use_cache and self._path(n).exists())]
        if missing:
            self._compute(missing)
        out = torch.empty(len(names), len(self.dataset), self.session.info.d_model)  # (layers, n, d)
        for i, name in enumerate(names):
            out[i] = self._memory[name] if name in self._memory else \
                torch.from_numpy(np.load(self._path(name), mmap_mode="c"))
        return out

    def _compute(self, names: list[str]) -> None:
        check_context(self.session, self.dataset)
        n, d = len(self.dataset), self.session.info.d_model
        log.info("collecting %s activations of %d rows at %d sites (%s)", self.dataset.name, n, len(names),
                 self.position)
        if not self.use_cache:
            values = collect(self.session, self.dataset.texts, names, self.position, self.dataset.subjects,
                             self.batch_size, self.progress)
            self._memory |= {name: values[name] for name in names}
            return
        directory = self.directory
        directory.mkdir(parents=True, exist_ok=True)
        tmp = {name: directory / f".{name}.{os.getpid()}.tmp.npy" for name in names}
        maps = {name: np.lib.format.open_memmap(tmp[name], mode="w+", dtype=np.float32, shape=(n, d))
                for name in names}
        try:
            chunk = self.batch_size * CHUNK_BATCHES
            for rows in batches(n, chunk, self.progress, desc=f"activations {self.dataset.name}"):
                subjects = None if self.dataset.subjects is None else self.dataset.subjects[rows]
                values = collect(self.session, self.dataset.texts[rows], names, self.position, subjects,
                                 self.batch_size, progress=False)
                for name in names:
                    maps[name][rows] = values[name].numpy()
            for name in names:
                maps[name].flush()
                del maps[name]
                os.replace(tmp[name], self._path(name))
            write_json(directory / "meta.json", {"dataset": self.dataset.name, "input_hash": self.dataset.input_hash,
                                                 "weights_hash": self._weights_hash, "position": self.position,
                                                 "rows": n, "d_model": d, "model": self.session.name})
        finally:
            for path in tmp.values():
                path.unlink(missing_ok=True)


def layer_activations(session, dataset: ProbeDataset, layers: Sequence[int], position: Position | None = None,
                      **options) -> Float[Tensor, "layers n d_model"]:
    """Residual-stream activations of ``dataset`` after each of ``layers`` (cached on disk)."""
    return ActivationStore(session, dataset, position, **options).layers(layers)


def clear_cache(cache_dir: str | Path | None = None) -> int:
    """Remove every cached activation file; returns how many were removed."""
    root = Path(cache_dir) if cache_dir else cache_root()
    removed = 0
    for path in root.glob("*/*.npy"):
        path.unlink()
        removed += 1
    return removed


def describe_cache(cache_dir: str | Path | None = None) -> list[dict]:
    """What is cached: one entry per (weights, dataset, position) with its sites."""
    root = Path(cache_dir) if cache_dir else cache_root()
    out = []
    for meta in sorted(root.glob("*/meta.json")):
        info = json.loads(meta.read_text())
        info["sites"] = sorted(p.stem for p in meta.parent.glob("*.npy") if not p.name.startswith("."))
        out.append(info)
    return out
