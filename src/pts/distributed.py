"""``--ray``: units of work done by Ray actors, every record written by the driver alone.

``pts run``, ``pts critical``, ``pts eval`` and the sampling phase of ``pts
contrast`` share one :class:`WorkerPool`. Each worker is a Ray actor holding one
engine (HF on a CPU node, vLLM on a GPU node) and what a command builds on it
(a searcher, a critical-token analyser); a :class:`Work` says how a worker loads
its engine, what it builds on it and which function does one unit of work. The
units: one query for ``pts run`` and ``pts critical`` (up to ``--parallel`` at
once per worker, their engine calls merged as in a single process), one batch
of queries (the queries a local run sends in one engine call) for ``pts eval``
and contrast sampling. The driver hands out units one at a time, so a slow one
holds nothing else up, and the command writes every result through the same
store as a local run. Each query carries its own seed (from the dataset and
item id), so which worker does it, and with which others, never changes its
records.

A worker that dies (killed, out of memory, its node lost) is replaced by a new
actor and its unfinished units are sent out again; a unit that has been on a
dying worker ``MAX_TRIES`` times is reported and skipped. A killed driver takes
its actors with it; rerunning a resumable command resumes from its store.
"""

from __future__ import annotations

import logging
import math
import os
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from pts import options
from pts.errors import PTSError, first_line
from pts.options import RayOptions
from pts.work import Work, engine_counters

log = logging.getLogger(__name__)

MISSING_RAY = "--ray needs Ray, which is not installed: pip install 'pts[ray]'"
# Tries of one query on workers that died under it before it is skipped: a query that kills its worker
# (out of memory on a huge prompt, a crashing oracle) would otherwise take down every replacement in turn.
MAX_TRIES = 3
# Seconds a new worker may wait for Ray to place it (a cluster without the CPUs/GPUs --ray-num-* asks for
# would otherwise leave the run waiting forever, silently).
PLACEMENT_TIMEOUT = 300.0
# Seconds the progress display waits for the workers' counts before skipping a refresh.
COUNTERS_TIMEOUT = 2.0


def check_ray_options(ray: RayOptions) -> None:
    """Raise PTSError on bad ``--ray-*`` values, or when ``--ray`` is given and Ray is not installed; without
    ``--ray`` nothing is checked or imported."""
    if ray.ray is None:
        return
    if ray.ray_workers < 1:
        raise PTSError(f"--ray-workers must be at least 1, got {ray.ray_workers}")
    for name in ("ray_num_cpus", "ray_num_gpus"):
        value = getattr(ray, name)
        if not math.isfinite(value) or value < 0:
            raise PTSError(f"{options.flag(name)} must be a number >= 0, got {value}")
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
    # Ray's own notices at start (e.g. that token authentication is on) are not the user's business here;
    # a failure still reaches them as an exception.
    kwargs: dict[str, Any] = {"address": address, "log_to_driver": False, "logging_level": logging.ERROR}
    if address == "local":
        kwargs["include_dashboard"] = False
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as e:
        first = first_line(e)
        raise PTSError(f"cannot reach the Ray cluster at {address!r}: {first}") from None
    return True


@contextmanager
def session(address: str) -> Iterator[None]:
    """Connected to the Ray cluster at ``address`` for the block (see :func:`connect`); the pools made inside
    share the connection, which ends with the block when this call started it."""
    started = connect(address)
    try:
        yield
    finally:
        if started:
            _import_ray().shutdown()


class Worker:
    """One engine and what a :class:`~pts.work.Work` builds on it, in a Ray actor; ``run`` does one unit.

    With ``work.merge`` the units running at once (Ray calls ``run`` from up to ``work.concurrency`` threads)
    share a :class:`~pts.engines.coalesce.CoalescingEngine`, as on a :class:`~pts.work.LocalPool`; which units
    are in flight together is timing here, which each query's own seed makes harmless (bf16 aside).
    """

    def __init__(self, work: Work, engine: Any = None) -> None:
        # An error here is kept for describe(): Ray reports a failed constructor only as text, a failed
        # method call with the exception itself (so a PTSError reaches the user as its one line).
        self.error: BaseException | None = None
        self.call = work.call
        self.shared = None
        try:
            self.engine = engine if engine is not None else work.load()
            if work.merge:
                from pts.engines.coalesce import CoalescingEngine

                self.shared = CoalescingEngine(self.engine)
            self.state = work.setup(self.shared or self.engine)
        except Exception as e:
            self.error = e

    def describe(self) -> dict[str, Any]:
        import ray

        from pts.search.searcher import context_length

        if self.error is not None:
            raise self.error
        return {
            "model_id": self.engine.model_id,
            "context_length": context_length(self.engine),
            "batch_size": getattr(self.engine, "batch_size", None),
            "next_token_logprobs": callable(getattr(self.engine, "next_token_logprobs", None)),
            "pid": os.getpid(),
            "node_id": ray.get_runtime_context().get_node_id(),
        }

    def counters(self) -> tuple[int, int] | None:
        return engine_counters(self.engine)

    def ask(self, question: Callable[..., Any], *args: Any) -> Any:
        return question(self.state, *args)

    def run(self, unit: Any) -> Any:
        if self.shared is None:
            return self.call(self.state, unit)
        self.shared.join()
        try:
            return self.call(self.state, unit)
        finally:
            self.shared.leave()


class WorkerPool:
    """``ray.ray_workers`` :class:`Worker` actors doing ``work`` on the Ray cluster at ``ray.ray``, each
    reserving ``ray.ray_num_cpus`` CPUs and ``ray.ray_num_gpus`` GPUs.

    ``engine``, when given, is copied to every worker instead of each loading
    its own. Creating the pool waits until every worker has its engine, so a
    model that cannot be loaded is reported before any file is opened.
    """

    def __init__(self, ray: RayOptions, work: Work, engine: Any = None) -> None:
        self.options = ray
        self.ray = module = _import_ray()
        self.work = work
        self.started = connect(ray.ray or "local")
        self._engine = module.put(engine) if engine is not None else None
        self._actor_class = module.remote(Worker)
        self.workers: list[Any] = []
        self.replaced = 0
        try:
            self.workers = [self._new_worker() for _ in range(ray.ray_workers)]
            info = [self._ready(w) for w in self.workers]
        except BaseException:
            self.close()
            raise
        self.model_id = info[0]["model_id"]
        self.context_length = info[0]["context_length"]
        self.batch_size = info[0]["batch_size"]
        self.next_token_logprobs = info[0]["next_token_logprobs"]
        self.nodes = {i["node_id"] for i in info}

    def _new_worker(self) -> Any:
        c, w = self.options, self.work
        return self._actor_class.options(
            # one slot more than the units, so that a progress poll never waits behind them
            num_cpus=c.ray_num_cpus,
            num_gpus=c.ray_num_gpus,
            max_concurrency=w.concurrency + 1,
            scheduling_strategy="SPREAD",
            max_restarts=0,
        ).remote(w, self._engine)

    def _ready(self, worker: Any) -> dict[str, Any]:
        try:
            return self.ray.get(worker.describe.remote(), timeout=PLACEMENT_TIMEOUT)
        except self.ray.exceptions.GetTimeoutError:
            c = self.options
            raise PTSError(
                f"no Ray worker started within {PLACEMENT_TIMEOUT:.0f} s: the cluster has no room for "
                f"a worker with --ray-num-cpus {c.ray_num_cpus:g} --ray-num-gpus {c.ray_num_gpus:g} "
                f"(see `ray status`)"
            ) from None
        except self.ray.exceptions.RayTaskError as e:
            raise _cause(e) from None
        except self.ray.exceptions.RayActorError as e:
            raise PTSError(f"a Ray worker could not start its engine: {first_line(e)}") from None

    def map(
        self,
        units: Iterable[Any],
        record: Callable[[Any, Any], Iterable[Any] | None],
        stop: Callable[[], bool] = lambda: False,
        on_failure: Callable[[Any], Iterable[Any] | None] | None = None,
    ) -> list[Any]:
        """Do ``units`` on the workers, calling ``record(unit, result)`` here as each finishes.

        Stops handing out units once ``stop()`` is true. ``record`` and ``on_failure`` may return more units
        (a query to analyse again with other limits); those go out first, even once ``stop()`` is true.
        Returns the units skipped after ``MAX_TRIES`` dead workers (each also passed to ``on_failure``).
        """
        ray = self.ray
        queue = deque(units)
        urgent: deque[Any] = deque()
        tries: Counter[str] = Counter()
        failed: list[Any] = []
        running: dict[Any, tuple[Any, int, Any, bool]] = {}  # call -> (unit, worker slot, the actor called, urgent)
        load = [0] * len(self.workers)

        def fill() -> None:
            while urgent or (queue and not stop()):
                slot = min(range(len(self.workers)), key=lambda i: load[i])
                if load[slot] >= self.work.concurrency:
                    return
                first = bool(urgent)
                unit, worker = (urgent if first else queue).popleft(), self.workers[slot]
                running[worker.run.remote(unit)] = (unit, slot, worker, first)
                load[slot] += 1

        fill()
        while running:
            (call,), _ = ray.wait(list(running), num_returns=1)
            unit, slot, worker, first = running.pop(call)
            load[slot] -= 1
            try:
                result = ray.get(call)
            except ray.exceptions.RayTaskError as e:
                raise _cause(e) from None
            except ray.exceptions.RayActorError as e:
                name = self.work.key(unit)
                tries[name] += 1
                if self.workers[slot] is worker:  # the first of its calls to fail replaces it
                    self._replace(slot, e)
                if tries[name] >= MAX_TRIES:
                    log.warning("%s: skipped after %d Ray workers died on it", name, MAX_TRIES)
                    failed.append(unit)
                    if on_failure is not None:
                        urgent.extend(on_failure(unit) or ())
                else:
                    (urgent if first else queue).appendleft(unit)
            else:
                urgent.extend(record(unit, result) or ())
            fill()
        return failed

    def ask(self, question: Callable[..., Any], *args: Any) -> Any:
        """``question(state, *args)`` on the first worker's state (see :meth:`pts.work.LocalPool.ask`); its
        PTSError comes back as one line."""
        try:
            return self.ray.get(self.workers[0].ask.remote(question, *args))
        except self.ray.exceptions.RayTaskError as e:
            raise _cause(e) from None

    def counters(self) -> tuple[int, int] | None:
        """Rollouts and tokens every worker's engine has finished so far (a replaced worker's are lost), for a
        live progress display; None when the engines do not count them or the workers do not answer at once."""
        try:
            counts = self.ray.get([w.counters.remote() for w in self.workers], timeout=COUNTERS_TIMEOUT)
        except Exception:  # a worker dying or busy: the display waits for the next poll
            return None
        known = [c for c in counts if c is not None]
        return (sum(c[0] for c in known), sum(c[1] for c in known)) if known else None

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
