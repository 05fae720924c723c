"""The one stepping loop: step generators side by side, their requests of each round answered together.

A step generator yields a request (here: a list of :data:`Ask`), is resumed
once the request has been served, and returns its result. :func:`rounds` runs
many of them in lockstep and yields each round's requests, in the order the
generators were started; the caller serves them all at once (one engine call
with :func:`run_rounds`, one merged ask further up in
:class:`~pts.search.critical.finder.CriticalTokenFinder`). Nothing depends on
timing, so the same inputs always make the same requests in the same order.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Iterator
from typing import Any, TypeVar

from pts.engines.base import Engine
from pts.search.critical.staged import Ask, fulfil

R = TypeVar("R")
Steps = Generator[list[Ask], None, Any]


def rounds(jobs: Iterable[Generator[R, None, Any]], on_done: Callable[[int, Any], None], *,
           parallel: int | None = None, admit: Callable[[], bool] = lambda: True) -> Iterator[list[R]]:
    """Yield each round's requests of the running ``jobs``; resume the loop once they are served.

    A job is started (run to its first request) when a slot is free: at most
    ``parallel`` run at once (no limit when ``None``), and none is started
    once ``admit()`` is false. When job ``i`` (its index in ``jobs``) returns,
    ``on_done(i, result)`` is called at once, before the next job is stepped.
    ``jobs`` is read lazily, so it may be a generator of generators.
    """
    queue = enumerate(jobs)
    running: dict[int, Generator[R, None, Any]] = {}
    pending: dict[int, R] = {}

    def advance(i: int, first: bool = False) -> None:
        job = running[i]
        try:
            pending[i] = next(job) if first else job.send(None)
        except StopIteration as stop:
            del running[i]
            pending.pop(i, None)
            on_done(i, stop.value)

    while True:
        while (parallel is None or len(running) < parallel) and admit():
            item = next(queue, None)
            if item is None:
                break
            i, job = item
            running[i] = job
            advance(i, first=True)
        if not running:
            return
        yield list(pending.values())
        for i in list(running):
            advance(i)


def run_rounds(engine: Engine, jobs: Iterable[Steps], *, parallel: int | None = None,
               admit: Callable[[], bool] = lambda: True,
               on_done: Callable[[int, Any], None] | None = None) -> list[Any]:
    """Run step generators side by side, one :func:`fulfil` per round, and return their results in order.

    With ``on_done`` each result goes there as its job ends (see :func:`rounds`) and the list is empty;
    ``parallel`` and ``admit`` are :func:`rounds`'.
    """
    results: dict[int, Any] = {}
    for asks in rounds(jobs, on_done or results.__setitem__, parallel=parallel, admit=admit):
        fulfil(engine, [a for job_asks in asks for a in job_asks])
    return [results[i] for i in sorted(results)]
