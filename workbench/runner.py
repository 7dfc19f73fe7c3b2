"""One runner for every dataset-scale job: shards, a run folder, an engine, a progress bar.

A :class:`Job` is a list of JSON-able items, a ``work(session, items, params)`` function that
turns one shard of items into a JSON-able partial result, and a ``merge(partials)`` function
(partials in shard order, so the merge is the same whichever engine ran them and in whatever
order they finished). :func:`run` splits the items into shards, skips those already in the run
folder, hands the rest to an engine (:class:`InProcess` by default; :mod:`workbench.ray_engine`
for Ray), writes each finished shard atomically as it arrives, and merges. ``work`` and
``merge`` must be module-level functions (Ray sends them to its workers by reference).

>>> job = Job("demo", items=tuple(range(10)), work=square_sum, merge=sum, shard_size=4)
>>> [len(s) for s in job.shards()]
[4, 4, 2]
>>> run(job, {"spec": "unused"}, engine=InProcess(session="no model needed")).result
285
"""
from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

from workbench.errors import WorkbenchError
from workbench.run_folder import RunFolder, digest

logger = logging.getLogger(__name__)


def square_sum(session, items: list, params: dict) -> int:  # noqa: ARG001 (the docstring example's work)
    return sum(i * i for i in items)


@dataclass(frozen=True)
class Job:
    """A sharded job (see the module docstring). ``params`` reach ``work`` and are part of the
    run folder's fingerprint, with the items and the shard size."""

    name: str
    items: Sequence
    work: Callable[[Any, list, dict], Any]
    merge: Callable[[list], Any]
    params: dict = field(default_factory=dict)
    shard_size: int = 8

    def __post_init__(self):
        if self.shard_size < 1:
            raise WorkbenchError("--shard-size must be at least 1")
        if not self.items:
            raise WorkbenchError(f"{self.name}: nothing to run (no items)")

    def shards(self) -> list[list]:
        items = list(self.items)
        return [items[i:i + self.shard_size] for i in range(0, len(items), self.shard_size)]

    def fingerprint_args(self, model: dict) -> dict:
        """What the run folder compares: parameters, model, shard size and a hash of the items."""
        return {"params": self.params, "model": model, "shard_size": self.shard_size,
                "n_items": len(self.items), "items_sha256": digest(list(self.items))}


@dataclass(frozen=True)
class RunOutcome:
    """The merged result and what the run cost (``per_item_s``: worker seconds per item)."""

    result: Any
    items: int
    shards: int
    skipped_shards: int
    wall_s: float
    worker_s: float
    workers: int
    engine: str
    computed_items: int  # items run now (not read back from the run folder)

    @property
    def per_item_s(self) -> float:
        return self.worker_s / self.computed_items if self.computed_items else float("nan")

    def to_dict(self) -> dict:
        return {"items": self.items, "shards": self.shards, "skipped_shards": self.skipped_shards,
                "wall_s": round(self.wall_s, 3), "worker_s": round(self.worker_s, 3), "workers": self.workers,
                "engine": self.engine, "per_item_s": round(self.per_item_s, 4)}

    def summary(self) -> str:
        return (f"{self.items} items in {self.shards} shards ({self.skipped_shards} already done), "
                f"{self.wall_s:.1f} s wall on {self.workers} {self.engine} worker(s); "
                f"{self.per_item_s:.3f} s per item per worker")


def estimate_s(per_item_s: float, items: int, workers: int) -> float:
    """Wall time to expect for ``items`` more items on ``workers`` workers (model loading not counted).

    >>> estimate_s(0.5, 1000, 4)
    125.0
    """
    return per_item_s * items / max(1, workers)


class InProcess:
    """Runs the shards one after another in this process, on one session (loaded once)."""

    name = "in-process"
    workers = 1

    def __init__(self, session=None):
        self.session = session

    def start(self, model: dict) -> None:
        if self.session is None:
            from workbench.session import load

            self.session = load(**model)

    def map(self, work, shards: dict[int, list], params: dict) -> Iterator[tuple[int, Any, float]]:
        for index, items in shards.items():
            t0 = time.perf_counter()
            result = work(self.session, items, params)
            yield index, result, time.perf_counter() - t0

    def close(self) -> None:
        pass


class _Progress:
    """A tqdm bar over items whose label counts shards (silent when stderr is not a terminal)."""

    def __init__(self, name: str, total_items: int, total_shards: int, done_items: int, done_shards: int):
        from tqdm import tqdm

        self.shards, self.total_shards, self.name = done_shards, total_shards, name
        self.bar = tqdm(total=total_items, initial=done_items, unit="item", file=sys.stderr, disable=None,
                        desc=self._label(), dynamic_ncols=True)

    def _label(self) -> str:
        return f"{self.name} [{self.shards}/{self.total_shards} shards]"

    def step(self, items: int) -> None:
        self.shards += 1
        self.bar.set_description_str(self._label(), refresh=False)
        self.bar.update(items)

    def close(self) -> None:
        self.bar.close()


def run(job: Job, model: dict, out=None, engine=None, on_shard: Callable[[int], None] | None = None) -> RunOutcome:
    """Run ``job`` on ``engine`` (default: in this process), loading the model ``model``
    (keyword arguments of :func:`workbench.session.load`) once per worker.

    With ``out`` (a folder), finished shards are written there and skipped on a rerun with the
    same arguments; the merged result is written to ``out/result.json``. ``on_shard(index)`` is
    called after each shard is stored (tests use it to inject faults).
    """
    engine = engine or InProcess()
    shards = job.shards()
    folder = RunFolder.open(out, job.name, job.fingerprint_args(model), len(shards)) if out else None
    partials: dict[int, Any] = {}
    worker_s = 0.0
    if folder is not None:
        for index in sorted(folder.finished()):
            partials[index] = folder.load_shard(index)["result"]
    skipped = len(partials)
    todo = {i: s for i, s in enumerate(shards) if i not in partials}
    t0 = time.perf_counter()
    bar = _Progress(job.name, len(job.items), len(shards), sum(len(shards[i]) for i in partials), skipped)
    try:
        if todo:
            engine.start(model)
            for index, result, seconds in engine.map(job.work, todo, job.params):
                result = json.loads(json.dumps(result))  # the same value whether it came from disk or not
                if folder is not None:
                    folder.save_shard(index, result, len(shards[index]), seconds)
                partials[index] = result
                worker_s += seconds
                bar.step(len(shards[index]))
                if on_shard is not None:
                    on_shard(index)
    finally:
        bar.close()
        engine.close()
    missing = [i for i in range(len(shards)) if i not in partials]
    if missing:
        raise WorkbenchError(f"{job.name}: shard {missing[0]} never finished ({len(missing)} missing)")
    merged = job.merge([partials[i] for i in range(len(shards))])
    if folder is not None:
        folder.save_result(merged)
    outcome = RunOutcome(merged, len(job.items), len(shards), skipped, time.perf_counter() - t0, worker_s,
                         engine.workers, engine.name, sum(len(shards[i]) for i in todo))
    logger.info("%s: %s", job.name, outcome.summary())
    return outcome
