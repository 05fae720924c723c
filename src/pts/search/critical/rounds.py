"""Within one query: step generators side by side, their requests of each round answered together.

A step generator yields a request (here: a list of :data:`Ask`), is resumed
once the request has been served, and returns its result. :func:`rounds` runs
many of them in lockstep and yields each round's requests, in order; the
caller serves them all at once (one engine call with :func:`run_rounds`, one
merged ask further up in :class:`~pts.search.critical.finder.CriticalTokenFinder`,
which scores a query's trajectories side by side). Nothing depends on timing,
so the same inputs always make the same requests in the same order.

Many queries at once are not stepped here: each runs in a unit of
:mod:`pts.work`, whose pools merge the engine calls of the units in flight,
as for ``pts run``.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Iterator
from typing import Any, TypeVar

from pts.engines.base import Engine
from pts.search.critical.staged import Ask, fulfil

R = TypeVar("R")
Steps = Generator[list[Ask], None, Any]


def rounds(jobs: Iterable[Generator[R, None, Any]], on_done: Callable[[int, Any], None]) -> Iterator[list[R]]:
    """Yield each round's requests of the running ``jobs``; resume the loop once they are served.

    When job ``i`` (its index in ``jobs``) returns, ``on_done(i, result)`` is called at once.
    """
    running: dict[int, Generator[R, None, Any]] = dict(enumerate(jobs))
    pending: dict[int, R] = {}

    def advance(i: int) -> None:
        try:
            pending[i] = running[i].send(None)  # starts a new generator too
        except StopIteration as stop:
            del running[i]
            pending.pop(i, None)
            on_done(i, stop.value)

    while True:
        for i in list(running):
            advance(i)
        if not running:
            return
        yield list(pending.values())


def run_rounds(engine: Engine, jobs: Iterable[Steps]) -> list[Any]:
    """Run step generators side by side, one :func:`fulfil` per round, and return their results in order."""
    results: dict[int, Any] = {}
    for asks in rounds(jobs, results.__setitem__):
        fulfil(engine, [a for job_asks in asks for a in job_asks])
    return [results[i] for i in sorted(results)]
