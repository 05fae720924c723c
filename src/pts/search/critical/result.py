"""What scoring one incorrect trajectory found: its critical token, scores and Pass@k counts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pts.search.estimate import Estimate
from pts.stats import pass_at_k_curve


@dataclass
class CriticalResult:
    """What scoring one incorrect trajectory found.

    ``estimates[i]`` is the estimate behind the score of ``response_ids[i]``
    (``None`` where not sampled). ``rollouts`` counts the rollouts behind these
    scores (as if the trajectory were scored alone). ``alternatives`` maps
    each alternative token drawn at the critical position to ``[count,
    successes]``.
    """

    response_ids: tuple[int, ...]
    position: int | None
    rule: str
    estimates: list[Estimate | None]
    rollouts: int
    low_threshold: float
    samples_with: int = 0
    successes_with: int = 0
    alternatives: dict[int, list[int]] = field(default_factory=dict)
    alternatives_support: str = ""
    pass_at_k_rollouts: int = 0

    @property
    def token_id(self) -> int | None:
        return None if self.position is None else self.response_ids[self.position]

    @property
    def scores(self) -> list[float | None]:
        return [None if e is None else e.successes / e.samples for e in self.estimates]

    @property
    def score(self) -> float | None:
        return None if self.position is None else self.scores[self.position]

    @property
    def samples_without(self) -> int:
        return sum(c for c, _ in self.alternatives.values())

    @property
    def successes_without(self) -> int:
        return sum(k for _, k in self.alternatives.values())

    @property
    def pass_at_k_with(self) -> list[float]:
        return pass_at_k_curve(self.samples_with, self.successes_with)

    @property
    def pass_at_k_without(self) -> list[float]:
        return pass_at_k_curve(self.samples_without, self.successes_without)

    def pass_at_k_fields(self) -> dict[str, Any]:
        """The Pass@k fields of its :class:`~pts.records.CriticalToken` record: each curve where it was measured
        (keeping the token: when there is one; replacing it: when alternatives were drawn), and the counts."""
        return {
            "pass_at_k_with": self.pass_at_k_with if self.position is not None else [],
            "pass_at_k_without": self.pass_at_k_without if self.alternatives else [],
            "samples_with": self.samples_with,
            "successes_with": self.successes_with,
            "samples_without": self.samples_without,
            "successes_without": self.successes_without,
            "pass_at_k_rollouts": self.pass_at_k_rollouts,
        }
