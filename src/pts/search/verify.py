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
    """A single token the subdivision flagged: ``context + (token_id,)`` moved p in the search's estimates.

    ``sampling_prob`` is pi(token | context) under the sampling distribution, when known: the change is
    then estimated by strata (:func:`stratified_interval`). A pivotal span has its tokens in ``span`` (the first
    is ``token_id``); it is measured at both ends, before and after the whole span.
    """

    context: Prefix
    token_id: int
    sampling_prob: float | None = None
    span: tuple[int, ...] = ()

    @property
    def after(self) -> Prefix:
        """The context after the token (or the whole span)."""
        return self.context + (self.span or (self.token_id,))

    @property
    def by_strata(self) -> bool:
        """Measured by strata: a single token whose pi is known."""
        return self.sampling_prob is not None and not self.span


def stratified_interval(
    after: Estimate, alternative: Estimate, sampling_prob: float, confidence: float, margin: float = 0.0
) -> tuple[float, float]:
    """Interval of p(C + t) - p(C) = (1 - pi) (p_t - p_alt) from its two strata, at ``confidence``.

    ``after`` estimates p_t (rollouts through C + t), ``alternative`` p_alt
    (rollouts from C whose first token is not t); they are disjoint sets of
    rollouts, so Newcombe's interval of p_t - p_alt holds at ``confidence``.
    It is scaled by every weight 1 - pi within ``margin`` of the given one (pi
    computed in bf16 can differ from the sampler's by a little), so the interval
    covers the change whenever the strata's intervals cover p_t and p_alt.
    """
    low, high = delta_interval(alternative, after, confidence)
    w = 1 - sampling_prob
    weights = (max(0.0, w - margin), min(1.0, w + margin))
    return min(x * low for x in weights), max(x * high for x in weights)


def futile(
    before: Estimate, after: Estimate, threshold: float, cap: int, level: float, power: float = FUTILITY_POWER
) -> bool:
    """True when the candidate is unlikely to be kept by the cap.

    If the true change were the current estimate, the change measured with
    ``cap`` rollouts per end would have to exceed the threshold by the cap's
    interval half-width; futile when that happens less than ``power`` of the
    time (normal approximation).
    """
    half = math.hypot(*(_half_width(e, cap, level) for e in (before, after)))
    return futile_change(abs(after.p - before.p), half, threshold, level, power)


def futile_change(delta: float, half: float, threshold: float, level: float, power: float = FUTILITY_POWER) -> bool:
    """:func:`futile` for an estimated change ``delta`` whose interval at the cap would have half-width ``half``."""
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
    estimator: PooledEstimator,
    candidates: Sequence[Candidate],
    *,
    threshold: float,
    cap: int,
    confidence: float,
    margin: float = 0.0,
) -> list[Verdict]:
    """Verdicts for ``candidates`` (in order), from ``estimator``'s rollouts only.

    A candidate with a ``sampling_prob`` is measured by strata: p_t from
    rollouts through the context + token, p_alt from rollouts from the context
    whose first token is another (drawn with the token excluded when the engine
    can), and the change is (1 - pi)(p_t - p_alt) (:func:`stratified_interval`,
    ``margin`` on pi). Others, spans among them, are measured at both ends: each look samples the
    contexts before the pivots first, then the contexts after them, so that
    rollouts which took the pivot token (or span) count for the second.
    """
    looks = rounds(cap)
    level = 1 - (1 - confidence) / len(looks)
    verdicts: list[Verdict | None] = [None] * len(candidates)
    pending = list(range(len(candidates)))
    for look, target in enumerate(looks, start=1):
        plain = [k for k in pending if not candidates[k].by_strata]
        strata = [k for k in pending if candidates[k].by_strata]
        befores = [candidates[k].context for k in plain]
        afters = [candidates[k].after for k in plain]
        estimator.estimate(befores, samples=target)
        estimator.estimate(afters + [candidates[k].context + (candidates[k].token_id,) for k in strata], samples=target)
        estimator.sample_alternatives(
            [
                (candidates[k].context, candidates[k].token_id, target)
                for k in strata
                if not _exact_before(estimator, candidates[k])
            ],
            [candidates[k].sampling_prob for k in strata if not _exact_before(estimator, candidates[k])],
        )
        still = []
        measured = {}
        # Read both ends again: one candidate's after can be another's before, topped up by the second call.
        for k, before, after in zip(
            plain, estimator.estimate(befores, samples=target), estimator.estimate(afters, samples=target)
        ):
            low, high = delta_interval(before, after, level)
            half = math.hypot(*(_half_width(e, cap, level) for e in (before, after)))
            measured[k] = (before, after, low, high, after.p - before.p, half, None)
        for k in strata:
            c = candidates[k]
            pi = c.sampling_prob
            (after,) = estimator.estimate([c.context + (c.token_id,)], samples=target)
            exact = _exact_before(estimator, c)
            if exact is not None:  # p(C) known without sampling: the change is known as exactly as p_t
                before = exact
                low, high = delta_interval(before, after, level)
                half = _half_width(after, cap, level)
                delta = after.p - before.p
            else:
                alt = estimator.alternative(c.context, c.token_id)
                low, high = stratified_interval(after, alt, pi, level, margin)
                half = (1 - pi) * math.hypot(_half_width(after, cap, level), _half_width(alt, cap, level))
                delta = (1 - pi) * (after.p - alt.p)
                before = Estimate(
                    alt.successes,
                    alt.samples,
                    first_tokens=estimator.evidence.estimate(c.context).first_tokens,
                    pooled=alt.pooled,
                    exact=pi * after.p + (1 - pi) * alt.p,
                )
            measured[k] = (before, after, low, high, delta, half, pi)
        for k in pending:
            before, after, low, high, delta, half, _ = measured[k]
            verdict = settle(low, high, threshold)
            if verdict is True:
                reason = "moves"
            elif verdict is False:
                reason = "small"
            elif look == len(looks):
                reason = "cap"
            elif futile_change(abs(delta), half, threshold, level, FUTILITY_POWER / (5 if look == 1 else 1)):
                reason = "futile"
            else:
                still.append(k)
                continue
            verdicts[k] = Verdict(reason == "moves", reason, before, after, (low, high), level, look)
        pending = still
    return [v for v in verdicts if v is not None]


def _exact_before(estimator: PooledEstimator, candidate: Candidate) -> Estimate | None:
    """p(context) when known without sampling (it ends the response, or every next token does)."""
    estimator.exact([candidate.context])
    return estimator.known(candidate.context)
