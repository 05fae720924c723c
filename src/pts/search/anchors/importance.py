"""The importance of each sentence from pooled rollouts: pure functions, no engine.

A response is cut into sentences S_0..S_(m-1) at token boundaries b_0 = 0 <
b_1 < ... < b_m = n; P_i is the response before S_i (its first b_i tokens).
A rollout drawn from P_k whose first tokens reproduce the response up to b_j
is also a draw from P_j (sampling is autoregressive with per-token settings:
the rest of it is sampled as a rollout started at P_j would be), so every
rollout counts at every boundary it passed through (:func:`pool_draws`).

For sentence i, its draws at P_i fall in three groups by what they wrote next:

- **kept**: they reproduced S_i token for token; they are draws at P_(i+1),
  and the kept group is all draws at P_(i+1) (fresh there, or pooled);
- **different**: their first sentence has similarity below the threshold to
  S_i (all-MiniLM-L6-v2 cosine < 0.8, or not the same text);
- **similar**: the rest (a paraphrase); in neither comparison.

Then (:func:`importance`):

- ``resampling`` = acc(i+1) - acc(i), acc(k) the share of draws at P_k judged
  correct (an exactly judged terminal prefix is known);
- ``counterfactual`` = acc(kept) - acc(different), which is the original PTS
  tool's ``prob_with_sentence - prob_without_sentence`` (the Thought Anchors
  code reports it the other way round: different minus kept);
- ``counterfactual_kl`` = KL(different || kept) between the final-answer
  distributions, Laplace-smoothed (alpha 1) over the answers seen.

The two accuracy differences get Newcombe intervals (Wilson at each end), the
KL a seeded bootstrap percentile interval.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from pts.search.estimate import Estimate
from pts.search.verify import delta_interval

KL_RESAMPLES = 200


@dataclass(frozen=True)
class Draw:
    """A rollout seen from one boundary: the tokens it wrote after it, its verdict and final answer.

    ``fresh``: drawn at this boundary (else it passed through from an earlier one).
    """

    continuation: tuple[int, ...]
    ok: bool
    answer: str
    fresh: bool


def pool_draws(
    solution: Sequence[int], boundaries: Sequence[int], rollouts: Iterable[tuple[int, Sequence[int], bool, str]]
) -> list[list[Draw]]:
    """The draws at each boundary from ``rollouts``: ``(k, tokens after P_k, ok, answer)``, drawn at boundary k.

    A rollout counts at k (fresh) and at every later boundary of ``solution`` whose tokens it reproduced.
    """
    out: list[list[Draw]] = [[] for _ in boundaries]
    for k, tokens, ok, answer in rollouts:
        tokens = tuple(tokens)
        out[k].append(Draw(tokens, ok, answer, True))
        for j in range(k + 1, len(boundaries)):
            offset = boundaries[j] - boundaries[k]
            if len(tokens) < offset or tokens[:offset] != tuple(solution[boundaries[k] : boundaries[j]]):
                break
            out[j].append(Draw(tokens[offset:], ok, answer, False))
    return out


def accuracy(draws: Sequence[Draw], terminal: Estimate | None = None) -> Estimate:
    """The estimate behind a group of draws, or the exact one of a terminal prefix."""
    if terminal is not None:
        return terminal
    return Estimate(sum(d.ok for d in draws), len(draws), pooled=sum(not d.fresh for d in draws))


@dataclass
class Groups:
    """Sentence i's draws at P_i by what they wrote next (see the module docstring)."""

    at: list[Draw]
    kept: list[Draw]
    different: list[Draw]
    similar: list[Draw]
    alternatives: list[str]  # the different first sentences, in order of first appearance


def group_draws(
    sentence_ids: Sequence[int],
    sentence_text: str,
    at: Sequence[Draw],
    after: Sequence[Draw],
    first_sentence: Callable[[Sequence[int]], str],
    similarities: Callable[[list[tuple[str, str]]], list[float]],
    threshold: float,
) -> Groups:
    """Split the draws ``at`` P_i; ``after`` are the draws at P_(i+1) (the kept group).

    ``first_sentence(tokens)`` is the first sentence a continuation wrote; ``similarities`` scores
    ``(original, resample)`` pairs; below ``threshold`` a resample is different.
    """
    sentence_ids = tuple(sentence_ids)
    left = [d for d in at if d.continuation[: len(sentence_ids)] != sentence_ids]
    firsts = [first_sentence(d.continuation) for d in left]
    scores = similarities([(sentence_text, f) for f in firsts]) if left else []
    different = [d for d, s in zip(left, scores) if s < threshold]
    similar = [d for d, s in zip(left, scores) if s >= threshold]
    alternatives = list(dict.fromkeys(f for f, s in zip(firsts, scores) if s < threshold))
    return Groups(list(at), list(after), different, similar, alternatives)


@dataclass
class Importance:
    """One sentence's importance numbers (None where a group has no draws) and their intervals at ``level``."""

    acc_before: Estimate
    acc_after: Estimate
    kept: Estimate
    different: Estimate
    similar: int
    resampling: float
    resampling_ci: tuple[float, float]
    counterfactual: float | None
    counterfactual_ci: tuple[float, float]
    counterfactual_kl: float | None
    counterfactual_kl_ci: tuple[float, float] | None
    different_fraction: float
    level: float


def importance(
    groups: Groups,
    level: float,
    *,
    before_terminal: Estimate | None = None,
    after_terminal: Estimate | None = None,
    after_answer: str | None = None,
    seed: int = 0,
) -> Importance:
    """Resampling and counterfactual importance of one sentence from its ``groups``, with intervals at ``level``.

    ``before_terminal``/``after_terminal``: the exact estimate of P_i / P_(i+1) when that prefix already ends
    the response; ``after_answer`` is then its answer (the kept answer distribution is that one answer).
    """
    before = accuracy(groups.at, before_terminal)
    after = accuracy(groups.kept, after_terminal)
    different = accuracy(groups.different)
    resampling = after.p - before.p if before.samples and after.samples else 0.0
    resampling_ci = delta_interval(before, after, level) if before.samples and after.samples else (-1.0, 1.0)
    cf = cf_ci = kl = kl_ci = None
    if different.samples and after.samples:
        cf = after.p - different.p
        cf_ci = delta_interval(different, after, level)
        kept_answers = [after_answer] if after_terminal is not None else [d.answer for d in groups.kept]
        different_answers = [d.answer for d in groups.different]
        kl = kl_divergence(Counter(different_answers), Counter(kept_answers))
        kl_ci = bootstrap_kl(different_answers, kept_answers, level, seed, fixed_q=after_terminal is not None)
    total = len(groups.at)
    return Importance(
        acc_before=before,
        acc_after=after,
        kept=after,
        different=different,
        similar=len(groups.similar),
        resampling=resampling,
        resampling_ci=resampling_ci,
        counterfactual=cf,
        counterfactual_ci=cf_ci if cf_ci is not None else (-1.0, 1.0),
        counterfactual_kl=kl,
        counterfactual_kl_ci=kl_ci,
        different_fraction=len(groups.different) / total if total else 0.0,
        level=level,
    )


def kl_divergence(p: Counter, q: Counter, alpha: float = 1.0) -> float:
    """KL(p || q) in nats between two answer-count distributions, each Laplace-smoothed by ``alpha`` over the
    answers either one saw (so it is finite)."""
    support = sorted(set(p) | set(q))  # a fixed order: a set's changes with the process's string hashing
    if not support:
        return 0.0
    np_, nq = sum(p.values()) + alpha * len(support), sum(q.values()) + alpha * len(support)
    total = 0.0
    for a in support:
        pa, qa = (p[a] + alpha) / np_, (q[a] + alpha) / nq
        total += pa * math.log(pa / qa)
    return max(0.0, total)


def bootstrap_kl(
    p: Sequence[str], q: Sequence[str], level: float, seed: int, *, fixed_q: bool = False
) -> tuple[float, float]:
    """Percentile interval of :func:`kl_divergence` resampling both groups (only ``p`` when ``fixed_q``)."""
    rng = random.Random(seed)
    stats = []
    for _ in range(KL_RESAMPLES):
        rp = Counter(rng.choice(p) for _ in p)
        rq = Counter(q) if fixed_q else Counter(rng.choice(q) for _ in q)
        stats.append(kl_divergence(rp, rq))
    stats.sort()
    lo = stats[math.floor((1 - level) / 2 * (KL_RESAMPLES - 1))]
    hi = stats[math.ceil((1 + level) / 2 * (KL_RESAMPLES - 1))]
    return lo, hi
