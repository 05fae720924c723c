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
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pts.engines.base import Engine, Rollout, RolloutRequest, SamplingParams


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
    """An :class:`Engine` shared by units of work in threads.

    Register each unit with :meth:`join` before its thread starts (so the first
    call already waits for it), call :meth:`finish` when its thread is done and
    :meth:`leave` once its result has been taken; a finished unit that has not
    left holds every merged call back. An engine's ``next_token_logprobs``
    (Pass@k of ``pts critical``) is passed through, one call at a time.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
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
            self._cond.wait_for(lambda: bool(self._done) and len(self._waiting) + self._finished >= self._workers)
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
            self._cancelled = False

    def cancel(self) -> None:
        """Make every waiting and later :meth:`sample` call raise, so units unwind quickly."""
        with self._cond:
            self._cancelled = True
            for w in self._waiting:
                w.error, w.done = Cancelled(), True
            self._waiting = []
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
        """Run the merged calls once no registered unit is still computing (lock held)."""
        if not self._waiting or len(self._waiting) < self._workers:
            return
        batch, self._waiting = self._waiting, []
        # Arrival order is thread timing; a fixed order keeps the merged call reproducible.
        batch.sort(key=lambda w: [r.prefix_ids for r in w.requests])
        groups: dict[SamplingParams, list[_Waiting]] = {}
        for w in batch:
            groups.setdefault(w.params, []).append(w)
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
