"""pts.work: many units at once in one process, their engine calls merged the same way on every run."""

from __future__ import annotations

import json
import random
import threading
import time
from functools import partial

import pytest

from pts.engines.base import Rollout, RolloutRequest, SamplingParams
from pts.engines.fake import BranchingFakeEngine, PassFailOracle, SteppedFakeEngine, planted_scenario
from pts.jobs.run import RunConfig, run
from pts.store import read_jsonl
from pts.tasks.task import Task
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


class VaryingEngine:
    """Rollouts of a length fixed by the request (its prefix and seed), 1 to 12 tokens: rows finish at different
    steps in a running batch."""

    model_id = "varying"
    tokenizer = None
    eos_token_ids = (0,)

    def sample(self, requests, params):
        out = []
        for r in requests:
            rng = random.Random(f"{r.prefix_ids}|{r.seed}")
            out.append([Rollout([r.prefix_ids[0]] * rng.randint(1, 12), "", [0.0], "stop") for _ in range(r.n)])
        return out


def _stepped_unit(jitter: random.Random, lock: threading.Lock, engine, unit: tuple[int, int]) -> list:
    """Unit ``(name, steps)``: ``steps`` engine calls of two requests each, after random pauses; the next call's
    requests depend on the last call's rollouts, as a search's do."""
    name, steps = unit
    got, last = [], 0
    for step in range(steps):
        with lock:
            pause = jitter.random() * 0.004 if jitter.random() < 0.7 else 0.0
        time.sleep(pause)
        requests = [RolloutRequest((name * 100 + step, last), 1 + name % 3, 12, seed=name + k) for k in (0, 1)]
        rollouts = engine.sample(requests, SamplingParams())
        last = len(rollouts[0][0].token_ids)
        got.append([[r.token_ids for r in rs] for rs in rollouts])
    return got


def _run_stepped(jitter_seed: int, units, concurrency: int, batch_size: int = 6):
    engine = SteppedFakeEngine(VaryingEngine(), batch_size=batch_size)
    work = Work(
        lambda: engine,
        lambda shared: shared,
        partial(_stepped_unit, random.Random(jitter_seed), threading.Lock()),
        concurrency=concurrency,
        merge=True,
    )
    done: dict[int, list] = {}
    LocalPool(work, engine).map(units, lambda unit, result: done.__setitem__(unit[0], result))
    return engine.steps, done


def joins(steps: list[list[int]]) -> int:
    """Steps where a submission's rows started decoding beside rows of a submission already decoding."""
    return sum(bool(set(now) - set(before)) and bool(set(now) & set(before)) for before, now in zip(steps, steps[1:]))


def test_continuous_batching_joins_at_the_same_steps_whatever_the_thread_timing():
    units = [(name, steps) for name, steps in enumerate([3, 1, 4, 1, 5, 2, 6, 2, 1, 3], start=1)]
    steps, done = _run_stepped(0, units, concurrency=3)
    for seed in (1, 2, 3):
        assert _run_stepped(seed, units, concurrency=3) == (steps, done)
    assert joins(steps) > 0  # requests did join running batches
    # what each unit got does not depend on the batching: the same as one unit at a time, or all in one batch
    assert _run_stepped(0, units, concurrency=1, batch_size=1)[1] == done
    assert _run_stepped(0, units, concurrency=10, batch_size=1000)[1] == done


def test_search_records_do_not_depend_on_how_requests_were_batched_or_joined(tmp_path):
    script, p_script, follow = planted_scenario(random.Random(3), length=16, pivots=2)
    queries = [Task(f"q{i}?", "PASS", str(i), "fake", "fake", PassFailOracle()) for i in range(6)]
    settings = dict(num_samples=8, max_generations=3, progress=False, min_prob=0.0, max_prob=1.0)

    def records(engine, parallel: int) -> list[str]:
        out = tmp_path / f"{len(list(tmp_path.iterdir()))}.jsonl"
        run(RunConfig(output_path=str(out), parallel=parallel, **settings), engine, queries)
        return sorted(
            json.dumps({k: v for k, v in r.items() if k != "timestamp"}, sort_keys=True) for r in read_jsonl(out)
        )

    def branching():
        return BranchingFakeEngine(p_script, script, prompt_length=3, follow=follow)

    alone = records(branching(), parallel=1)
    assert alone and alone == records(branching(), parallel=4)  # merged calls
    stepped = SteppedFakeEngine(branching(), batch_size=16)
    assert records(stepped, parallel=4) == alone  # continuous batching
    assert joins(stepped.steps) > 0


def test_an_engine_error_in_a_running_batch_reaches_every_unit_and_the_pool_is_usable_again():
    class Failing(VaryingEngine):
        def sample(self, requests, params):
            if any(r.prefix_ids[0] == 201 for r in requests):
                raise ValueError("engine broke")
            return super().sample(requests, params)

    engine = SteppedFakeEngine(Failing(), batch_size=4)
    before = threading.active_count()
    pool = LocalPool(
        Work(lambda: engine, lambda e: e, partial(_stepped_unit, random.Random(0), threading.Lock()), 3, True), engine
    )
    with pytest.raises(ValueError, match="engine broke"):
        pool.map([(1, 3), (2, 3), (3, 3)], lambda u, r: None)
    assert threading.active_count() == before
    done = []
    pool.map([(4, 2), (5, 2)], lambda u, r: done.append(u))
    assert sorted(done) == [(4, 2), (5, 2)]
