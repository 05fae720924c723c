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
