"""Merge the engine calls of several concurrent searches into one call.

Each search runs in its own thread and calls ``sample`` as if it had the engine
to itself. A call waits until every search still running is waiting too; then
all their requests go to the wrapped engine as one call and each caller gets
its own results back. Calls are as large as the concurrency allows (many
prefixes, many queries), and since each request carries its own seed, which
requests share a call never changes a result.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Sequence

from pts.engines.base import Engine, Rollout, RolloutRequest, SamplingParams


class Cancelled(Exception):
    """The run is stopping; raised in searches still asking for rollouts."""


@dataclass
class _Waiting:
    requests: Sequence[RolloutRequest]
    params: SamplingParams
    results: list[list[Rollout]] | None = None
    error: BaseException | None = None
    done: bool = field(default=False)


class CoalescingEngine:
    """An :class:`Engine` shared by searches in threads.

    Register each search with :meth:`join` before its thread starts (so the first
    call already waits for it) and call :meth:`leave` once it has ended. An
    engine's ``next_token_logprobs`` (Pass@k of ``pts critical``) is passed
    through, one call at a time.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.model_id = engine.model_id
        self.tokenizer = engine.tokenizer
        self.eos_token_ids = engine.eos_token_ids
        self.calls = 0
        self._cond = threading.Condition()
        self._workers = 0
        self._waiting: list[_Waiting] = []
        self._cancelled = False
        distribution = getattr(engine, "next_token_logprobs", None)
        if callable(distribution):
            self.next_token_logprobs = self._one_at_a_time(distribution)

    def _one_at_a_time(self, distribution):
        """The wrapped engine's ``next_token_logprobs``, one caller at a time. It never overlaps a merged
        ``sample`` call either: that runs only once every registered search is waiting in ``sample``."""
        lock = threading.Lock()

        def next_token_logprobs(prefixes):
            with lock:
                return distribution(prefixes)

        return next_token_logprobs

    def join(self) -> None:
        """Count one more search that may call :meth:`sample`."""
        with self._cond:
            self._workers += 1

    def leave(self) -> None:
        """A search ended; the others may no longer need to wait for it."""
        with self._cond:
            self._workers -= 1
            self._flush_if_all_waiting()

    def cancel(self) -> None:
        """Make every waiting and later :meth:`sample` call raise, so searches unwind quickly."""
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
            self._flush_if_all_waiting()
            while not me.done:
                self._cond.wait()
        if me.error is not None:
            raise me.error
        return me.results  # type: ignore[return-value]

    def _flush_if_all_waiting(self) -> None:
        """Run the merged call once no registered search is still computing (lock held)."""
        if not self._waiting or len(self._waiting) < self._workers:
            return
        batch, self._waiting = self._waiting, []
        # Arrival order is thread timing; a fixed order keeps the merged call reproducible.
        batch.sort(key=lambda w: [r.prefix_ids for r in w.requests])
        merged = [r for w in batch for r in w.requests]
        try:
            results = self.engine.sample(merged, batch[0].params)
            self.calls += 1
            start = 0
            for w in batch:
                w.results = results[start:start + len(w.requests)]
                start += len(w.requests)
        except BaseException as e:  # every caller must wake up, KeyboardInterrupt included
            for w in batch:
                w.error = e
        for w in batch:
            w.done = True
        self._cond.notify_all()
