"""Verification of candidate pivots: fresh rollouts in rounds until an interval on the change settles it.

The subdivision flags a token because its estimates showed a large change;
measured again with the same rollouts, the change would look as large as it
did by selection (the winner's curse). So a candidate is judged only on
rollouts drawn after every candidate of its query was fixed: a fresh
:class:`~pts.search.evidence.PooledEstimator` whose evidence pools the
verification rollouts among themselves (a rollout from the context before the
pivot that took the pivot token counts after it too), never the search's.

Decision rule, precision first. At each look the Newcombe interval of
p(after) - p(before) is computed from Wilson intervals of both ends; the
candidate is kept once the interval lies wholly at or beyond the threshold on
one side, dropped once it lies wholly inside (-threshold, threshold), and
otherwise gets more rollouts, doubling from ``FIRST_ROUND`` per end up to the
cap. A candidate still undecided at the cap is dropped, and so is one that
is unlikely to be kept by the cap (futility: at its current estimated change,
the cap's interval would clear the threshold less than ``FUTILITY_POWER`` of
the time; a fifth of that at the first look, whose 16 rollouts are noisy).
Futility only ever drops, so it costs recall, never precision.
The level of each look
is Bonferroni-corrected over the looks, so for a candidate whose true change
is below the threshold, the chance of being kept is at most ``1 - confidence``
(up to the interval's approximation), however many looks it took.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

from pts.search.estimate import Estimate, Prefix
from pts.search.evidence import PooledEstimator
from pts.search.pivotal import interval
from pts.stats import newcombe_interval, wilson_interval

FIRST_ROUND = 16
# Drop a candidate once the chance of keeping it by the cap, at its current estimate, is below this.
FUTILITY_POWER = 0.1

# Float slack in comparisons with the threshold, as in pts.search.pivotal.
_EPS = 1e-9


def rounds(cap: int, first: int = FIRST_ROUND) -> list[int]:
    """Samples per end at each look: ``first``, doubling, then ``cap`` (``[cap]`` when cap <= first)."""
    out = []
    n = first
    while n < cap:
        out.append(n)
        n *= 2
    return out + [cap]


def delta_interval(before: Estimate, after: Estimate, confidence: float) -> tuple[float, float]:
    """Interval of p(after) - p(before) at ``confidence`` (a terminal end is known exactly)."""
    return newcombe_interval(before.p, interval(before, confidence), after.p, interval(after, confidence))


def settle(low: float, high: float, threshold: float) -> bool | None:
    """True: the change is at least ``threshold`` in size; False: it is smaller; None: not yet known."""
    t = threshold - _EPS
    if low >= t or high <= -t:
        return True
    if -t < low and high < t:
        return False
    return None


@dataclass
class Candidate:
    """A single token the subdivision flagged: ``context + (token_id,)`` moved p in the search's estimates."""

    context: Prefix
    token_id: int


def futile(
    before: Estimate, after: Estimate, threshold: float, cap: int, level: float, power: float = FUTILITY_POWER
) -> bool:
    """True when the candidate is unlikely to be kept by the cap.

    If the true change were the current estimate, the change measured with
    ``cap`` rollouts per end would have to exceed the threshold by the cap's
    interval half-width; futile when that happens less than ``power`` of the
    time (normal approximation).
    """
    delta = abs(after.p - before.p)
    half = math.hypot(*(_half_width(e, cap, level) for e in (before, after)))
    need = threshold - _EPS + half
    if half == 0:
        return delta < need
    se = half / NormalDist().inv_cdf(0.5 + level / 2)
    return 1 - NormalDist().cdf((need - delta) / se) < power


def _half_width(est: Estimate, n: int, level: float) -> float:
    if est.terminal:
        return 0.0
    lo, hi = wilson_interval(round(est.p * n), n, level)
    return (hi - lo) / 2


@dataclass
class Verdict:
    """What verification concluded about one candidate.

    ``kept`` when the interval showed a change of at least the threshold;
    ``reason`` says why: ``"moves"`` (kept), ``"small"`` (the interval lies
    inside the threshold), ``"futile"`` (it could not be kept by the cap) or
    ``"cap"`` (still undecided at the cap). ``before``/``after`` are the verification estimates (fresh and
    pooled verification rollouts only) and ``interval`` the interval of the
    change at the level the decision was made (``level``), after ``looks`` looks.
    """

    kept: bool
    reason: str
    before: Estimate
    after: Estimate
    interval: tuple[float, float]
    level: float
    looks: int


def verify(
    estimator: PooledEstimator, candidates: Sequence[Candidate], *, threshold: float, cap: int, confidence: float
) -> list[Verdict]:
    """Verdicts for ``candidates`` (in order), from ``estimator``'s rollouts only.

    Each look samples the contexts before the pivots first, then the contexts
    after them, so that rollouts which took the pivot token count for the
    second; every look of every candidate goes to the engine in two calls.
    """
    looks = rounds(cap)
    level = 1 - (1 - confidence) / len(looks)
    verdicts: list[Verdict | None] = [None] * len(candidates)
    pending = list(range(len(candidates)))
    for look, target in enumerate(looks, start=1):
        befores = [candidates[k].context for k in pending]
        afters = [candidates[k].context + (candidates[k].token_id,) for k in pending]
        estimator.estimate(befores, samples=target)
        estimator.estimate(afters, samples=target)
        # Read both ends again: one candidate's after can be another's before, topped up by the second call.
        still = []
        for k, before, after in zip(
            pending, estimator.estimate(befores, samples=target), estimator.estimate(afters, samples=target)
        ):
            low, high = delta_interval(before, after, level)
            verdict = settle(low, high, threshold)
            if verdict is True:
                reason = "moves"
            elif verdict is False:
                reason = "small"
            elif look == len(looks):
                reason = "cap"
            elif futile(before, after, threshold, cap, level, FUTILITY_POWER / (5 if look == 1 else 1)):
                reason = "futile"
            else:
                still.append(k)
                continue
            verdicts[k] = Verdict(reason == "moves", reason, before, after, (low, high), level, look)
        pending = still
    return [v for v in verdicts if v is not None]
