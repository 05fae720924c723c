"""Critical tokens of one query's incorrect trajectories: scored side by side on one estimator, then Pass@k."""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from typing import Any

from pts.engines.base import Rollout
from pts.search.critical.alternatives import NextTokenLogprobs, next_token_source
from pts.search.critical.bound import possible_critical_positions
from pts.search.critical.passk import PassAtK
from pts.search.critical.result import CriticalResult
from pts.search.critical.rounds import rounds, run_rounds
from pts.search.critical.scan import scan
from pts.search.critical.scores import TrajectoryScores
from pts.search.critical.search import search
from pts.search.critical.settings import CriticalSettings
from pts.search.critical.staged import Ask, StagedEstimator
from pts.search.estimate import QueryRollouts


class CriticalTokenFinder:
    """Critical tokens of one query's incorrect trajectories, scanned or searched, plus Pass@k.

    ``rollouts`` says how the query's rollouts are drawn (engine, task, exact
    prompt, sampling, token budget: :class:`~pts.search.estimate.QueryRollouts`);
    trajectories are response token ids after the prompt. ``seed`` fixes every
    rollout (scan and search draw the same ones at the positions both look
    at). ``distribution`` gives next-token log-probs for the alternatives of
    Pass@k (default: the engine's ``next_token_logprobs``; without one, only
    the Pass@k that keeps the critical token is measured).
    """

    def __init__(
        self,
        rollouts: QueryRollouts,
        settings: CriticalSettings,
        *,
        seed: int | None = None,
        distribution: NextTokenLogprobs | None = None,
    ) -> None:
        settings.validate()
        self.rollouts = rollouts
        self.engine = rollouts.engine
        self.settings = settings
        self.distribution = distribution if distribution is not None else next_token_source(rollouts.engine)
        self.scores = self._estimator(seed, stages=settings.stages)
        self.pass_at_k = PassAtK(
            self._estimator,
            samples=settings.pass_at_k_samples,
            seed=seed,
            distribution=self.distribution,
        )

    @property
    def pass_at_k_estimators(self) -> list[StagedEstimator]:
        """The estimators whose rollouts measured Pass@k (fresh ones keeping the token, then alternatives)."""
        return self.pass_at_k.estimators

    def _estimator(self, seed: int | None, **kw: Any) -> StagedEstimator:
        return self.rollouts.estimator(StagedEstimator, num_samples=self.settings.rollouts, seed=seed, **kw)

    def steps(
        self,
        trajectories: Sequence[Sequence[int]],
        sampling_logprobs: Sequence[Sequence[float] | None] | None = None,
    ) -> Generator[list[Ask], None, list[CriticalResult]]:
        """Step generator (see :func:`~pts.search.critical.rounds.rounds`) scoring every trajectory side by side;
        returns their results.

        ``sampling_logprobs[j]`` (log pi of each token of trajectory j under the
        sampling distribution, as engines report it; None: unknown) lets both
        modes skip the tokens that cannot be critical (:mod:`~pts.search.critical.bound`).
        """
        s = self.settings
        pis = list(sampling_logprobs) if sampling_logprobs is not None else [None] * len(trajectories)
        if len(pis) != len(trajectories):
            raise ValueError(f"{len(pis)} sampling log-prob lists for {len(trajectories)} trajectories")
        views = [
            TrajectoryScores(self.scores, t, s, possible_critical_positions(lp, s.rollouts))
            for t, lp in zip(trajectories, pis)
        ]
        mode = scan if s.mode == "scan" else search
        if s.mode == "search" and s.pool:
            self.scores.track(trajectories)
        found: dict[int, tuple[int | None, str]] = {}
        # Every trajectory's asks of a round go out together, on the one shared estimator.
        for targets in rounds([mode(v, s) for v in views], found.__setitem__):
            yield [(self.scores, t) for t in targets]
        results = []
        for i, v in enumerate(views):
            position, rule = found[i]
            results.append(
                CriticalResult(v.response, v.token_index(position), rule, v.estimates(), v.rollouts(), s.low_threshold)
            )
        if s.pass_at_k_samples > 0:
            yield from self.pass_at_k.steps(results)
        return results

    def find(
        self,
        trajectories: Sequence[Sequence[int]],
        sampling_logprobs: Sequence[Sequence[float] | None] | None = None,
    ) -> list[CriticalResult]:
        """Score ``trajectories`` now, alone on the engine (``sampling_logprobs``: as for :meth:`steps`)."""
        return run_rounds(self.engine, [self.steps(trajectories, sampling_logprobs)])[0]


def incorrect_trajectories(
    task: Any, rollouts: Sequence[Rollout], judge_prefix: str = "", decode: Callable[[Sequence[int]], str] | None = None
) -> list[tuple[int, ...]]:
    """Distinct non-empty rollouts that the task's oracle rejects, in sampling order."""
    seen: set[tuple[int, ...]] = set()
    out = []
    for r in rollouts:
        ids = tuple(r.token_ids)
        text = decode(ids) if decode is not None else r.text
        if ids and ids not in seen and not task.judge(judge_prefix + text):
            seen.add(ids)
            out.append(ids)
    return out
