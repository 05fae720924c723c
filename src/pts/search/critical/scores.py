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
    common is sampled once.
    """

    def __init__(self, est: StagedEstimator, response: Sequence[int], settings: CriticalSettings) -> None:
        self.est = est
        self.response = tuple(response)
        self.k = settings.rollouts
        self.tau = settings.low_threshold

    @property
    def length(self) -> int:
        return len(self.response)

    def prefix(self, i: int) -> Prefix:
        return self.response[: i + 1]

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
        total = 0
        for i in range(self.length):
            e = self.get(i)
            if e is not None and not e.terminal:
                total += e.samples
        return total


ScoreSteps = Generator[dict[Prefix, int], None, tuple[int | None, str]]
"""A mode's step generator: yields the samples it wants per prefix, returns ``(position, rule)``."""
