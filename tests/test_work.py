"""pts.work: many units at once in one process, their engine calls merged the same way on every run."""

from __future__ import annotations

import random
import threading
import time
from functools import partial

import pytest

from pts.engines.base import Rollout, RolloutRequest, SamplingParams
from pts.work import InOrder, LocalPool, Work


class LoggingEngine:
    """Answers every request with one rollout holding its first prefix id; logs each call's requests."""

    model_id = "logging"
    tokenizer = None
    eos_token_ids = (0,)

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[int, ...], SamplingParams]] = []

    def sample(self, requests, params):
        self.calls.append((tuple(r.prefix_ids[0] for r in requests), params))
        return [[Rollout([r.prefix_ids[0]], "", [0.0], "stop")] for r in requests]


def _unit(jitter: random.Random, lock: threading.Lock, engine, unit: tuple[int, int]) -> int:
    """Unit ``(name, steps)``: ``steps`` engine calls, each after a random pause (the thread timing)."""
    name, steps = unit
    for step in range(steps):
        with lock:
            pause = jitter.random() * 0.004 if jitter.random() < 0.7 else 0.0
        time.sleep(pause)
        engine.sample([RolloutRequest((name * 100 + step,), 1, 4)], SamplingParams())
    return name


def _run(jitter_seed: int, units, concurrency: int, stop_after: int | None = None):
    engine = LoggingEngine()
    work = Work(
        lambda: engine,
        lambda shared: shared,
        partial(_unit, random.Random(jitter_seed), threading.Lock()),
        concurrency=concurrency,
        merge=True,
    )
    done: list[int] = []
    LocalPool(work, engine).map(
        units, lambda unit, result: done.append(result), stop=lambda: stop_after is not None and len(done) >= stop_after
    )
    return engine.calls, done


@pytest.mark.parametrize("stop_after", [None, 4])
def test_merged_calls_and_results_do_not_depend_on_thread_timing(stop_after):
    units = [(name, steps) for name, steps in enumerate([3, 1, 4, 1, 5, 2, 6, 2, 1, 3], start=1)]
    first = _run(0, units, concurrency=3, stop_after=stop_after)
    for seed in (1, 2, 3):
        assert _run(seed, units, concurrency=3, stop_after=stop_after) == first
    calls, done = first
    # the calls are lockstep rounds: the first merges the first step of the first three units
    assert calls[0][0] == (100, 200, 300)
    assert max(len(c) for c, _ in calls) == 3 and len(calls) < sum(steps for _, steps in units)
    if stop_after is None:
        assert sorted(done) == [name for name, _ in units]
    else:  # units finishing together are recorded together; none is started after the stop
        assert len(done) >= stop_after and len(done) < len(units)


def test_one_unit_at_a_time_runs_in_the_calling_thread():
    threads = set()

    def call(state, unit):
        threads.add(threading.current_thread())
        return unit

    done = []
    LocalPool(Work(lambda: LoggingEngine(), lambda e: e, call, concurrency=1, merge=True)).map(
        [1, 2, 3], lambda u, r: done.append(r)
    )
    assert done == [1, 2, 3] and threads == {threading.main_thread()}


def test_requests_with_other_sampling_params_get_their_own_call():
    engine = LoggingEngine()
    hot, cold = SamplingParams(temperature=1.0), SamplingParams(temperature=0.1)

    def call(shared, unit):
        (rollouts,) = shared.sample([RolloutRequest((unit,), 1, 4)], hot if unit % 2 else cold)
        return rollouts[0].token_ids[0]

    done = []
    LocalPool(Work(lambda: engine, lambda e: e, call, concurrency=4, merge=True), engine).map(
        [1, 2, 3, 4], lambda u, r: done.append((u, r))
    )
    assert sorted(done) == [(1, 1), (2, 2), (3, 3), (4, 4)]
    assert sorted(engine.calls, key=lambda c: c[0]) == [((1, 3), hot), ((2, 4), cold)]


def test_an_error_in_a_unit_stops_the_run_and_every_thread_ends():
    def call(shared, unit):
        if unit == 2:
            raise ValueError("bad unit")
        for _ in range(50):
            shared.sample([RolloutRequest((unit,), 1, 4)], SamplingParams())
        return unit

    before = threading.active_count()
    pool = LocalPool(Work(lambda: LoggingEngine(), lambda e: e, call, concurrency=3, merge=True))
    with pytest.raises(ValueError, match="bad unit"):
        pool.map([1, 2, 3], lambda u, r: None)
    assert threading.active_count() == before
    done = []
    pool.map([4, 5], lambda u, r: done.append(r))  # the pool is usable again
    assert sorted(done) == [4, 5]


def test_in_order_commits_in_order_and_keeps_the_place_of_a_unit_sent_again():
    committed = []

    def commit(unit, result):
        if unit == "b" and result == "b-first":
            return ["b"]
        committed.append((unit, result))
        return []

    order = InOrder(["a", "b", "c"], commit, key=str)
    assert order("c", "c1") == [] and committed == []
    assert order("b", "b-first") == [] and committed == []
    assert order("a", "a1") == ["b"] and committed == [("a", "a1")] and order.out_again
    assert order("b", "b2") == [] and committed == [("a", "a1"), ("b", "b2"), ("c", "c1")]
    assert not order.out_again
