"""Pass@k with and without the critical token (the paper's Figure 2).

Keeping the token: n fresh rollouts from the prefix that ends with it.
Replacing it: n alternative next tokens drawn from the sampler's distribution
without it (:mod:`~pts.search.critical.alternatives`), one rollout after each.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Generator
from typing import Any

from pts.records import stable_seed
from pts.search.critical.alternatives import NextTokenLogprobs, sample_alternatives
from pts.search.critical.result import CriticalResult
from pts.search.critical.staged import Ask, StagedEstimator


class PassAtK:
    """Measures Pass@k with and without the critical token of scored trajectories, in place.

    ``estimator(seed)`` makes a :class:`StagedEstimator` for the query (same
    engine, prompt and sampling); the alternatives are drawn at its prompt and
    with its sampling parameters. ``samples`` is n. Without ``distribution``
    only the Pass@k that keeps the token is measured. ``seed`` fixes every
    draw (``None``: unseeded).
    """

    def __init__(
        self,
        estimator: Callable[[int | None], StagedEstimator],
        *,
        samples: int,
        seed: int | None,
        distribution: NextTokenLogprobs | None,
    ) -> None:
        self.estimator = estimator
        self.samples = samples
        self.seed = seed
        self.distribution = distribution
        self.with_critical = estimator(self._salted("with"))
        self.alternatives: list[StagedEstimator] = []

    @property
    def estimators(self) -> list[StagedEstimator]:
        """The estimators whose rollouts measured Pass@k (fresh ones keeping the token, then alternatives)."""
        return [self.with_critical, *self.alternatives]

    def _salted(self, *salt: Any) -> int | None:
        return None if self.seed is None else stable_seed(self.seed, *salt)

    def steps(self, results: list[CriticalResult]) -> Generator[list[Ask], None, None]:
        """Fresh rollouts that keep each critical token, and one rollout from each of n alternatives."""
        n = self.samples
        found = [r for r in results if r.position is not None]
        if not found:
            return
        asks: list[Ask] = [(self.with_critical, {r.response_ids[: r.position + 1]: n for r in found})]
        alt_estimators: list[StagedEstimator | None] = []
        if self.distribution is None:
            alt_estimators = [None] * len(found)
        else:
            contexts = [r.response_ids[: r.position] for r in found]
            prompt_ids, params = self.with_critical.prompt_ids, self.with_critical.params
            rows = self.distribution([prompt_ids + c for c in contexts])
            for r, context, row in zip(found, contexts, rows):
                rng = random.Random(self._salted("alternatives", context, r.token_id))
                tokens, r.alternatives_support = sample_alternatives(row, r.token_id, n, params, rng)
                counts = Counter(tokens)
                r.alternatives = {t: [c, 0] for t, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))}
                # Own estimator per trajectory: each alternative needs exactly its own draw count.
                est = self.estimator(self._salted("alternatives", context, r.token_id))
                alt_estimators.append(est)
                self.alternatives.append(est)
                asks.append((est, {context + (t,): c for t, c in counts.items()}))
        yield asks
        for r, est in zip(found, alt_estimators):
            e = self.with_critical.cache[r.response_ids[: r.position + 1]]
            r.samples_with, r.successes_with = n, (n * e.successes if e.terminal else e.successes)
            r.pass_at_k_rollouts = 0 if e.terminal else e.samples
            if est is None:
                continue
            context = r.response_ids[: r.position]
            for t, counts in r.alternatives.items():
                a = est.cache[context + (t,)]
                counts[1] = counts[0] * a.successes if a.terminal else a.successes
            r.pass_at_k_rollouts += est.rollouts
