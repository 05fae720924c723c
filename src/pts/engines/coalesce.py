"""Merge the engine calls of several concurrent units of work into one call.

Each unit (a query being searched) runs in its own thread and calls ``sample``
as if it had the engine to itself. A call waits until every unit still
registered is waiting too; then all their requests go to the wrapped engine
together (one call per distinct sampling parameters) and each caller gets its
own results back. Calls are as large as the concurrency allows (many prefixes,
many queries), and since each request carries its own seed, which requests
share a call never changes a result on the fake engine or in float32.

Which requests share a call must not depend on thread timing either (in bf16
a decode depends on its batch): :class:`pts.work.LocalPool` registers and
releases units only at quiet points (:meth:`CoalescingEngine.wait_quiet`), so
the calls are the lockstep rounds of the units in flight, the same on every run.

With an engine that offers a running batch (``engine.running(params)``, the
optional :class:`pts.engines.base.ContinuousBatching`, as :class:`pts.engines.HFEngine`
does), the merging goes down to decode steps
(continuous batching): the requests go into a batch that stays alive, each unit
gets its rollouts back as soon as all of its requests are complete, and its next
requests join the batch while the others' rows are still decoding, so the rows
that finish early are replaced instead of leaving the last steps of a call to its
stragglers. The engine steps only while every registered unit is waiting for
rollouts, so requests join at the same decode step on every run: the quiet-point
rule, applied per step instead of per call.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pts.engines.base import ContinuousBatching, Engine, Rollout, RolloutRequest, SamplingParams


class Cancelled(Exception):
    """The run is stopping; raised in units still asking for rollouts."""


@dataclass
class _Waiting:
    requests: Sequence[RolloutRequest]
    params: SamplingParams
    results: list[list[Rollout]] | None = None
    error: BaseException | None = None
    done: bool = field(default=False)


class CoalescingEngine:
    """An :class:`Engine` shared by units of work in threads (``continuous``: batches kept running across
    calls where the engine can; see the module docstring).

    Register each unit with :meth:`join` before its thread starts (so the first
    call already waits for it), call :meth:`finish` when its thread is done and
    :meth:`leave` once its result has been taken; a finished unit that has not
    left holds every merged call back. An engine's ``next_token_logprobs``
    (Pass@k of ``pts critical``) is passed through, one call at a time.
    """

    def __init__(self, engine: Engine, continuous: bool = True) -> None:
        self.engine = engine
        # Continuous batching where the engine can keep a batch running; merged calls otherwise.
        self.continuous = continuous and isinstance(engine, ContinuousBatching)
        self._running: dict[SamplingParams, Any] = {}  # params -> the engine's running batch for them
        self._inflight: dict[tuple[SamplingParams, int], _Waiting] = {}  # submissions in a running batch
        self.steps = 0  # rounds of decode steps (continuous batching)
        self.model_id = engine.model_id
        self.tokenizer = engine.tokenizer
        self.eos_token_ids = engine.eos_token_ids
        self.context_length = getattr(engine, "context_length", None)
        self.calls = 0
        self._cond = threading.Condition()
        self._workers = 0
        self._finished = 0  # units that called finish() and have not left
        self._done: list[Any] = []  # their outcomes, until wait_quiet() hands them out
        self._waiting: list[_Waiting] = []
        self._cancelled = False
        self._distribution_lock = threading.Lock()  # one direct model call at a time, of either kind
        distribution = getattr(engine, "next_token_logprobs", None)
        if callable(distribution):
            self.next_token_logprobs = self._one_at_a_time(distribution)
        # Sampling probabilities (the search's exact steps and excluded first tokens) pass through too.
        self.excludes_first = getattr(engine, "excludes_first", False)
        sampling = getattr(engine, "next_token_distribution", None)
        if callable(sampling):
            self.next_token_distribution = self._one_at_a_time(sampling)

    def _one_at_a_time(self, distribution):
        """The wrapped engine's ``next_token_logprobs`` (or ``next_token_distribution``), one caller at a time.
        It never overlaps a merged ``sample`` call either: that runs only once every registered unit is waiting
        in ``sample``."""
        lock = self._distribution_lock

        def one_at_a_time(*args):
            with lock:
                return distribution(*args)

        return one_at_a_time

    def join(self) -> None:
        """Count one more unit that may call :meth:`sample`."""
        with self._cond:
            self._workers += 1

    def finish(self, outcome: Any = None) -> None:
        """A unit's thread is done (it will not call :meth:`sample` again) with ``outcome``; it still holds the
        merged calls back until it leaves."""
        with self._cond:
            self._finished += 1
            self._done.append(outcome)
            self._cond.notify_all()

    def wait_quiet(self) -> list[Any]:
        """Block until some unit has finished and every other is waiting in :meth:`sample`, and return the
        outcomes finished since the last call. Nothing runs then, so what the caller does next (results
        taken, units joining and leaving) does not depend on thread timing."""
        with self._cond:
            self._cond.wait_for(
                lambda: bool(self._done) and len(self._waiting) + len(self._inflight) + self._finished >= self._workers
            )
            done, self._done = self._done, []
            return done

    def leave(self, finished: bool = False) -> None:
        """A unit ended (``finished``: it called :meth:`finish`); the others no longer wait for it."""
        with self._cond:
            self._workers -= 1
            self._finished -= finished
            self._flush_if_all_waiting()

    def reset(self) -> None:
        """Ready for new units once every thread of the last ones has ended (after :meth:`cancel` too)."""
        with self._cond:
            self._workers = self._finished = 0
            self._done, self._waiting = [], []
            self._running, self._inflight = {}, {}
            self._cancelled = False

    def cancel(self) -> None:
        """Make every waiting and later :meth:`sample` call raise, so units unwind quickly."""
        with self._cond:
            self._cancelled = True
            for w in [*self._waiting, *self._inflight.values()]:
                w.error, w.done = Cancelled(), True
            self._waiting = []
            self._running, self._inflight = {}, {}
            self._cond.notify_all()

    def sample(self, requests: Sequence[RolloutRequest], params: SamplingParams) -> list[list[Rollout]]:
        me = _Waiting(requests, params)
        with self._cond:
            if self._cancelled:
                raise Cancelled()
            self._waiting.append(me)
            self._cond.notify_all()  # wait_quiet may be watching for the last unit to start waiting
            self._flush_if_all_waiting()
            while not me.done:
                self._cond.wait()
        if me.error is not None:
            raise me.error
        return me.results  # type: ignore[return-value]

    def _flush_if_all_waiting(self) -> None:
        """Run the merged calls (or decode steps) once no registered unit is still computing (lock held)."""
        if self.continuous:
            self._step_while_all_waiting()
            return
        if not self._waiting or len(self._waiting) < self._workers:
            return
        batch, self._waiting = self._waiting, []
        groups = _by_params(batch)
        try:
            for params, group in groups.items():
                results = self.engine.sample([r for w in group for r in w.requests], params)
                self.calls += 1
                start = 0
                for w in group:
                    w.results = results[start : start + len(w.requests)]
                    start += len(w.requests)
        except BaseException as e:  # every caller must wake up, KeyboardInterrupt included
            for w in batch:
                if w.results is None:
                    w.error = e
        for w in batch:
            w.done = True
        self._cond.notify_all()

    def _step_while_all_waiting(self) -> None:
        """Continuous batching (lock held): while every registered unit waits for rollouts, put the requests
        handed in since the last step into the running batches, step each batch once, and hand every
        submission completed by that step to its unit. Stops when a unit has its rollouts (it computes its
        next requests; the engine waits for them) or nothing is left to decode."""
        new: list[_Waiting] = []
        try:
            while (self._waiting or self._inflight) and len(self._waiting) + len(self._inflight) >= self._workers:
                if self._waiting:
                    new, self._waiting = self._waiting, []
                    for params, group in _by_params(new).items():
                        if params not in self._running:
                            self._running[params] = self.engine.running(params)  # type: ignore[attr-defined]
                        handles = self._running[params].add([w.requests for w in group])
                        self.calls += 1
                        self._inflight.update(((params, h), w) for h, w in zip(handles, group))
                    new = []
                completed = []
                for params, run in list(self._running.items()):
                    completed += [((params, h), results) for h, results in run.step()]
                    if not run.busy:
                        del self._running[params]
                self.steps += 1
                for key, results in completed:
                    w = self._inflight.pop(key)
                    w.results, w.done = results, True
                if completed:
                    self._cond.notify_all()
        except BaseException as e:  # every caller must wake up, KeyboardInterrupt included
            for w in [*new, *self._waiting, *self._inflight.values()]:
                w.error, w.done = e, True
            self._waiting, self._running, self._inflight = [], {}, {}
            self._cond.notify_all()


def _by_params(waiting: list[_Waiting]) -> dict[SamplingParams, list[_Waiting]]:
    """``waiting`` grouped by sampling parameters, each group in a fixed order: arrival order is thread timing,
    a fixed order keeps what the engine is given reproducible."""
    groups: dict[SamplingParams, list[_Waiting]] = {}
    for w in sorted(waiting, key=lambda w: ([r.prefix_ids for r in w.requests], [r.seed or 0 for r in w.requests])):
        groups.setdefault(w.params, []).append(w)
    return groups
