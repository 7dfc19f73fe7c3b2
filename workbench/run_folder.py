"""The run folder of a sharded job: its arguments, one file per finished shard, the merged result.

Layout of ``RUN_DIR``::

    run.json             the job's name, arguments and their fingerprint, shard count
    shards/00007.json    one finished shard: {"shard", "items", "seconds", "result"}, written atomically
    result.json          the merged result, written at the end

A rerun with the same arguments finds the finished shards and skips them; a folder made with
other arguments is refused (one line naming the first differing argument), so two runs never mix.

>>> import tempfile
>>> folder = RunFolder.open(tempfile.mkdtemp() + "/run", "demo", {"n": 4}, n_shards=2)
>>> folder.save_shard(1, {"sum": 3.0}, items=2, seconds=0.5)
>>> sorted(folder.finished()), folder.load_shard(1)["result"]
([1], {'sum': 3.0})
>>> RunFolder.open(folder.path, "demo", {"n": 5}, n_shards=2)
Traceback (most recent call last):
...
workbench.errors.WorkbenchError: ... was made with other arguments (n: 4 there, 5 now); use another --out or remove it
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.io import write_json

FORMAT = 1


def fingerprint(job: str, args: dict) -> str:
    """SHA-256 of the job name and its arguments in canonical JSON (sorted keys)."""
    text = json.dumps({"job": job, "args": args, "format": FORMAT}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def digest(value) -> str:
    """A short SHA-256 (16 hex digits) of ``value`` in canonical JSON: what a run folder records of
    inputs too large to keep whole in ``run.json`` (the items, the requests).

    >>> digest([1, {"b": 2, "a": 1}]) == digest([1, {"a": 1, "b": 2}])
    True
    """
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:16]


def _first_difference(old: dict, new: dict) -> str:
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            a, b = (json.dumps(x, default=str) for x in (old.get(key), new.get(key)))
            short = (lambda s: s if len(s) <= 40 else s[:37] + "...")
            return f"{key}: {short(a)} there, {short(b)} now"
    return "format"


@dataclass(frozen=True)
class RunFolder:
    """A job's folder on disk (see the module docstring); create it with :meth:`open`."""

    path: Path
    job: str
    n_shards: int

    @classmethod
    def open(cls, path, job: str, args: dict, n_shards: int) -> "RunFolder":
        """Create ``path`` for this job, or reopen it when it holds the same job with the same ``args``."""
        path = Path(path)
        meta = {"job": job, "fingerprint": fingerprint(job, args), "n_shards": n_shards, "args": args,
                "format": FORMAT}
        run_file = path / "run.json"
        if run_file.exists():
            try:
                old = json.loads(run_file.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                raise WorkbenchError(f"{path} has an unreadable run.json; use another --out or remove it") from None
            if old.get("job") != job:
                raise WorkbenchError(f"{path} holds a {old.get('job')!r} run, not {job!r}; use another --out")
            if old.get("fingerprint") != meta["fingerprint"] or old.get("n_shards") != n_shards:
                raise WorkbenchError(f"{path} was made with other arguments ({_first_difference(old.get('args', {}), args)}); "
                                     "use another --out or remove it")
        elif path.exists() and any(path.iterdir()):
            raise WorkbenchError(f"{path} exists and is not a run folder (no run.json); use an empty or new --out")
        else:
            write_json(run_file, meta)
        (path / "shards").mkdir(parents=True, exist_ok=True)
        return cls(path, job, n_shards)

    def shard_path(self, index: int) -> Path:
        return self.path / "shards" / f"{index:05d}.json"

    def finished(self) -> set[int]:
        """Indices of the shards whose files are complete (a torn write never gets here: saves are atomic)."""
        done = set()
        for p in (self.path / "shards").glob("[0-9]*.json"):
            index = int(p.stem)
            if index < self.n_shards:
                done.add(index)
        return done

    def save_shard(self, index: int, result, items: int, seconds: float) -> None:
        write_json(self.shard_path(index), {"shard": index, "items": items, "seconds": seconds, "result": result})

    def load_shard(self, index: int) -> dict:
        return json.loads(self.shard_path(index).read_text(encoding="utf-8"))

    def save_result(self, result: dict) -> Path:
        write_json(self.path / "result.json", result)
        return self.path / "result.json"
