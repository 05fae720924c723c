"""The paper's mode: K rollouts at every token, then the rule on the full score list."""

from __future__ import annotations

from pts.search.critical.rule import critical_position
from pts.search.critical.scores import ScoreSteps, TrajectoryScores
from pts.search.critical.settings import CriticalSettings


def scan(view: TrajectoryScores, s: CriticalSettings) -> ScoreSteps:
    """Score every token with all K rollouts (one ask) and apply :func:`critical_position`."""
    yield from view.need(range(view.length), s.rollouts)
    return critical_position([view.score(i) for i in range(view.length)], s.low_threshold)
