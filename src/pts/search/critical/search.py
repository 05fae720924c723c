"""The search mode: the scan's critical token by bisection and probes, from far fewer rollouts."""

from __future__ import annotations

from pts.search.critical.rule import RULE_FIRST_ZERO, RULE_LAST_ZERO, RULE_NONE
from pts.search.critical.scores import ScoreSteps, TrajectoryScores
from pts.search.critical.settings import CriticalSettings


def search(view: TrajectoryScores, s: CriticalSettings) -> ScoreSteps:
    """The scan's answer from far fewer positions; exact when scores do not increase along the trajectory.

    Every score is drawn stage by stage and only as far as the question asked of it needs
    (:meth:`~TrajectoryScores.settle`): "not zero" is certain at the first success, "above the threshold" at
    the success that passes it. Only "zero" needs all K rollouts.

    1. The last zero: walk back from the end (free when the response ends in a
       terminal token, which is judged exactly).
    2. Bisection between the start and a known zero for a nonzero -> zero step, steered by probes: a probe
       with a success is a certain nonzero; one without is taken as a zero for steering, and only the step the
       bisection ends on is confirmed with all K rollouts (if it is not a zero, the bisection goes on to the
       right of it).
    3. Walk left from that step through low scores to the last score above the
       threshold, keeping the leftmost zero passed (catches zeros that the
       bisection jumped over).
    4. Check that later scores stay low: the first ``verify_full`` tokens after
       the candidate need ``verify_samples`` rollouts through them without a success, every
       ``verify_stride``-th one after that a probe's worth. With ``pool``, rollouts drawn at an earlier token
       that then wrote the trajectory's tokens up to a later one count there (by the chain rule of sampling
       they are draws from it), so a token draws only what they fall short of. Where any of them succeeds,
       the token's own score is settled exactly. A score above the threshold there moves the search after it
       (back to 2).

    On a monotone curve every decision is exact (steps 2 and 3 only ever name a certain nonzero -> zero step,
    and later scores are zeros, which no rollout through them can contradict): the scan's token and rule.
    """
    probe = s.probe

    last_zero, late_violation = None, False
    # With the bound, the trajectory's closing tokens (certain: pi near 1) are skipped; when the last one is a
    # judged failure it is a free zero just after the view, as the closing token is without the bound.
    if (yield from view.ends_in_a_skipped_zero()):
        last_zero = view.length
    for i in range(view.length - 1 if last_zero is None else -1, -1, -1):
        yield from view.settle([i], "nonzero")
        if view.zero(i):
            last_zero = i
            break
        yield from view.settle([i], "violation")
        late_violation |= view.violation(i)
    if last_zero is None:
        return None, RULE_NONE
    rule = RULE_LAST_ZERO if late_violation else RULE_FIRST_ZERO

    def probed_zero(p: int) -> bool:  # no success in at least a probe's rollouts (a zero for steering)
        e = view.get(p)
        return e is not None and e.successes == 0 and (e.terminal or e.samples >= probe)

    lo, hi = -1, last_zero  # lo: a nonzero score (or the start), hi: a zero (view.length: the free one after it)
    dropped = None  # the last candidate a later score above the threshold dropped
    while True:
        while True:
            while hi - lo > 1:
                mid = (lo + hi) // 2
                yield from view.settle([mid], "nonzero", cap=probe)
                if view.nonzero(mid):
                    lo = mid
                else:
                    hi = mid
            if hi == last_zero:
                break
            yield from view.settle([hi], "nonzero")  # confirm the step: a zero needs all K
            if view.zero(hi):
                break
            lo = hi
            hi = next((p for p in range(lo + 1, last_zero) if probed_zero(p) or view.zero(p)), last_zero)
        answer = yield from _walk_left(view, hi, probe)
        # On a falling curve the tail's highest scores sit right after the candidate: the first few not already
        # known to be zero need verify_samples rollouts through them, the rest a probe's worth.
        band = [p for p in range(answer + 1, last_zero) if not view.zero(p)][: s.verify_full]
        probes = [p for p in range(answer + s.verify_stride, last_zero, s.verify_stride) if p not in band]
        wanted = sorted([(p, s.band_samples) for p in band] + [(p, probe) for p in probes])
        yield from _check_later(view, wanted)
        later = [p for p in range(answer + 1, last_zero) if view.violation(p)]
        if answer == view.length:  # no zero among the positions the bound allows after the last drop
            return (dropped, RULE_LAST_ZERO) if dropped is not None else (None, RULE_NONE)
        if not later:
            return answer, rule
        dropped, lo, hi = answer, max(later), last_zero


# The walk settles a score's "above the threshold" at once when its share of successes so far exceeds this many
# times the threshold (measured while building this, bench/critical_cost.py's first 100 trajectories at K = 64:
# 1, 2 and 4 gave 11.6%, 11.4% and 11.2% of the scan's rollouts, all at full agreement); lower ones are settled
# only if a zero further left needs them.
_LIKELY = 4


def _walk_left(view: TrajectoryScores, hi: int, probe: int):
    """The leftmost zero before ``hi`` (a zero) with no score above the threshold between it and ``hi``; ``hi``
    when there is none. Exact, whatever order the scores are drawn in.

    Walking left, each score is first drawn until it is certainly nonzero (the first success; a zero needs all
    K), then to a probe's worth (less when "above the threshold" is certain sooner). Whether it is above the
    threshold is settled at once only where its share of successes so far exceeds ``_LIKELY`` times the
    threshold: a high score settles quickly and ends the walk. A low one is passed and settled later, and only
    when a zero further left needs it: in a long stretch of low nonzero scores with no zero, none of them is
    ever drawn to K.
    """
    passed: list[int] = []  # low nonzero scores walked past, not yet settled
    zeros: list[int] = []  # zeros found, right to left, each with the positions passed before it
    cut: list[list[int]] = []
    for j in range(hi - 1, -1, -1):
        yield from view.settle([j], "nonzero")
        if view.zero(j):
            zeros.append(j)
            cut.append(passed)
            passed = []
            continue
        yield from view.settle([j], "violation", cap=view.stage_at_least(probe))
        e = view.get(j)
        if not view.settled(j, "violation") and e.successes > _LIKELY * view.tau * e.samples:
            yield from view.settle([j], "violation")
        if view.violation(j):
            break
        passed.append(j)
    answer = hi
    for z, between in zip(zeros, cut):
        yield from view.settle(between, "violation")
        if any(view.violation(p) for p in between):
            break
        answer = z
    return answer


def _check_later(view: TrajectoryScores, wanted: list[tuple[int, int]]):
    """Check later tokens for a score above the threshold, left to right: ``wanted`` pairs a position with the
    rollouts that must have passed through it without a success (drawn there, or drawn earlier and then wrote
    the trajectory up to it); a position short of them draws its own, up to a stage. Where any rollout that
    passed through shows a success, the position's own score is settled exactly."""
    exact = []
    for p, target in wanted:
        while True:
            seen, e = view.passed(p), view.get(p)
            if (e is not None and e.terminal) or seen.successes > 0 or seen.samples >= target:
                break
            own = 0 if e is None else e.samples
            yield from view.settle([p], "nonzero", cap=view.stage_at_least(own + target - seen.samples))
        if view.passed(p).successes > 0:
            exact.append(p)
    yield from view.settle(exact, "violation")
