"""Pooled evidence: every rollout counts at every prefix of a searched solution that it passed through.

A rollout drawn from context C whose first tokens equal the solution's next
tokens t_(i+1)..t_j is, by the chain rule of autoregressive sampling with
per-token sampling settings, also a draw from p(success | C + t_(i+1)..t_j):
conditioned on having written those tokens, the rest of it is sampled exactly
as a rollout started there would be. Two things keep that exact here:

- the token budget is counted from the prompt (``max_new_tokens`` for the
  whole response), so a pooled rollout and a fresh one from the same prefix
  have the same budget left, and all rollouts of one estimator share one set
  of sampling settings;
- a rollout whose own outcome chose what is searched is left out: the solution
  being searched is one of the root rollouts, and counting it along itself
  would count a continuation that was picked, not sampled (``exclude``).

Only prefixes of the searched solutions are ever estimated, so the evidence is
a trie of those solutions; a rollout is walked down it until it leaves every
solution, which bounds memory by the solutions' length, not the rollouts'.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from pts.engines.base import NextTokenDistribution, Rollout
from pts.search.estimate import Estimate, Prefix, SuccessEstimator

# The most tokens a next-token distribution may have for p to be computed from it exactly.
EXACT_SUPPORT = 64


@dataclass(frozen=True)
class Outcome:
    """A rollout's tokens from the empty response and whether the oracle accepted it."""

    token_ids: tuple[int, ...]
    ok: bool

    def passes(self, prefix: Prefix) -> bool:
        """True when this rollout (drawn from the empty response) went through ``prefix``."""
        return len(self.token_ids) >= len(prefix) and self.token_ids[: len(prefix)] == prefix


@dataclass
class _Node:
    children: dict[int, _Node] = field(default_factory=dict)
    samples: int = 0
    successes: int = 0
    fresh: int = 0
    first_tokens: dict[int, list[int]] = field(default_factory=dict)
    continuations: dict[tuple[int, ...], list[int]] = field(default_factory=dict)


class PrefixEvidence:
    """Success counts of rollouts at every prefix of ``solutions`` they passed through.

    With ``continuation_length`` > 0, each prefix also counts the next that many tokens its rollouts wrote
    (``Estimate.continuations``).
    """

    def __init__(self, solutions: Sequence[Sequence[int]], continuation_length: int = 0) -> None:
        self.continuation_length = continuation_length
        self.root = _Node()
        for solution in solutions:
            node = self.root
            for t in solution:
                node = node.children.setdefault(t, _Node())

    def _node(self, prefix: Prefix) -> _Node:
        node = self.root
        for t in prefix:
            node = node.children[t]  # KeyError: only prefixes of the solutions are tracked
        return node

    def add(self, start: Prefix, token_ids: Sequence[int], ok: bool, *, fresh: bool) -> None:
        """Count a rollout drawn from ``start`` at ``start`` and every longer prefix of a solution it wrote.

        ``fresh``: it was drawn from ``start`` for an estimate there.
        """
        node = self._node(start)
        node.fresh += fresh
        token_ids = list(token_ids)
        for j, t in enumerate(token_ids + [None]):
            node.samples += 1
            node.successes += ok
            if self.continuation_length:
                counts = node.continuations.setdefault(tuple(token_ids[j : j + self.continuation_length]), [0, 0])
                counts[0] += 1
                counts[1] += ok
            if t is None:
                return
            counts = node.first_tokens.setdefault(t, [0, 0])
            counts[0] += 1
            counts[1] += ok
            node = node.children.get(t)
            if node is None:
                return

    def fresh(self, prefix: Prefix) -> int:
        """Rollouts drawn from ``prefix`` itself (the rest of its samples passed through it)."""
        return self._node(prefix).fresh

    def estimate(self, prefix: Prefix, exclude: Outcome | None = None) -> Estimate:
        """The pooled estimate at ``prefix``, without ``exclude`` when that rollout passed through it."""
        node = self._node(prefix)
        samples, successes = node.samples, node.successes
        first = {t: list(c) for t, c in node.first_tokens.items()}
        continuations = {t: list(c) for t, c in node.continuations.items()}
        fresh = node.fresh
        if exclude is not None and exclude.passes(prefix):
            samples -= 1
            fresh -= not prefix  # the excluded rollout was drawn from the empty response
            successes -= exclude.ok
            if len(exclude.token_ids) > len(prefix):
                counts = first[exclude.token_ids[len(prefix)]]
                counts[0] -= 1
                counts[1] -= exclude.ok
                first = {t: c for t, c in first.items() if c[0]}
            if self.continuation_length:
                tail = exclude.token_ids[len(prefix) : len(prefix) + self.continuation_length]
                counts = continuations[tail]
                counts[0] -= 1
                counts[1] -= exclude.ok
                continuations = {t: c for t, c in continuations.items() if c[0]}
        return Estimate(successes, samples, first_tokens=first, pooled=samples - fresh, continuations=continuations)


class PooledEstimator(SuccessEstimator):
    """A :class:`SuccessEstimator` whose estimates count every rollout that passed through the prefix.

    Estimates are topped up with fresh rollouts only to the extent that pooled
    ones fall short of the target. ``salt`` separates the seeds of independent
    phases (search, verification) that draw from the same prefixes.

    With ``exact_steps`` and an engine that gives its next-token sampling
    distribution, a prefix after which every token the sampler can pick ends
    the response (e.g. the answer digit of a sum) gets its exact p from one
    forward pass and the oracle, without rollouts (:meth:`exact`).
    """

    def __init__(
        self, *args, solutions: Sequence[Sequence[int]], salt: str, exact_steps: bool = False, **kwargs
    ) -> None:
        super().__init__(*args, **kwargs)
        self.evidence = PrefixEvidence(solutions, self.continuation_length)
        self.salt = salt
        # Whether a prefix ends the response never changes: decode and ask the oracle once per prefix.
        self._ends: dict[Prefix, Estimate | None] = {}
        self._exact: dict[Prefix, Estimate | None] = {}
        self.exact_steps = exact_steps and isinstance(self.engine, NextTokenDistribution)
        # Rollouts drawn from a context with one first token excluded: (context, token) -> [successes, samples].
        self.alternatives: dict[tuple[Prefix, int], list[int]] = {}

    def add(self, start: Prefix, rollouts: Sequence[Rollout], oks: Sequence[bool], *, fresh: bool) -> None:
        for rollout, ok in zip(rollouts, oks):
            self.evidence.add(start, rollout.token_ids, ok, fresh=fresh)

    def terminal(self, prefix: Prefix, text: str | None = None) -> Estimate | None:
        """:meth:`SuccessEstimator.terminal`, decided (and judged) once per prefix."""
        if prefix not in self._ends:
            self._ends[prefix] = super().terminal(prefix, text)
        return self._ends[prefix]

    def exact(self, prefixes: Sequence[Prefix]) -> None:
        """Decide, once per prefix, whether p there is known exactly from the next token's sampling distribution.

        p(C) = sum_a pi(a | C) * verdict(C + a) when every token a in the support
        ends the response (:meth:`terminal`); the support is capped at
        ``EXACT_SUPPORT`` tokens (a flat distribution is never such a step).
        """
        todo = [p for p in dict.fromkeys(prefixes) if p not in self._exact and self.terminal(p) is None]
        if not todo or not self.exact_steps:
            self._exact.update((p, None) for p in todo)
            return
        dists = self.engine.next_token_distribution([self.prompt_ids + p for p in todo], self.params)
        for prefix, dist in zip(todo, dists):
            value: float | None = 0.0
            if len(dist) > EXACT_SUPPORT:
                value = None
            else:
                for a, q in dist.items():
                    end = self.terminal(prefix + (a,))
                    if end is None:
                        value = None
                        break
                    value += q * end.p
            self._exact[prefix] = None if value is None else Estimate(round(value), 1, terminal=True, exact=value)

    def known(self, prefix: Prefix) -> Estimate | None:
        """The exact estimate of ``prefix`` (it ends the response, or its next step does); None otherwise."""
        return self.terminal(prefix) or self._exact.get(prefix)

    def estimate(
        self,
        prefixes: Sequence[Sequence[int]],
        *,
        samples: int | None = None,  # type: ignore[override]
        exclude: Outcome | Sequence[Outcome | None] | None = None,
    ) -> list[Estimate]:
        """Estimates for ``prefixes`` (prefixes of the solutions) with at least ``samples`` rollouts each.

        ``exclude`` is one rollout to leave out of every estimate, or one (or None) per prefix.
        All fresh rollouts still needed go to the engine in one call.
        """
        target = samples or self.num_samples
        wanted = [tuple(p) for p in prefixes]
        leave_out = list(exclude) if isinstance(exclude, (list, tuple)) else [exclude] * len(wanted)
        short: dict[Prefix, int] = {}
        self.exact(wanted)
        for prefix, out in zip(wanted, leave_out):
            if self.known(prefix) is None:
                have = self.evidence.estimate(prefix, out).samples
                if have < target:
                    short[prefix] = max(short.get(prefix, 0), target - have)
        if short:
            missing = list(short.items())
            requests = [
                self.request(prefix, n, self.response_text(prefix), self.salt, self.evidence.fresh(prefix))
                for prefix, n in missing
            ]
            for (prefix, _), rollouts in zip(missing, self.sample(requests)):
                self.add(prefix, rollouts, self.judge_rollouts(prefix, rollouts), fresh=True)
        return [self.known(p) or self.evidence.estimate(p, out) for p, out in zip(wanted, leave_out)]

    def alternative(self, prefix: Prefix, token: int) -> Estimate:
        """Rollouts from ``prefix`` whose first token is not ``token``: draws from the sampling distribution
        there conditioned on not taking ``token`` (those that passed through ``prefix`` and those drawn with
        it excluded), counted together."""
        node = self.evidence._node(prefix)
        others = [c for t, c in node.first_tokens.items() if t != token]
        direct = self.alternatives.get((prefix, token), [0, 0])
        samples = sum(c for c, _ in others) + direct[1]
        return Estimate(sum(k for _, k in others) + direct[0], samples, pooled=samples - direct[1])

    def sample_alternatives(self, wanted: Sequence[tuple[Prefix, int, int]], sampling_probs: Sequence[float]) -> None:
        """Top up the alternative stratum of each ``(prefix, token, target)`` to ``target`` rollouts, in one call.

        With an engine that can exclude a first token (``excludes_first``), the
        shortfall is drawn with ``token`` excluded; otherwise rollouts are drawn
        from the prefix itself (enough, at ``sampling_probs``, to expect the
        shortfall among those that do not take ``token``) and pooled as usual.
        """
        direct = bool(getattr(self.engine, "excludes_first", False))
        asks = []
        for (prefix, token, target), pi in zip(wanted, sampling_probs):
            short = target - self.alternative(prefix, token).samples
            if short > 0:
                n = short if direct else min(4 * short, math.ceil(short / max(1e-9, 1 - pi)))
                asks.append((prefix, token, n))
        if not asks:
            return
        requests = []
        for prefix, token, n in asks:
            drawn = self.alternatives.get((prefix, token), [0, 0])[1]
            base = self.request(prefix, n, self.response_text(prefix), self.salt, "alternative", token, drawn)
            requests.append(replace(base, exclude_first=token) if direct else base)
        for (prefix, token, _), rollouts in zip(asks, self.sample(requests)):
            oks = self.judge_rollouts(prefix, rollouts)
            if direct:
                counts = self.alternatives.setdefault((prefix, token), [0, 0])
                counts[0] += sum(oks)
                counts[1] += len(oks)
            else:
                self.add(prefix, rollouts, oks, fresh=True)
