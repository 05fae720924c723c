"""The critical-token search's sequential draws: each score stops when its question is settled, the walk left
defers low scores, and rollouts that went through later tokens check them (exact values on fake engines)."""

import random

from pts.engines.base import SamplingParams
from pts.engines.fake import EOS, FAIL, BranchingFakeEngine, FakeEngine, PassFailOracle, token
from pts.search.critical.finder import CriticalTokenFinder
from pts.search.critical.scores import TrajectoryScores
from pts.search.critical.settings import CriticalSettings
from pts.search.critical.staged import StagedEstimator, fulfil
from pts.search.estimate import QueryRollouts
from pts.tasks.task import Task

PROMPT = "q?"
PROMPT_IDS = [token(c) for c in PROMPT]
TASK = Task(PROMPT, "PASS", "0", "fake", "fake", PassFailOracle())


def counts_world(counts, k):
    """A FakeEngine whose token i scores exactly counts[i] of k, however the draws are split into stages."""
    script = [token(chr(ord("a") + i % 26)) for i in range(len(counts))]

    def p(prefix):
        return counts[len(prefix) - 1] / k if 0 < len(prefix) <= len(counts) else 0.0

    engine = FakeEngine(p, script, prompt_length=len(PROMPT), stratify_per_prefix=True)
    return engine, tuple(script + [FAIL, EOS])


def drive(steps, est, engine):
    """Serve a step generator's asks on one estimator until it returns; its return value."""
    try:
        ask = next(steps)
        while True:
            fulfil(engine, [(est, ask)])
            ask = steps.send(None)
    except StopIteration as stop:
        return stop.value


def test_stages_are_a_quarter_and_half_of_the_probe_then_double_from_it_to_k():
    assert CriticalSettings(rollouts=64).stages == (2, 4, 8, 16, 32, 64)
    assert CriticalSettings(rollouts=16).stages == (1, 2, 4, 8, 16)
    assert CriticalSettings(rollouts=8, probe_samples=3).stages == (1, 3, 6, 8)
    assert CriticalSettings(rollouts=1).stages == (1,)


def test_stratified_per_prefix_counts_do_not_depend_on_the_split():
    engine, response = counts_world([3], 64)
    est = StagedEstimator(engine, TASK, PROMPT_IDS, SamplingParams(), num_samples=64, max_new_tokens=99, seed=1)
    est2 = StagedEstimator(engine, TASK, PROMPT_IDS, SamplingParams(), num_samples=64, max_new_tokens=99, seed=1)
    est.stages, est2.stages = (8, 16, 32), (8,)
    engine2, _ = counts_world([3], 64)
    fulfil(engine, [(est, {response[:1]: 64})])
    fulfil(engine2, [(est2, {response[:1]: 64})])
    assert est.cache[response[:1]].successes == est2.cache[response[:1]].successes == 3


def test_settle_draws_each_score_only_until_its_question_is_certain():
    # K = 64, stages 2, 4, 8, 16, 32, 64, threshold 0.05 (at most 3 of 64). The first m draws of a score c/64
    # hold round(c * m / 64) successes.
    counts = [64, 60, 4, 3, 2, 0]
    engine, response = counts_world(counts, 64)
    s = CriticalSettings(rollouts=64, mode="search", pass_at_k=0)
    est = StagedEstimator(
        engine, TASK, PROMPT_IDS, SamplingParams(), num_samples=64, max_new_tokens=99, seed=1, stages=s.stages
    )
    view = TrajectoryScores(est, response, s)

    def settle(i, question):
        drive(view.settle([i], question), est, engine)
        return view.get(i).samples

    assert settle(0, "nonzero") == 2  # 2 successes in the first stage
    assert settle(1, "violation") == 4 and view.violation(1)  # round(60 * 4 / 64) = 4 already exceed 3 of 64
    assert settle(2, "nonzero") == 16  # round(4 * m / 64) = 0 up to m = 8, 1 at m = 16
    assert settle(2, "violation") == 64 and view.violation(2)  # the 4th success comes with the last stage
    assert settle(3, "violation") == 64 and not view.violation(3)  # 3 of 64: certain only at the end
    assert settle(4, "nonzero") == 32 and settle(4, "violation") == 64 and not view.violation(4)
    assert settle(5, "nonzero") == 64 and view.zero(5)  # a zero always needs all K
    # A cap stops the draws at a stage even when the question is still open; drawn scores draw nothing more.
    engine2, response2 = counts_world([3, 3], 64)
    est2 = StagedEstimator(
        engine2, TASK, PROMPT_IDS, SamplingParams(), num_samples=64, max_new_tokens=99, seed=1, stages=s.stages
    )
    view2 = TrajectoryScores(est2, response2, s)
    drive(view2.settle([0, 1], "violation", cap=8), est2, engine2)
    assert [view2.get(i).samples for i in (0, 1)] == [8, 8] and engine2.rollouts == 16
    assert engine.rollouts == 2 + 4 + 64 + 64 + 64 + 64


def find(counts, mode, k=64, **kw):
    engine, response = counts_world(counts, k)
    settings = CriticalSettings(rollouts=k, mode=mode, pass_at_k=0, pool=False, **kw)
    finder = CriticalTokenFinder(QueryRollouts(engine, TASK, PROMPT_IDS, SamplingParams(), 999), settings, seed=1)
    (result,) = finder.find([response])
    return result, engine


def test_walk_left_passes_a_long_stretch_of_low_scores_without_drawing_them_to_k():
    counts = [40] + [2] * 12 + [0, 0, 0]
    scan, _ = find(counts, "scan")
    search, _ = find(counts, "search")
    assert (search.position, search.rule) == (scan.position, scan.rule) == (13, "first_zero_then_low")
    low = [e.samples for e in search.estimates[1:13] if e is not None]
    assert low and all(n < 64 for n in low), low  # none needed: no zero further left


def test_walk_left_settles_the_low_scores_a_zero_further_left_needs():
    # A zero at 2 with only low scores (2 of 64) after it: the scan's token; the walk settles 3 and 4 exactly.
    scan, _ = find([40, 2, 0, 2, 2, 0, 0], "scan")
    search, _ = find([40, 2, 0, 2, 2, 0, 0], "search")
    assert (search.position, search.rule) == (scan.position, scan.rule) == (2, "first_zero_then_low")
    assert search.estimates[3].samples == search.estimates[4].samples == 64
    # 5 of 64 at 2 drops the zero at 1: the answer stays at 4, and the walk found that out exactly.
    scan, _ = find([40, 0, 5, 2, 0, 0], "scan")
    search, _ = find([40, 0, 5, 2, 0, 0], "search")
    assert (search.position, search.rule) == (scan.position, scan.rule) == (4, "first_zero_then_low")


def branching_world(rng, length):
    """Branching fake (the chain rule holds): p in [0.3, 0.7] up to a planted token where it falls to 0; after
    it the sampler is near-certain of each token (pi 0.9-0.999), before it pi is 0.5-0.95."""
    critical = rng.randrange(length)
    p = rng.uniform(0.3, 0.7)
    p_script = [p] + [p if i < critical else 0.0 for i in range(length)]
    follow = [
        min(0.8, 0.95 * (1 - p))
        if i == critical
        else rng.uniform(0.9, 0.999)
        if i > critical
        else rng.uniform(0.5, 0.95)
        for i in range(length)
    ]
    script = [token(rng.choice("abcdefgh")) for _ in range(length)]
    return p_script, script, follow, critical


def test_rollouts_through_later_tokens_check_them_at_no_cost_to_the_answer():
    rng = random.Random(21)
    totals = {True: 0, False: 0}
    for n in range(40):
        length = rng.randint(8, 40)
        p_script, script, follow, critical = branching_world(rng, length)
        response = (*script, FAIL, EOS)
        out = {}
        for pool in (True, False):
            engine = BranchingFakeEngine(p_script, script, prompt_length=len(PROMPT_IDS), follow=follow, seed=n)
            s = CriticalSettings(rollouts=64, mode="search", pass_at_k=0, pool=pool)
            finder = CriticalTokenFinder(QueryRollouts(engine, TASK, PROMPT_IDS, SamplingParams(), 99), s, seed=n)
            (out[pool],) = finder.find([response])
            totals[pool] += out[pool].rollouts
        # The draws before the check are the same (same seeds); in the check a later token draws rollouts of
        # its own only to make up for those that went through it: never more than without pooling.
        for e_pool, e_own in zip(out[True].estimates, out[False].estimates):
            assert (0 if e_pool is None else e_pool.samples) <= (0 if e_own is None else e_own.samples)
        # p is 0 after the planted token: no rollout through a later token succeeds, pooled or not, and the
        # draws before the check are the same (same seeds), so both find the same token.
        assert (out[True].position, out[True].rule) == (out[False].position, out[False].rule)
        assert out[True].position == critical
        assert out[True].rollouts <= out[False].rollouts
    assert totals[True] < 0.6 * totals[False], totals  # 0.38 when written
