"""Pivotal Token Search (Phi-4 Technical Report, arXiv 2412.08905, section 4.3).

Given a sampled solution t_1..t_n, recursively split it until every segment
either holds one token or does not move p(success) by the threshold; single
tokens that move p by at least the threshold are pivotal.

The recursion only ever asks for p at segment boundaries, which are positions
in the solution known in advance, so it is evaluated level by level: every
estimate one level needs goes to the engine in one call. The segments it ends
with are the same as the depth-first recursion's, since each segment's fate
depends only on p at its two ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal, Sequence

from pts.search.estimate import Estimate

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
class Pivot:
    """Token ``solution[position]`` moved p from ``before.p`` to ``after.p``."""

    position: int
    token_id: int
    before: Estimate
    after: Estimate

    @property
    def delta(self) -> float:
        return self.after.p - self.before.p


def subdivide(
    solution: Sequence[int],
    estimate_positions: Callable[[list[int]], list[Estimate]],
    threshold: float,
    *,
    split_at: SplitAt = "logprob",
    logprobs: Sequence[float] | None = None,
) -> tuple[list[tuple[int, int]], dict[int, Estimate]]:
    """Split ``solution`` into segments [start, end) as Phi-4's Subdivide does.

    ``estimate_positions(ps)`` returns the estimate of p(success | solution[:i])
    for each i in ``ps``; it is called once per recursion level. Returns the
    final segments in order and every estimate that was asked for, by position.
    """
    surprisal = cumulative_surprisal(logprobs) if logprobs is not None and split_at == "logprob" else None
    known: dict[int, Estimate] = {}
    level = [(0, len(solution))] if solution else []
    final: list[tuple[int, int]] = []
    while level:
        # One-token segments end the recursion but their ends are still needed to judge them.
        need = sorted({i for s, e in level for i in (s, e)} - known.keys())
        if need:
            known.update(zip(need, estimate_positions(need)))
        next_level = []
        for s, e in level:
            if e - s <= 1 or not moves(known[s].p, known[e].p, threshold):
                final.append((s, e))
            else:
                m = split_point(s, e, split_at, surprisal)
                next_level += [(s, m), (m, e)]
        level = next_level
    final.sort()
    return final, known


def find_pivots(
    solution: Sequence[int],
    estimate_positions: Callable[[list[int]], list[Estimate]],
    threshold: float,
    *,
    split_at: SplitAt = "logprob",
    logprobs: Sequence[float] | None = None,
) -> list[Pivot]:
    """The pivotal tokens of ``solution``, in order of position."""
    segments, known = subdivide(solution, estimate_positions, threshold, split_at=split_at, logprobs=logprobs)
    return [
        Pivot(s, solution[s], known[s], known[e])
        for s, e in segments
        if e - s == 1 and moves(known[s].p, known[e].p, threshold)
    ]
