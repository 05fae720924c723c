"""Sampling in fixed stages, and many estimators' asks answered with one engine call per sampling params."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pts.engines.base import Engine, Rollout, RolloutRequest, SamplingParams
from pts.search.estimate import Estimate, Prefix, SuccessEstimator
from pts.search.evidence import PrefixEvidence


class StagedEstimator(SuccessEstimator):
    """A :class:`SuccessEstimator` that tops prefixes up to per-prefix targets, in fixed stages.

    ``stages`` (e.g. ``(8, 64)``) are sample counts a prefix always passes
    through: going from 0 to 64 samples sends a request of 8 and one of 56,
    seeded by the prefix and the samples already drawn, so a prefix's first 8
    rollouts are the same whether it was probed first or asked for 64 at once.
    :meth:`plan` and :meth:`absorb` split a top-up in two so that callers can
    merge the requests of many estimators into one engine call.

    After :meth:`track`, every rollout also counts at each longer prefix of the
    tracked trajectories that it wrote (:class:`~pts.search.evidence.PrefixEvidence`;
    by the chain rule of sampling it is a draw from there too): :meth:`passed`
    gives those counts. The estimates in ``cache`` stay the prefix's own rollouts.
    """

    def __init__(self, *args: Any, stages: Sequence[int] = (), keep_rollouts: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stages = tuple(sorted(set(stages)))
        self.keep_rollouts = keep_rollouts
        self.drawn: dict[Prefix, list[Rollout]] = {}
        self.evidence: PrefixEvidence | None = None

    def track(self, trajectories: Sequence[Sequence[int]]) -> None:
        """Count from now on every rollout at the prefixes of ``trajectories`` it passed through (call once,
        before sampling: rollouts drawn earlier are not counted)."""
        if self.evidence is not None:
            raise ValueError("track() was already called on this estimator")
        self.evidence = PrefixEvidence(trajectories)

    def passed(self, prefix: Sequence[int]) -> Estimate:
        """Rollouts drawn at ``prefix`` or at a shorter tracked prefix that then wrote the rest of it, with their
        successes (``pooled``: how many were drawn before it)."""
        if self.evidence is None:
            raise ValueError("passed() needs track() first")
        return self.evidence.estimate(tuple(prefix))

    def plan(self, targets: Mapping[Sequence[int], int]) -> list[tuple[Prefix, RolloutRequest]]:
        """Requests that bring every prefix to at least its target samples (terminal ones are judged now)."""
        out: list[tuple[Prefix, RolloutRequest]] = []
        for raw, target in targets.items():
            prefix = tuple(raw)
            est, text = self.shortfall(prefix, target)
            if text is None:
                continue
            have = est.samples
            for edge in [s for s in self.stages if have < s < target] + [target]:
                out.append((prefix, self.request(prefix, edge - have, text, have)))
                have = edge
        return out

    def absorb(self, planned: Sequence[tuple[Prefix, RolloutRequest]], results: Sequence[list[Rollout]]) -> None:
        """Score the rollouts the engine returned for :meth:`plan`'s requests."""
        for (prefix, _), rollouts in zip(planned, results):
            verdicts = self.score(self.cache[prefix], prefix, rollouts)
            if self.evidence is not None:
                for rollout, ok in zip(rollouts, verdicts):
                    self.evidence.add(prefix, rollout.token_ids, ok, fresh=True)
            if self.keep_rollouts:
                self.drawn.setdefault(prefix, []).extend(rollouts)


Ask = tuple[StagedEstimator, dict[Prefix, int]]
"""An estimator and the samples it should hold per prefix; asks of one estimator merge by the largest target."""


def fulfil(engine: Engine, asks: Sequence[Ask]) -> int:
    """Sample everything ``asks`` want, one engine call per distinct sampling params; returns the calls made."""
    merged: dict[int, tuple[StagedEstimator, dict[Prefix, int]]] = {}
    for est, targets in asks:
        slot = merged.setdefault(id(est), (est, {}))[1]
        for prefix, n in targets.items():
            slot[prefix] = max(slot.get(prefix, 0), n)
    groups: dict[SamplingParams, list[tuple[StagedEstimator, list]]] = {}
    for est, targets in merged.values():
        planned = est.plan(targets)
        if planned:
            groups.setdefault(est.params, []).append((est, planned))
    for params, group in groups.items():
        results = engine.sample([r for _, planned in group for _, r in planned], params)
        start = 0
        for est, planned in group:
            est.absorb(planned, results[start : start + len(planned)])
            start += len(planned)
    return len(groups)
