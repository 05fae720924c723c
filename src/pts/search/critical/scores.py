"""One trajectory's token scores as a shared estimator knows them, with the decisions already certain."""

from __future__ import annotations

from collections.abc import Generator, Sequence

from pts.search.critical.rule import SCORE_EPS
from pts.search.critical.settings import CriticalSettings
from pts.search.critical.staged import StagedEstimator
from pts.search.estimate import Estimate, Prefix


class TrajectoryScores:
    """The score of token i is the estimate of the prefix ``response[:i + 1]`` in ``est``'s cache.

    Many trajectories of a query share one estimator, so a prefix they have in
    common is sampled once. ``possible`` (one bool per token, from
    :func:`~pts.search.critical.bound.possible_critical_positions`; None: all)
    says which tokens can be critical: the modes see only those, as positions
    ``0 .. length - 1`` of this view (:meth:`token_index` maps one back to the
    trajectory), so the others are never sampled.
    """

    def __init__(
        self,
        est: StagedEstimator,
        response: Sequence[int],
        settings: CriticalSettings,
        possible: Sequence[bool] | None = None,
    ) -> None:
        self.est = est
        self.response = tuple(response)
        self.k = settings.rollouts
        self.tau = settings.low_threshold
        if possible is not None and len(possible) != len(self.response):
            raise ValueError(f"possible has {len(possible)} entries for {len(self.response)} tokens")
        self.positions = tuple(i for i in range(len(self.response)) if possible is None or possible[i])

    @property
    def length(self) -> int:
        """Positions the modes look at: the tokens that can be critical."""
        return len(self.positions)

    def token_index(self, i: int | None) -> int | None:
        """The trajectory's token index of this view's position ``i``."""
        return None if i is None else self.positions[i]

    def prefix(self, i: int) -> Prefix:
        return self.response[: self.positions[i] + 1]

    def ends_in_a_skipped_zero(self) -> Generator[dict[Prefix, int], None, bool]:
        """Whether the trajectory's last token is one this view skips and scores 0 exactly (a terminal prefix,
        judged without rollouts): a free zero after every position of the view, as the search's anchor."""
        n = len(self.response)
        if n == 0 or (self.positions and self.positions[-1] == n - 1):
            return False
        e = self.est.cache.get(self.response)
        if e is None:
            yield {self.response: 0}  # asks for no samples: a terminal prefix is judged, nothing is sampled
            e = self.est.cache.get(self.response)
        return e is not None and e.terminal and e.successes == 0

    def estimates(self) -> list[Estimate | None]:
        """The estimate behind every token of the trajectory (None where nothing was sampled)."""
        out: list[Estimate | None] = []
        for i in range(len(self.response)):
            e = self.est.cache.get(self.response[: i + 1])
            out.append(e if e is not None and (e.terminal or e.samples > 0) else None)
        return out

    def get(self, i: int) -> Estimate | None:
        return self.est.cache.get(self.prefix(i))

    def need(
        self, positions: Sequence[int], samples: int, more: Sequence[tuple[Sequence[int], int]] = ()
    ) -> Generator[dict[Prefix, int], None, None]:
        """Yield one ask for the positions with fewer than ``samples`` rollouts (none when all have enough).

        ``more`` adds other (positions, samples) pairs to the same ask.
        """
        targets: dict[Prefix, int] = {}
        for group, n in ((positions, samples), *more):
            for i in group:
                e = self.get(i)
                if e is None or (not e.terminal and e.samples < n):
                    targets[self.prefix(i)] = max(n, targets.get(self.prefix(i), 0))
        if targets:
            yield targets

    def settled(self, i: int, question: str) -> bool:
        """Whether ``question`` about position i's score of K is already certain from the rollouts drawn.

        ``"nonzero"``: a success was seen (yes) or all K rollouts were drawn. ``"violation"`` (above the
        threshold): more successes than the threshold allows of K were seen (yes), or the draws left cannot
        bring that many (no), or all K were drawn.
        """
        e = self.get(i)
        if e is None:
            return False
        if self.full(i):
            return True
        if question == "nonzero":
            return e.successes > 0
        if question == "violation":
            return self.violation(i) or e.successes + (self.k - e.samples) <= self.tau * self.k + SCORE_EPS
        raise ValueError(f"unknown question {question!r}")

    def settle(
        self, positions: Sequence[int], question: str, cap: int | None = None
    ) -> Generator[dict[Prefix, int], None, None]:
        """Draw the positions' rollouts one stage at a time (one ask per stage for all of them) until ``question``
        (see :meth:`settled`) is certain at each, or it holds ``cap`` rollouts (default K).

        The exact sequential stop: a score is drawn only as far as its question needs. Stages are the
        estimator's, so the rollouts drawn are the first ones the scan draws there.
        """
        cap = self.k if cap is None else cap
        while True:
            targets: dict[Prefix, int] = {}
            for i in positions:
                e = self.get(i)
                have = 0 if e is None else e.samples
                if e is not None and (e.terminal or have >= cap or self.settled(i, question)):
                    continue
                nxt = min([n for n in self.est.stages if n > have] + [cap])
                targets[self.prefix(i)] = min(nxt, cap)
            if not targets:
                return
            yield targets

    def stage_at_least(self, n: int) -> int:
        """The smallest stage of the estimator holding at least ``n`` rollouts (K when none does)."""
        return min([m for m in self.est.stages if m >= n] + [self.k])

    def passed(self, i: int) -> Estimate:
        """Rollouts that went through position i's prefix: drawn there, or (when the estimator tracks the
        trajectories, see :meth:`StagedEstimator.track`) drawn at an earlier position and then wrote the
        tokens up to it: by the chain rule of sampling, draws from p there as well. Untracked: i's own."""
        if self.est.evidence is None:
            e = self.get(i)
            return Estimate(0, 0) if e is None else e
        return self.est.passed(self.prefix(i))

    def full(self, i: int) -> bool:
        e = self.get(i)
        return e is not None and (e.terminal or e.samples >= self.k)

    def zero(self, i: int) -> bool:
        """Score 0 at K rollouts (or judged exactly)."""
        e = self.get(i)
        return self.full(i) and e.successes == 0

    def nonzero(self, i: int) -> bool:
        e = self.get(i)
        return e is not None and e.successes > 0

    def violation(self, i: int) -> bool:
        """Certainly above the threshold: already more successes than the threshold allows of K."""
        e = self.get(i)
        if e is None:
            return False
        if self.full(i):
            return e.successes > self.tau * e.samples + SCORE_EPS
        return e.successes > self.tau * self.k + SCORE_EPS

    def score(self, i: int) -> float | None:
        e = self.get(i)
        return e.successes / e.samples if self.full(i) else None

    def rollouts(self) -> int:
        """Rollouts behind this trajectory's scores (terminal positions cost none)."""
        return sum(e.samples for e in self.estimates() if e is not None and not e.terminal)


ScoreSteps = Generator[dict[Prefix, int], None, tuple[int | None, str]]
"""A mode's step generator: yields the samples it wants per prefix, returns ``(position, rule)``."""
