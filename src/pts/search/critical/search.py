"""The search mode: the scan's critical token by bisection and probes, from far fewer rollouts."""

from __future__ import annotations

from pts.search.critical.rule import RULE_FIRST_ZERO, RULE_LAST_ZERO, RULE_NONE
from pts.search.critical.scores import ScoreSteps, TrajectoryScores
from pts.search.critical.settings import CriticalSettings


def search(view: TrajectoryScores, s: CriticalSettings) -> ScoreSteps:
    """The scan's answer from far fewer positions; exact when scores do not increase along the trajectory.

    1. The last zero: walk back from the end (free when the response ends in a
       terminal token, which is judged exactly).
    2. Bisection between the start and a known zero for a nonzero -> zero step.
    3. Walk left from that step through low scores to the last score above the
       threshold, keeping the leftmost zero passed (catches zeros that the
       bisection jumped over).
    4. Check that later scores stay low: the first ``verify_full`` tokens after
       the candidate with all K rollouts, every ``verify_stride``-th one after
       that with a probe (escalated only when it sees a success). A score above
       the threshold there moves the search after it (back to 2).
    """
    k, probe = s.rollouts, s.probe

    def decide(i: int, stop_at_violation: bool):
        # Probe first; escalate to K only when the probe cannot settle the question asked.
        yield from view.need([i], probe)
        settled = view.violation(i) if stop_at_violation else view.nonzero(i)
        if not settled:
            yield from view.need([i], k)

    last_zero, late_violation = None, False
    # With the bound, the trajectory's closing tokens (certain: pi near 1) are skipped; when the last one is a
    # judged failure it is a free zero just after the view, as the closing token is without the bound.
    if (yield from view.ends_in_a_skipped_zero()):
        last_zero = view.length
    for i in range(view.length - 1 if last_zero is None else -1, -1, -1):
        yield from decide(i, stop_at_violation=False)
        if view.zero(i):
            last_zero = i
            break
        if not view.violation(i):
            yield from view.need([i], k)
        late_violation |= view.violation(i)
    if last_zero is None:
        return None, RULE_NONE
    rule = RULE_LAST_ZERO if late_violation else RULE_FIRST_ZERO

    lo, hi = -1, last_zero  # lo: a nonzero score (or the start), hi: a zero (view.length: the free one after it)
    dropped = None  # the last candidate a later score above the threshold dropped
    while True:
        while hi - lo > 1:
            mid = (lo + hi) // 2
            yield from decide(mid, stop_at_violation=False)
            if view.zero(mid):
                hi = mid
            else:
                lo = mid
        answer = hi
        for j in range(hi - 1, -1, -1):
            yield from decide(j, stop_at_violation=True)
            if view.violation(j):
                break
            if view.zero(j):
                answer = j
        # On a falling curve the tail's highest scores sit right after the candidate: score the first few
        # not already known to be zero fully, probe the rest.
        band = [p for p in range(answer + 1, last_zero) if not view.zero(p)][: s.verify_full]
        probes = [p for p in range(answer + s.verify_stride, last_zero, s.verify_stride) if p not in band]
        yield from view.need(probes, probe, more=[(band, k)])
        unsure = [p for p in probes if view.nonzero(p) and not view.violation(p)]
        yield from view.need(unsure, k)
        later = [p for p in range(answer + 1, last_zero) if view.violation(p)]
        if answer == view.length:  # no zero among the positions the bound allows after the last drop
            return (dropped, RULE_LAST_ZERO) if dropped is not None else (None, RULE_NONE)
        if not later:
            return answer, rule
        dropped, lo, hi = answer, max(later), last_zero
