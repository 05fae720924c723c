"""The paper's rule: the critical token of a fully scored trajectory."""

from __future__ import annotations

from collections.abc import Sequence

RULE_FIRST_ZERO = "first_zero_then_low"
RULE_LAST_ZERO = "last_zero"
RULE_NONE = "none"

# Scores are ratios of small integers; 3/64 against 0.05 must not flip on float noise.
SCORE_EPS = 1e-9


def critical_position(scores: Sequence[float], low_threshold: float = 0.05) -> tuple[int | None, str]:
    """The critical token of a fully scored trajectory: ``(position, rule)``.

    Reads the authors' released analysis code literally: walking left to right,
    the first zero score opens a candidate; a later score above
    ``low_threshold`` drops it (remembering it as the last dropped candidate)
    and the next zero opens a new one. A candidate still open at the end is
    the paper's critical token (``"first_zero_then_low"``: the first zero after
    which every later score is at most the threshold); otherwise the last
    dropped candidate (``"last_zero"``); with no zero at all, ``(None, "none")``.
    """
    candidate: int | None = None
    dropped: int | None = None
    for i, s in enumerate(scores):
        if s is None:
            raise ValueError(f"position {i} has no score")
        if s == 0 and candidate is None:
            candidate = i
        elif candidate is not None and s > low_threshold + SCORE_EPS:
            dropped, candidate = candidate, None
    if candidate is not None:
        return candidate, RULE_FIRST_ZERO
    if dropped is not None:
        return dropped, RULE_LAST_ZERO
    return None, RULE_NONE
