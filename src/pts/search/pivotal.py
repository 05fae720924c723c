"""Pivotal Token Search (Phi-4 Technical Report, arXiv 2412.08905, section 4.3).

Given a sampled solution t_1..t_n, recursively split it until every segment
either holds one token or does not move p(success) by the threshold; single
tokens that move p by at least the threshold are pivotal.

The recursion only ever asks for p at segment boundaries, which are positions
in the solution known in advance, so it is evaluated level by level: every
estimate one level needs goes to the engine in one call. The segments it ends
with are the same as the depth-first recursion's, since each segment's fate
depends only on p at its two ends. Whether a segment moves p is decided by a
``decide`` callable: from fixed-size estimates (:class:`PointDecider`) or by
sampling in rounds until a confidence interval settles it (:class:`IntervalDecider`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from pts.search.estimate import Estimate
from pts.stats import wilson_interval

SplitAt = Literal["logprob", "middle"]

# p values are ratios of small integers: 0.6 - 0.4 must count as a 0.2 change.
_EPS = 1e-9


def moves(p_before: float, p_after: float, threshold: float) -> bool:
    """True when p changes by at least ``threshold``."""
    return abs(p_after - p_before) >= threshold - _EPS


def split_point(start: int, end: int, split_at: SplitAt, surprisal: Sequence[float] | None) -> int:
    """Where to split the segment [start, end) of at least two tokens.

    ``"middle"`` halves the token count. ``"logprob"`` (the Phi-4 report's rule)
    halves the cumulative log-probability: ``surprisal[i]`` is
    -sum(logprob[:i]); ties go to the position nearest the token middle.
    """
    middle = start + (end - start) // 2
    if split_at == "middle" or surprisal is None:
        return middle
    target = (surprisal[start] + surprisal[end]) / 2
    return min(range(start + 1, end), key=lambda i: (abs(surprisal[i] - target), abs(i - middle)))


def cumulative_surprisal(logprobs: Sequence[float]) -> list[float]:
    out = [0.0]
    for lp in logprobs:
        out.append(out[-1] - lp)
    return out


@dataclass
class PivotalCandidate:
    """A pivotal token as the search finds it, before verification and before it is written as a
    :class:`pts.records.PivotalToken`: token ``solution[position]`` moved p from ``before.p`` to ``after.p``.

    A pivotal span has ``length`` > 1: the tokens ``solution[position:position + length]`` together moved p
    (``before`` at ``position``, ``after`` at ``position + length``) while none of them alone did; ``token_id``
    is its first token.
    """

    position: int
    token_id: int
    before: Estimate
    after: Estimate
    length: int = 1

    @property
    def delta(self) -> float:
        return self.after.p - self.before.p


Segment = tuple[int, int]
EstimatePositions = Callable[[list[int], int], list[Estimate]]


def interval(est: Estimate, confidence: float) -> tuple[float, float]:
    """The interval of p behind ``est``: a point for a terminal (exactly judged) prefix."""
    return (est.p, est.p) if est.terminal else wilson_interval(est.successes, est.samples, confidence)


class PointDecider:
    """Decides whether a segment moves p from one estimate of ``samples`` rollouts at each end.

    ``estimate_positions(positions, samples)`` returns estimates of
    p(success | solution[:i]) for each position; ``known`` keeps them by position.
    """

    def __init__(self, estimate_positions: EstimatePositions, threshold: float, samples: int) -> None:
        self.estimate_positions = estimate_positions
        self.threshold = threshold
        self.samples = samples
        self.known: dict[int, Estimate] = {}

    def __call__(self, segments: list[Segment]) -> list[bool]:
        need = sorted({i for seg in segments for i in seg} - self.known.keys())
        if need:
            self.known.update(zip(need, self.estimate_positions(need, self.samples)))
        return [moves(self.known[s].p, self.known[e].p, self.threshold) for s, e in segments]


class IntervalDecider(PointDecider):
    """Samples in rounds until a confidence interval settles each segment (adaptive sampling).

    A segment is settled once the interval of p(after) - p(before) lies wholly at
    or beyond the threshold (it moves) or wholly inside it (it does not). Each end
    gets ``1 - (1 - confidence) / 2`` so the difference holds at ``confidence``.
    Unsettled ends get more rollouts, doubling up to the ``samples`` cap, where
    the point estimates decide exactly as :class:`PointDecider` would.
    """

    def __init__(
        self,
        estimate_positions: EstimatePositions,
        threshold: float,
        samples: int,
        confidence: float,
        first_round: int = 4,
    ) -> None:
        super().__init__(estimate_positions, threshold, samples)
        self.end_confidence = 1 - (1 - confidence) / 2
        self.first_round = min(first_round, samples)

    def settle(self, before: Estimate, after: Estimate) -> bool | None:
        lo_b, hi_b = interval(before, self.end_confidence)
        lo_a, hi_a = interval(after, self.end_confidence)
        low, high = lo_a - hi_b, hi_a - lo_b
        t = self.threshold - _EPS
        if low >= t or high <= -t:
            return True
        if -t < low and high < t:
            return False
        return None

    def __call__(self, segments: list[Segment]) -> list[bool]:
        verdicts: list[bool | None] = [None] * len(segments)
        pending = list(range(len(segments)))
        target = self.first_round
        while pending:
            need = sorted({i for k in pending for i in segments[k]})
            self.known.update(zip(need, self.estimate_positions(need, target)))
            still = []
            for k in pending:
                before, after = (self.known[i] for i in segments[k])
                verdict = self.settle(before, after)
                if verdict is None and all(e.terminal or e.samples >= self.samples for e in (before, after)):
                    verdict = moves(before.p, after.p, self.threshold)
                if verdict is None:
                    still.append(k)
                else:
                    verdicts[k] = verdict
            pending = still
            target = min(self.samples, target * 2)
        return [bool(v) for v in verdicts]


def subdivide(
    solution: Sequence[int],
    decide: Callable[[list[Segment]], list[bool]],
    *,
    split_at: SplitAt = "logprob",
    logprobs: Sequence[float] | None = None,
) -> tuple[list[Segment], dict[Segment, bool]]:
    """Split ``solution`` into segments [start, end) as Phi-4's Subdivide does.

    ``decide(segments)`` says for each segment whether p changes across it by at
    least the threshold; it is called once per recursion level with every
    segment of that level (one-token ones too, whose verdict makes them pivotal).
    Returns the final segments in order and every verdict.
    """
    surprisal = cumulative_surprisal(logprobs) if logprobs is not None and split_at == "logprob" else None
    verdicts: dict[Segment, bool] = {}
    level = [(0, len(solution))] if solution else []
    final: list[Segment] = []
    while level:
        verdicts.update(zip(level, decide(level)))
        next_level = []
        for s, e in level:
            if e - s <= 1 or not verdicts[(s, e)]:
                final.append((s, e))
            else:
                m = split_point(s, e, split_at, surprisal)
                next_level += [(s, m), (m, e)]
        level = next_level
    final.sort()
    return final, verdicts


def possible_positions(
    sampling_logprobs: Sequence[float] | None, threshold: float, margin: float = 0.0
) -> list[bool] | None:
    """Which positions of a solution can hold a pivot: ``1 - pi(token) >= threshold - margin``.

    ``pi`` is the token's probability under the sampling distribution; since
    |p(C + t) - p(C)| <= 1 - pi(t | C) (docs/search.md), any other position
    cannot move p by the threshold. None (no bound) when the probabilities are unknown.
    """
    if sampling_logprobs is None:
        return None
    return [1 - math.exp(lp) >= threshold - margin - _EPS for lp in sampling_logprobs]


def span_bound(
    sampling_logprobs: Sequence[float] | None, threshold: float, margin: float = 0.0
) -> Callable[[int, int], bool] | None:
    """Which runs of tokens ``[start, end)`` of a solution can hold a pivotal span: ``1 - pi(span) >= threshold -
    margin``, pi(span) the product of its tokens' sampling probabilities.

    The bound of :func:`possible_positions` holds for a run of tokens as for one, by the same argument with the
    run as one step: |p(C + span) - p(C)| <= 1 - pi(span | C). None (no bound) when the probabilities are unknown.
    """
    if sampling_logprobs is None:
        return None
    cumulative = [0.0]
    for lp in sampling_logprobs:
        cumulative.append(cumulative[-1] + lp)
    return lambda start, end: 1 - math.exp(cumulative[end] - cumulative[start]) >= threshold - margin - _EPS


def seam_windows(
    region: Segment,
    decided: Sequence[Segment],
    max_span: int,
    can_hold: Callable[[int, int], bool] | None,
) -> list[Segment]:
    """The runs of 2..``max_span`` tokens in ``region`` that can hold a change the ``decided`` segments in it
    (each found not to move p) do not show: every run not inside one of them (it crosses a boundary between
    them, or lies in a stretch the bound left out of them) that the span bound ``can_hold`` (None: every run)
    allows."""
    s, e = region
    out = []
    for a in range(s, e - 1):
        for b in range(a + 2, min(e, a + max_span) + 1):
            if any(cs <= a and b <= ce for cs, ce in decided):
                continue
            if can_hold is None or can_hold(a, b):
                out.append((a, b))
    return out


def find_pivots_many(
    solutions: Sequence[Sequence[int]],
    decide: PointDecider,
    *,
    split_at: SplitAt = "logprob",
    logprobs: Sequence[Sequence[float] | None] | None = None,
    possible: Sequence[Sequence[bool] | None] | None = None,
    direct_at_most: int = 0,
    max_span: int = 1,
    spans_possible: Sequence[Callable[[int, int], bool] | None] | None = None,
) -> list[list[PivotalCandidate]]:
    """The pivotal tokens of several solutions, searched level by level together.

    Positions are keys ``(k, i)``: position ``i`` of ``solutions[k]``. Every
    estimate that one level of every solution needs goes to ``decide`` in one
    call, so the engine gets few large calls instead of many small ones; each
    solution's segments are the ones :func:`subdivide` finds for it alone.

    ``possible[k]`` (from :func:`possible_positions`; None: every position)
    says where solution ``k`` can hold a pivot. A segment with no possible
    position is closed without an estimate; one with at most ``direct_at_most``
    is replaced by its possible one-token segments, each estimated directly
    (which also finds pivots of opposite sign that cancel inside the segment);
    a larger one is cut down to the span of its possible positions, decided,
    and, when it moves p, split between the middle two of them.

    Pivotal spans (``max_span`` >= 2): the subdivision ends with segments that do not move p, but a run of
    tokens across the boundary between two of them (or in the stretch the bound left out between them) can:
    each half of it moves p too little for its segment to move. So every two consecutive final segments of a
    solution with no pivot between them are decided as one segment, from the estimates at their outer ends
    (a *seam*). Where a seam moves p, every run of 2..``max_span`` tokens in it that could hold the change
    (:func:`seam_windows`; ``spans_possible[k]`` from :func:`span_bound`) is decided, with each single token
    inside those runs, in one more call. A single token that moves p is a pivot as usual; otherwise the
    shortest runs that move p (then the larger change, then the earlier), not overlapping each other, are
    pivotal spans (:class:`PivotalCandidate` with ``length`` > 1).
    """
    logprobs = logprobs or [None] * len(solutions)
    possible = possible or [None] * len(solutions)
    surprisal = [cumulative_surprisal(lp) if lp is not None and split_at == "logprob" else None for lp in logprobs]
    verdicts: dict[tuple[tuple[int, int], tuple[int, int]], bool] = {}

    def expand(k: int, s: int, e: int) -> list[tuple[tuple[int, int], tuple[int, int]]]:
        """The segments to decide for [s, e) of solution k, after the bound."""
        if possible[k] is None:
            return [((k, s), (k, e))]
        where = [i for i in range(s, e) if possible[k][i]]
        if not where:
            return []
        if len(where) <= direct_at_most:
            return [((k, i), (k, i + 1)) for i in where]
        return [((k, where[0]), (k, where[-1] + 1))]

    level = [seg for k, sol in enumerate(solutions) if sol for seg in expand(k, 0, len(sol))]
    final: list[tuple[tuple[int, int], tuple[int, int]]] = []
    while level:
        level = list(dict.fromkeys(level))
        verdicts.update(zip(level, decide(level)))
        next_level = []
        for (k, s), (_, e) in level:
            if e - s <= 1 or not verdicts[((k, s), (k, e))]:
                final.append(((k, s), (k, e)))
            else:
                if possible[k] is None:
                    m = split_point(s, e, split_at, surprisal[k])
                else:
                    where = [i for i in range(s, e) if possible[k][i]]
                    m = where[len(where) // 2]
                next_level += expand(k, s, m) + expand(k, m, e)
        level = next_level
    out: list[list[PivotalCandidate]] = [[] for _ in solutions]
    for start, end in sorted(set(final)):
        (k, s), (_, e) = start, end
        if e - s == 1 and verdicts[(start, end)]:
            out[k].append(PivotalCandidate(s, solutions[k][s], decide.known[start], decide.known[end]))
    if max_span >= 2:
        ends = sorted(set(final))
        spans_possible = spans_possible or [None] * len(solutions)
        for k, pivot in _seam_pivots(ends, verdicts, decide, possible, spans_possible, max_span, solutions):
            out[k].append(pivot)
        for pivots in out:
            pivots.sort(key=lambda p: (p.position, p.length))
    return out


def _seam_pivots(
    final: list[tuple[tuple[int, int], tuple[int, int]]],
    verdicts: dict[tuple[tuple[int, int], tuple[int, int]], bool],
    decide: PointDecider,
    possible: Sequence[Sequence[bool] | None],
    spans_possible: Sequence[Callable[[int, int], bool] | None],
    max_span: int,
    solutions: Sequence[Sequence[int]],
) -> list[tuple[int, PivotalCandidate]]:
    """The pivots (``(solution index, pivot)``) found at the seams between the ``final`` segments of the
    subdivision (in order, with their ``verdicts``): see :func:`find_pivots_many`. Two more calls to ``decide``:
    the seams, then the runs and single tokens of those that move."""
    seams = []
    for (start, end), (nxt_start, nxt_end) in zip(final, final[1:]):
        (k, s), (_, e) = start, end
        (k2, s2), (_, e2) = nxt_start, nxt_end
        if k2 == k and not verdicts[(start, end)] and not verdicts[(nxt_start, nxt_end)]:
            seams.append((k, (s, e), (s2, e2)))
    if not seams:
        return []
    moving = decide([((k, a[0]), (k, b[1])) for k, a, b in seams])
    runs: dict[int, list[tuple[int, int]]] = {}
    for (k, a, b), moved in zip(seams, moving):
        if moved:
            runs.setdefault(k, []).extend(seam_windows((a[0], b[1]), [a, b], max_span, spans_possible[k]))
    runs = {k: list(dict.fromkeys(ws)) for k, ws in runs.items()}
    asked = [((k, a), (k, b)) for k, ws in runs.items() for a, b in ws]
    asked += [
        ((k, i), (k, i + 1))
        for k, ws in runs.items()
        for a, b in ws
        for i in range(a, b)
        if possible[k] is None or possible[k][i]
    ]
    asked = list(dict.fromkeys(asked))
    if not asked:
        return []
    moved = dict(zip(asked, decide(asked)))
    known = decide.known
    found: list[tuple[int, PivotalCandidate]] = []
    for k, ws in runs.items():
        moving_runs = [(a, b) for a, b in ws if moved[((k, a), (k, b))]]
        tokens = sorted({i for a, b in moving_runs for i in range(a, b) if moved.get(((k, i), (k, i + 1)))})
        found += [(k, PivotalCandidate(i, solutions[k][i], known[(k, i)], known[(k, i + 1)])) for i in tokens]
        taken = [(i, i + 1) for i in tokens]
        changes = {(a, b): abs(known[(k, b)].p - known[(k, a)].p) for a, b in moving_runs}
        for a, b in sorted(moving_runs, key=lambda w: (w[1] - w[0], -changes[w], w[0])):
            if all(b <= ts or te <= a for ts, te in taken):
                taken.append((a, b))
                found.append((k, PivotalCandidate(a, solutions[k][a], known[(k, a)], known[(k, b)], length=b - a)))
    return found


def find_pivots(
    solution: Sequence[int],
    decide: PointDecider,
    *,
    split_at: SplitAt = "logprob",
    logprobs: Sequence[float] | None = None,
) -> list[PivotalCandidate]:
    """The pivotal tokens of ``solution``, in order of position."""
    segments, verdicts = subdivide(solution, decide, split_at=split_at, logprobs=logprobs)
    return [
        PivotalCandidate(s, solution[s], decide.known[s], decide.known[e])
        for s, e in segments
        if e - s == 1 and verdicts[(s, e)]
    ]
