"""Run a :mod:`workbench.runner` job on Ray: long-lived actors that each load the model once.

``RayEngine()`` starts a local Ray with this machine's cores; ``RayEngine("auto")`` or
``RayEngine("ray://head:10001")`` joins an existing cluster (``ray start --head`` on the head
node). Each worker is an actor holding one session; shards go to idle workers and their results
come back to the driver, which writes the run folder. On a cluster with GPUs each worker takes
one GPU; on CPUs each takes ``threads`` cores and sets torch to that many threads, so workers ×
threads never exceeds the cores Ray offers. A worker that dies (killed, out of memory, node
lost) is replaced and its shard rerun, at most ``max_restarts`` times per job.

Ray is optional (``pip install -e .[cluster]``); this module imports it only when an engine is made.

    engine = RayEngine(workers=2)          # local Ray, 2 workers × 1 thread on a 2-core machine
    outcome = runner.run(job, {"spec": "factworld"}, engine=engine)
"""
from __future__ import annotations

import logging
import os
import socket
import time
from collections import deque
from typing import Any, Iterator

from workbench.errors import WorkbenchError

logger = logging.getLogger(__name__)
ADDRESS_ENV = "WORKBENCH_RAY_ADDRESS"
LOCAL = "local"


def import_ray():
    """The ``ray`` module, or a one-line error naming the extra that installs it."""
    try:
        import ray
    except ImportError:
        raise WorkbenchError("--ray needs Ray, which is not installed: pip install -e '.[cluster]' "
                             "(or pip install 'open-weights-workbench[cluster]')") from None
    return ray


def resolve_address(flag: str | None) -> str:
    """``--ray`` without a value: ``WORKBENCH_RAY_ADDRESS`` if set, else a local Ray (``"local"``).

    >>> resolve_address("ray://head:10001")
    'ray://head:10001'
    """
    if flag in (None, "", LOCAL):
        return os.environ.get(ADDRESS_ENV, "").strip() or LOCAL
    return flag


class ShardWorker:
    """The actor: loads the model once, then runs shards of any job on it."""

    def __init__(self, model: dict, threads: int | None):
        import torch

        if threads:
            torch.set_num_threads(threads)
        self.error = None
        self.session = None
        try:
            from workbench.session import load

            self.session = load(**model)
        except Exception as exc:  # reported by info(), so the driver can say which worker and why
            self.error = f"{type(exc).__name__}: {exc}"

    def info(self) -> dict:
        import torch

        return {"pid": os.getpid(), "host": socket.gethostname(), "error": self.error,
                "threads": torch.get_num_threads()}

    def run(self, work, items: list, params: dict) -> tuple[Any, float]:
        t0 = time.perf_counter()
        result = work(self.session, items, params)
        return result, time.perf_counter() - t0


class RayEngine:
    """The Ray engine for :func:`workbench.runner.run` (see the module docstring)."""

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None, threads: int | None = None,
                 max_restarts: int = 3):
        self.ray = import_ray()
        self.address = resolve_address(address)
        self.requested_workers, self.requested_threads = workers, threads
        self.max_restarts = max_restarts
        self.workers = workers or 1
        self._actors: list = []
        self._infos: dict = {}
        self._started_ray = False
        self.restarts = 0  # workers replaced during this engine's jobs

    # ---- cluster and workers ----
    def _init(self) -> None:
        ray = self.ray
        if ray.is_initialized():
            return
        kwargs = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
        try:
            if self.address == LOCAL:
                ray.init(num_cpus=os.cpu_count(), **kwargs)
            else:
                ray.init(address=self.address, **kwargs)
        except Exception as exc:
            raise WorkbenchError(f"could not start or join Ray at {self.address!r}: {type(exc).__name__}: {exc}") from None
        self._started_ray = True

    def _plan(self) -> tuple[int, int, int]:
        """(workers, CPUs per worker, GPUs per worker) from the cluster's resources."""
        resources = self.ray.cluster_resources()
        cpus, gpus = int(resources.get("CPU", 1)), int(resources.get("GPU", 0))
        if gpus:
            return self.requested_workers or gpus, 1, 1
        workers = self.requested_workers or max(1, cpus // (self.requested_threads or 1))
        threads = self.requested_threads or max(1, cpus // workers)
        if workers * threads > cpus:
            raise WorkbenchError(f"{workers} workers × {threads} threads need {workers * threads} CPUs; "
                                 f"the Ray cluster has {cpus}: use fewer --workers")
        return workers, threads, 0

    def _spawn(self, model: dict):
        workers, threads, gpus = self._plan()
        actor = self.ray.remote(ShardWorker).options(num_cpus=threads, num_gpus=gpus, max_restarts=0).remote(
            model, None if gpus else threads)
        return actor

    def _check(self, actors: list, model: dict) -> None:
        infos = self.ray.get([a.info.remote() for a in actors])
        for actor, info in zip(actors, infos):
            if info["error"]:
                raise WorkbenchError(f"a Ray worker on {info['host']} cannot load the model {model.get('spec')!r} "
                                     f"({info['error']}); give a hub id, factworld, or a path that exists on every "
                                     "worker")
            self._infos[actor] = info

    def start(self, model: dict) -> None:
        self._init()
        self.model = model
        self.workers = self._plan()[0]
        self._actors = [self._spawn(model) for _ in range(self.workers)]
        self._check(self._actors, model)

    def pids(self) -> list[int]:
        """Process ids of the live workers (tests kill one to check recovery)."""
        return [self._infos[a]["pid"] for a in self._actors if a in self._infos]

    # ---- the shard loop ----
    def map(self, work, shards: dict[int, list], params: dict) -> Iterator[tuple[int, Any, float]]:
        ray = self.ray
        pending = deque(shards.items())
        idle = list(self._actors)
        inflight: dict = {}
        restarts = 0
        while pending or inflight:
            while idle and pending:
                actor = idle.pop()
                index, items = pending.popleft()
                inflight[actor.run.remote(work, items, params)] = (actor, index, items)
            ready, _ = ray.wait(list(inflight), num_returns=1)
            actor, index, items = inflight.pop(ready[0])
            try:
                result, seconds = ray.get(ready[0])
            except ray.exceptions.RayActorError as exc:  # the worker died: replace it, rerun its shard
                restarts += 1
                self.restarts += 1
                if restarts > self.max_restarts:
                    raise WorkbenchError(f"Ray workers died {restarts} times ({type(exc).__name__}); giving up. "
                                         "Finished shards are kept in --out: rerun to continue") from None
                logger.warning("Ray worker died on shard %d (%s); starting a new one", index, type(exc).__name__)
                self._actors.remove(actor)
                self._infos.pop(actor, None)
                replacement = self._spawn(self.model)
                self._check([replacement], self.model)
                self._actors.append(replacement)
                idle.append(replacement)
                pending.appendleft((index, items))
                continue
            except ray.exceptions.RayTaskError as exc:
                cause = getattr(exc, "cause", None)
                if isinstance(cause, WorkbenchError):
                    raise WorkbenchError(str(cause)) from None
                raise WorkbenchError(f"shard {index} failed on a Ray worker: {type(cause).__name__}: {cause}") from None
            idle.append(actor)
            yield index, result, seconds

    def close(self) -> None:
        for actor in self._actors:
            self.ray.kill(actor)
        self._actors, self._infos = [], {}
        if self._started_ray:
            self.ray.shutdown()
            self._started_ray = False
