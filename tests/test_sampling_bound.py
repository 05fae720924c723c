"""The sampling-probability facts the search relies on, checked exactly on random planted worlds (no sampling luck).

pi(a | C) is the probability that the rollout sampler picks token a after context C. Since
p(C) = sum_a pi(a | C) p(C + a), the change across a token t is
p(C + t) - p(C) = (1 - pi(t | C)) (p(C + t) - p_alt), p_alt the pi-weighted mean of p(C + a) over a != t,
so |p(C + t) - p(C)| <= 1 - pi(t | C).
"""

import math
import random

import pytest

from pts.engines.base import NextTokenDistribution, RolloutRequest, SamplingParams
from pts.engines.fake import BranchingFakeEngine, FakeEngine, planted_scenario, token

PROMPT_IDS = (token("q"), token("?"))


def world(seed: int, **scenario) -> BranchingFakeEngine:
    script, p_script, follow = planted_scenario(random.Random(seed), **scenario)
    return BranchingFakeEngine(p_script, script, prompt_length=len(PROMPT_IDS), follow=follow, seed=seed)


def contexts(engine: BranchingFakeEngine):
    """Every on-script context, one off-script context and the end of the script."""
    off = token(engine.DEVIATE)
    for i in range(len(engine.script) + 1):
        yield tuple(engine.script[:i])
    yield tuple(engine.script[:2]) + (off,)


@pytest.mark.parametrize("seed", range(40))
def test_chain_rule_and_the_bound_hold_exactly(seed):
    engine = world(seed, length=12, pivots=3)
    assert isinstance(engine, NextTokenDistribution)
    for context in contexts(engine):
        (dist,) = engine.next_token_distribution([PROMPT_IDS + context], SamplingParams())
        assert sum(dist.values()) == pytest.approx(1.0)
        p = engine.true_p(context)
        assert p == pytest.approx(sum(q * engine.true_p(context + (a,)) for a, q in dist.items()))
        for t, pi in dist.items():
            change = engine.true_p(context + (t,)) - p
            assert abs(change) <= 1 - pi + 1e-12
            if pi < 1:
                alt = sum(q * engine.true_p(context + (a,)) for a, q in dist.items() if a != t) / (1 - pi)
                assert change == pytest.approx((1 - pi) * (engine.true_p(context + (t,)) - alt))


@pytest.mark.parametrize("seed", range(10))
def test_branching_engine_reports_each_tokens_sampling_probability_exactly(seed):
    engine = world(seed, length=10, pivots=2)
    for context in contexts(engine):
        (rollouts,) = engine.sample([RolloutRequest(PROMPT_IDS + context, 20, 64, seed=3)], SamplingParams())
        for r in rollouts:
            assert r.sampling_logprobs is not None and len(r.sampling_logprobs) == len(r.token_ids)
            for i, (t, slp) in enumerate(zip(r.token_ids, r.sampling_logprobs)):
                (dist,) = engine.next_token_distribution([PROMPT_IDS + context + tuple(r.token_ids[:i])])
                assert math.exp(slp) == pytest.approx(dist[t])


@pytest.mark.parametrize("seed", range(10))
def test_excluded_first_token_is_never_drawn_and_keeps_its_full_pi(seed):
    engine = world(seed, length=10, pivots=2)
    for context in contexts(engine):
        (dist,) = engine.next_token_distribution([PROMPT_IDS + context])
        if len(dist) < 2:
            continue
        for t in dist:
            (rollouts,) = engine.sample(
                [RolloutRequest(PROMPT_IDS + context, 30, 64, seed=1, exclude_first=t)], SamplingParams()
            )
            assert all(r.token_ids[0] != t for r in rollouts)
            assert all(math.exp(r.sampling_logprobs[0]) == pytest.approx(dist[r.token_ids[0]]) for r in rollouts)


def test_fake_engine_claims_no_sampling_probabilities():
    """Its p(success | prefix) is not tied to its rollouts by the chain rule, so no pi is claimed."""
    engine = FakeEngine(lambda r: 0.5, [token("a")], prompt_length=0)
    (rollouts,) = engine.sample([RolloutRequest((token("a"),), 2, 8)], SamplingParams())
    assert all(r.sampling_logprobs is None for r in rollouts)


def exact_decider(p_of):
    """A PointDecider whose estimates are exact p values (no rollouts), recording the positions it was asked."""
    from pts.search.estimate import Estimate
    from pts.search.pivotal import PointDecider

    asked = []

    def estimate_positions(keys, samples):
        asked.extend(keys)
        return [Estimate(0, 1, terminal=True, exact=p_of(k, i)) for k, i in keys]

    return PointDecider(estimate_positions, 0.2, 10), asked


@pytest.mark.parametrize("direct_at_most", [0, 2, 10**6])
@pytest.mark.parametrize("seed", range(25))
def test_bound_never_estimates_where_no_pivot_can_be_and_finds_every_pivot_with_exact_estimates(seed, direct_at_most):
    from pts.search.pivotal import find_pivots_many, possible_positions

    engine = world(seed, length=24, pivots=3, flat_follow=lambda rng: 1 - rng.uniform(0.001, 0.5))
    script = list(engine.script)
    pis = [math.log(f) for f in engine.follow]
    possible = possible_positions(pis, 0.2)
    decide, asked = exact_decider(lambda k, i: engine.true_p(script[:i]))
    (found,) = find_pivots_many([script], decide, split_at="middle", possible=[possible], direct_at_most=direct_at_most)
    for _, i in asked:  # every estimate borders a position that can hold a pivot
        assert any(possible[j] for j in (i - 1, i) if 0 <= j < len(script))
    truth = [i for i in range(len(script)) if abs(engine.true_p(script[: i + 1]) - engine.true_p(script[:i])) >= 0.2]
    assert all(possible[i] for i in truth)  # the bound never rules out a true pivot
    got = [p.position for p in found]
    if direct_at_most >= sum(possible):  # estimated around every possible position: nothing is missed
        assert got == truth
    assert set(got) <= set(truth)


def test_direct_estimation_finds_opposite_pivots_that_cancel_inside_a_segment():
    from pts.search.pivotal import find_pivots_many

    p = [0.5, 0.5, 0.8, 0.8, 0.5, 0.5]  # +0.3 at token 1, -0.3 at token 3: no change across the whole
    possible = [False, True, False, True, False]
    found = {}
    for k in (0, 2):
        decide, _ = exact_decider(lambda _, i: p[i])
        (found[k],) = find_pivots_many([[5] * 5], decide, split_at="middle", possible=[possible], direct_at_most=k)
    assert [x.position for x in found[0]] == []  # bisection closes the segment: p does not move across it
    assert [x.position for x in found[2]] == [1, 3]


@pytest.mark.parametrize("seed", range(30))
def test_stratified_interval_covers_the_true_change_whenever_the_strata_interval_covers_theirs(seed):
    """The step of the guarantee that is not the interval's own coverage: whenever the interval of
    p_t - p_alt from the two strata holds the true difference, the stratified interval holds the exact change
    p(C + t) - p(C). Checked against exact values at every position of random planted worlds, with counts
    chosen at random around the truth (pi exact here; the margin only widens it)."""
    from pts.search.estimate import Estimate
    from pts.search.verify import delta_interval, stratified_interval

    rng = random.Random(seed)
    engine = world(seed, length=12, pivots=3, flat_follow=lambda r: 1 - r.uniform(0.001, 0.9))
    level = 0.983
    checked = 0
    for i, t in enumerate(engine.script):
        context = tuple(engine.script[:i])
        (dist,) = engine.next_token_distribution([PROMPT_IDS + context])
        pi = dist[t]
        p_t = engine.true_p(context + (t,))
        p_alt = sum(q * engine.true_p(context + (a,)) for a, q in dist.items() if a != t) / (1 - pi)
        change = engine.true_p(context + (t,)) - engine.true_p(context)
        for _ in range(20):
            n_t, n_alt = rng.randint(4, 64), rng.randint(4, 64)
            after = Estimate(min(n_t, max(0, round(p_t * n_t + rng.gauss(0, 2)))), n_t)
            alt = Estimate(min(n_alt, max(0, round(p_alt * n_alt + rng.gauss(0, 2)))), n_alt)
            lo, hi = delta_interval(alt, after, level)
            for margin in (0.0, 0.02):
                low, high = stratified_interval(after, alt, pi, level, margin=margin)
                if lo <= p_t - p_alt <= hi:
                    checked += 1
                    assert low - 1e-12 <= change <= high + 1e-12
                    if margin == 0:  # scaled by 1 - pi: never wider than the interval of p_t - p_alt
                        assert high - low <= hi - lo + 1e-12
    assert checked > 100


def test_exact_step_knows_p_without_rollouts():
    from pts.engines.fake import PassFailOracle
    from pts.search.evidence import PooledEstimator
    from pts.tasks.task import Task

    engine = world(3, length=8, pivots=2)
    script = tuple(engine.script)
    est = PooledEstimator(
        engine,
        Task("q?", "PASS", "0", "fake", "fake", PassFailOracle()),
        PROMPT_IDS,
        SamplingParams(),
        num_samples=10,
        max_new_tokens=64,
        seed=0,
        solutions=[script],
        salt="search",
        exact_steps=True,
    )
    (end,) = est.estimate([script])
    assert end.terminal and end.p == pytest.approx(engine.p_script[-1]) and est.rollouts == 0
    (mid,) = est.estimate([script[:4]])  # the next token here does not end the response: sampled
    assert not mid.terminal and mid.samples >= 10 and est.rollouts >= 10


@pytest.mark.parametrize(
    "params, top, pi",
    [
        (SamplingParams(temperature=1.0, top_k=2, top_p=1.0), 2, [0.625, 0.375, 0.0, 0.0]),
        (SamplingParams(temperature=1.0, top_k=4, top_p=0.75), 4, [0.625, 0.375, 0.0, 0.0]),
        (SamplingParams(temperature=1.0, top_k=4, top_p=1.0, min_p=0.5), 4, [0.625, 0.375, 0.0, 0.0]),
        (SamplingParams(temperature=0.5, top_k=4, top_p=1.0), 4, [q / 0.365 for q in (0.25, 0.09, 0.0225, 0.0025)]),
    ],
    ids=["top2", "top_p", "min_p", "cold"],
)
def test_vllm_sampling_pi_from_top_k_raw_logprobs(params, top, pi):
    """vLLM reports raw log-probs only; pi is recomputed from the step's top-k of them (model-free check)."""
    from types import SimpleNamespace

    from pts.engines.vllm import _SamplingPi

    entry = {t: SimpleNamespace(logprob=math.log(q)) for t, q in enumerate([0.5, 0.3, 0.15, 0.05])}
    f = _SamplingPi(params, top)
    assert [math.exp(f(entry, t)) for t in range(4)] == pytest.approx(pi, abs=1e-9)
