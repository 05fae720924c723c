"""``pts run --ray``: queries searched by Ray actors, records written by the driver alone.

Each worker is a Ray actor holding one engine (HF on a CPU node, vLLM on a GPU
node) and a searcher; it searches one query per call, up to ``--parallel`` at
once with their rollouts merged as in a single process. The driver hands out
queries one at a time, so a slow query holds nothing else up, and writes every
finished one through the same locked store as a local run. Each query carries
its own seed (from the dataset and item id), so which worker searches it, and
with which others, never changes its records.

A worker that dies (killed, out of memory, its node lost) is replaced by a new
actor and its unfinished queries are sent out again; a query that has been on a
dying worker ``MAX_TRIES`` times is reported and left for a later run. A killed
driver takes its actors with it; rerunning the command resumes from the store.
"""

from __future__ import annotations

import logging
import math
import os
from collections import Counter, deque
from typing import Any, Callable

from pts.errors import PTSError, first_line

log = logging.getLogger(__name__)

MISSING_RAY = "--ray needs Ray, which is not installed: pip install 'pts[ray]'"
# Tries of one query on workers that died under it before it is skipped: a query that kills its worker
# (out of memory on a huge prompt, a crashing oracle) would otherwise take down every replacement in turn.
MAX_TRIES = 3
# Seconds a new worker may wait for Ray to place it (a cluster without the CPUs/GPUs --ray-num-* asks for
# would otherwise leave the run waiting forever, silently).
PLACEMENT_TIMEOUT = 300.0


def check_ray_options(config: Any) -> None:
    """Raise PTSError on bad ``--ray-*`` values, or when Ray is not installed."""
    if config.ray_workers < 1:
        raise PTSError(f"--ray-workers must be at least 1, got {config.ray_workers}")
    for name in ("ray_num_cpus", "ray_num_gpus"):
        value = getattr(config, name)
        if not math.isfinite(value) or value < 0:
            raise PTSError(f"--{name.replace('_', '-')} must be a number >= 0, got {value}")
    _import_ray()


def _import_ray():
    try:
        import ray
    except ImportError:
        raise PTSError(MISSING_RAY) from None
    return ray


def connect(address: str) -> bool:
    """Join the Ray cluster at ``address`` ("local" starts one on this machine); True when this call started
    the connection (and should end it). An existing connection of this process is reused."""
    ray = _import_ray()
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"address": address, "log_to_driver": False, "logging_level": logging.WARNING}
    if address == "local":
        kwargs["include_dashboard"] = False
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as e:
        first = first_line(e)
        raise PTSError(f"cannot reach the Ray cluster at {address!r}: {first}") from None
    return True


class SearchWorker:
    """One engine and searcher in a Ray actor; ``search`` runs one query (see :func:`pts.search.searcher.search_one`)."""

    def __init__(self, config: Any, engine: Any = None) -> None:
        from pts.engines.coalesce import CoalescingEngine
        from pts.engines import create_engine
        from pts.search.searcher import context_length
        from pts.search.searcher import PivotalTokenSearcher

        # An error here is kept for describe(): Ray reports a failed constructor only as text, a failed
        # method call with the exception itself (so a PTSError reaches the user as its one line).
        self.error: BaseException | None = None
        try:
            self.engine = engine if engine is not None else create_engine(
                config.engine, config.model, device=config.device, dtype=config.dtype, batch_size=config.batch_size)
        except Exception as e:
            self.error = e
            return
        self.context = context_length(self.engine)
        self.shared = CoalescingEngine(self.engine)
        self.searcher = PivotalTokenSearcher(self.shared, config.search_settings())

    def describe(self) -> dict[str, Any]:
        import ray

        if self.error is not None:
            raise self.error
        return {"model_id": self.engine.model_id, "context_length": self.context, "pid": os.getpid(),
                "node_id": ray.get_runtime_context().get_node_id()}

    def search(self, task: Any) -> Any:
        from pts.search.searcher import search_one

        self.shared.join()
        try:
            return search_one(self.searcher, task, self.context)
        finally:
            self.shared.leave()


class WorkerPool:
    """``config.ray_workers`` :class:`SearchWorker` actors on the Ray cluster named by ``config.ray``.

    ``engine``, when given, is copied to every worker instead of each loading
    ``config.model``. Creating the pool waits until every worker has its engine,
    so a model that cannot be loaded is reported before any file is opened.
    """

    def __init__(self, config: Any, engine: Any = None) -> None:
        self.ray = ray = _import_ray()
        self.config = config
        self.started = connect(config.ray)
        self._engine = ray.put(engine) if engine is not None else None
        self._actor_class = ray.remote(SearchWorker)
        self.workers: list[Any] = []
        self.replaced = 0
        try:
            self.workers = [self._new_worker() for _ in range(config.ray_workers)]
            info = [self._ready(w) for w in self.workers]
        except BaseException:
            self.close()
            raise
        self.model_id = info[0]["model_id"]
        self.context_length = info[0]["context_length"]
        self.nodes = {i["node_id"] for i in info}

    def _new_worker(self) -> Any:
        c = self.config
        return self._actor_class.options(
            num_cpus=c.ray_num_cpus, num_gpus=c.ray_num_gpus, max_concurrency=c.parallel,
            scheduling_strategy="SPREAD", max_restarts=0,
        ).remote(c, self._engine)

    def _ready(self, worker: Any) -> dict[str, Any]:
        try:
            return self.ray.get(worker.describe.remote(), timeout=PLACEMENT_TIMEOUT)
        except self.ray.exceptions.GetTimeoutError:
            c = self.config
            raise PTSError(f"no Ray worker started within {PLACEMENT_TIMEOUT:.0f} s: the cluster has no room for "
                           f"a worker with --ray-num-cpus {c.ray_num_cpus:g} --ray-num-gpus {c.ray_num_gpus:g} "
                           f"(see `ray status`)") from None
        except self.ray.exceptions.RayTaskError as e:
            raise _cause(e) from None
        except self.ray.exceptions.RayActorError as e:
            raise PTSError(f"a Ray worker could not start its engine: {first_line(e)}") from None

    def search(self, tasks: list[Any], record: Callable[[Any, Any], None], stop: Callable[[], bool],
               on_failure: Callable[[Any], None] | None = None) -> list[str]:
        """Search ``tasks`` on the workers, calling ``record(task, result)`` here as each finishes.

        Stops handing out queries once ``stop()`` is true. Returns the item ids of queries
        skipped after ``MAX_TRIES`` dead workers (each also passed to ``on_failure``).
        """
        ray = self.ray
        queue = deque(tasks)
        tries: Counter[str] = Counter()
        failed: list[str] = []
        running: dict[Any, tuple[Any, int, Any]] = {}  # call -> (task, worker slot, the actor called)
        load = [0] * len(self.workers)

        def fill() -> None:
            while queue and not stop():
                slot = min(range(len(self.workers)), key=lambda i: load[i])
                if load[slot] >= self.config.parallel:
                    return
                task, worker = queue.popleft(), self.workers[slot]
                running[worker.search.remote(task)] = (task, slot, worker)
                load[slot] += 1

        fill()
        while running:
            (call,), _ = ray.wait(list(running), num_returns=1)
            task, slot, worker = running.pop(call)
            load[slot] -= 1
            try:
                result = ray.get(call)
            except ray.exceptions.RayTaskError as e:
                raise _cause(e) from None
            except ray.exceptions.RayActorError as e:
                tries[task.item_id] += 1
                if self.workers[slot] is worker:  # the first of its calls to fail replaces it
                    self._replace(slot, e)
                if tries[task.item_id] >= MAX_TRIES:
                    log.warning("item %s: skipped after %d workers died searching it; a later run tries it again",
                                task.item_id, MAX_TRIES)
                    failed.append(task.item_id)
                    if on_failure is not None:
                        on_failure(task)
                else:
                    queue.appendleft(task)
            else:
                record(task, result)
            fill()
        return failed

    def _replace(self, slot: int, error: BaseException) -> None:
        log.warning("a Ray worker died (%s); starting a replacement", first_line(error))
        self.ray.kill(self.workers[slot], no_restart=True)
        self.workers[slot] = self._new_worker()
        self._ready(self.workers[slot])  # placed and loaded, or a one-line error after PLACEMENT_TIMEOUT
        self.replaced += 1

    def close(self) -> None:
        for w in self.workers:
            try:
                self.ray.kill(w, no_restart=True)
            except Exception:  # already gone with its node
                pass
        self.workers = []
        if self.started:
            self.ray.shutdown()
            self.started = False


def _cause(error: BaseException) -> BaseException:
    """The exception a worker raised, without Ray's wrapper (a PTSError stays one line)."""
    cause = getattr(error, "cause", None)
    return cause if isinstance(cause, BaseException) else error


