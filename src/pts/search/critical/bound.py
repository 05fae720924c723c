"""The sampling-probability bound for critical tokens: which positions of a trajectory can qualify at all.

**What the rule requires.** :func:`~pts.search.critical.rule.critical_position`
opens a candidate at token i only when score(i) is 0 and no candidate is open,
i.e. when score(i - 1) is not 0 (a zero at i - 1 would have opened the
candidate there, or kept an open one open). Scores are counts out of K, so
the smallest nonzero score is 1/K: a token i >= 1 can become critical (under
either rule, ``first_zero_then_low`` or ``last_zero``: both name a candidate
that was opened) only if its score falls from at least 1/K to 0, a drop of at
least 1/K. Nothing else is required (score(i - 1) may be 1/K, below the low
threshold). Token 0 is scored against the prompt, which the rule never scores:
it requires nothing there, and token 0 is always a possible position.

**The bound.** score(i) estimates p(C + t) for C = the trajectory before token
t = t_i, and score(i - 1) estimates p(C). Sampling is autoregressive, so
p(C + t) - p(C) = (1 - pi(t | C)) (p(C + t) - p_alt) and
|p(C + t) - p(C)| <= 1 - pi(t | C) (docs/search.md, section 4), with pi the
sampler's probability of t after temperature, top-k, top-p and min-p. A token
with 1 - pi < 1/K cannot carry the drop of 1/K the rule requires. With the
pivotal search's margin for bf16 (pi of the trajectory's token is computed in
one batch, the rollouts' forward passes in others), a position is skipped only
when 1 - pi < 1/K - margin.

What that buys depends on K: at K = 64 (the paper's) 1/K - 0.02 is negative
and no position is skipped; at K = 16 tokens with pi > 0.9575 are, at K = 8
those with pi > 0.895. Where the bound holds for the measured scores (every
exact fake world; on a real model, in expectation) a skipped token scores what
the token before it scores (an integer count cannot move by less than one),
so the rule on the possible positions alone returns the scan's token
(tests/test_critical.py). On measured scores of a real model the rule can
also fire on sampling noise, where p hovers around 1/K on both sides of a
near-certain token (e.g. 1/64 then 0/64); the bound drops exactly those
answers, which no true drop supports.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pts.search.searcher import SAMPLING_PROB_MARGIN

_EPS = 1e-12


def required_drop(rollouts: int) -> float:
    """The smallest fall of the score that makes a token (after the first) critical under the rule: 1/K."""
    return 1.0 / rollouts


def possible_critical_positions(
    sampling_logprobs: Sequence[float] | None, rollouts: int, margin: float = SAMPLING_PROB_MARGIN
) -> list[bool] | None:
    """Which tokens of a trajectory can be critical: token 0, and those with ``1 - pi >= 1/K - margin``.

    ``sampling_logprobs[i]`` is log pi of the trajectory's token i under the
    sampling distribution (``Rollout.sampling_logprobs``); ``rollouts`` is K.
    Returns one bool per token, or None (every token possible: no bound) when
    the probabilities are unknown, as for responses given with ``--input-path``.
    """
    if sampling_logprobs is None:
        return None
    need = required_drop(rollouts) - margin - _EPS
    return [i == 0 or 1.0 - math.exp(lp) >= need for i, lp in enumerate(sampling_logprobs)]
