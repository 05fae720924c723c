"""The sentences of one response, measured: sequential sampling at their boundaries, then verification.

:func:`analyse_trace` takes an engine, a task, its exact prompt ids and one
response's token ids; it splits the response into sentences
(:mod:`~pts.search.anchors.sentences`), samples rollouts from the prefix
before each sentence in looks (:class:`BoundarySampler`; every rollout pooled
at every boundary it passed through), computes each sentence's importance
(:mod:`~pts.search.anchors.importance`) and stops sampling a sentence once the
interval of its counterfactual importance settles it against the threshold.
Candidates (importance at least the threshold) are then measured again on
fresh rollouts, pooled only among themselves, and kept only when the interval
clears the threshold, as :mod:`pts.search.verify` does for tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pts.records import stable_seed
from pts.search.anchors.importance import Draw, Importance, group_draws, importance, pool_draws
from pts.search.anchors.sentences import Sentence, first_sentence, split_sentences, token_pieces
from pts.search.anchors.settings import AnchorSettings
from pts.search.estimate import SuccessEstimator
from pts.search.verify import rounds, settle

AnswerOf = Callable[[str, bool], str]


class BoundarySampler:
    """One phase's rollouts from the sentence boundaries of one response, pooled (see
    :func:`~pts.search.anchors.importance.pool_draws`); ``salt`` separates the seeds of phases."""

    def __init__(
        self,
        estimator: SuccessEstimator,
        solution: Sequence[int],
        boundaries: Sequence[int],
        salt: str,
        answer_of: AnswerOf,
    ) -> None:
        self.estimator = estimator
        self.solution = tuple(solution)
        self.boundaries = list(boundaries)
        self.salt = salt
        self.answer_of = answer_of
        self.terminal = [estimator.terminal(self.prefix(k)) for k in range(len(self.boundaries))]
        self.rollouts: list[tuple[int, tuple[int, ...], bool, str]] = []
        self.fresh = [0] * len(self.boundaries)
        self._draws: list[list[Draw]] | None = None

    def prefix(self, k: int) -> tuple[int, ...]:
        return self.solution[: self.boundaries[k]]

    def draws(self) -> list[list[Draw]]:
        """The draws at every boundary (fresh and pooled)."""
        if self._draws is None:
            self._draws = pool_draws(self.solution, self.boundaries, self.rollouts)
        return self._draws

    def top_up(self, targets: dict[int, int]) -> None:
        """Fresh rollouts at each boundary ``k`` of ``targets`` that has fewer than ``targets[k]`` draws, in one
        engine call (a terminal boundary is never sampled)."""
        have = self.draws()
        missing = [
            (k, target - len(have[k]))
            for k, target in sorted(targets.items())
            if self.terminal[k] is None and len(have[k]) < target
        ]
        if not missing:
            return
        est = self.estimator
        requests = [
            est.request(self.prefix(k), n, est.response_text(self.prefix(k)), self.salt, self.fresh[k])
            for k, n in missing
        ]
        for (k, n), rollouts in zip(missing, est.sample(requests)):
            prefix = self.prefix(k)
            for rollout, ok in zip(rollouts, est.judge_rollouts(prefix, rollouts)):
                text = est.response_text(prefix + tuple(rollout.token_ids))
                self.rollouts.append((k, tuple(rollout.token_ids), ok, self.answer_of(text, ok)))
            self.fresh[k] += n
        self._draws = None


@dataclass
class SentenceResult:
    """One sentence measured: ``importance`` from the search's rollouts, ``rollouts`` drawn fresh at the prefix
    before it, ``looks`` taken and how it ``settled`` (``important``, ``unimportant`` or ``cap``);
    ``candidate`` when its importance reached the threshold, and ``verified`` (None when not a candidate)
    with the verification's numbers in ``verification``."""

    index: int
    sentence: Sentence
    importance: Importance
    alternatives: list[str]
    rollouts: int
    looks: int
    settled: str
    candidate: bool = False
    verified: bool | None = None
    verification: Importance | None = None
    verify_reason: str | None = None
    verify_looks: int = 0


@dataclass
class TraceResult:
    """Every sentence of one response measured, and what it cost."""

    solution_ids: list[int]
    sentences: list[SentenceResult]
    similarity: str
    rollouts: int = 0
    rollout_tokens: int = 0
    verify_rollouts: int = 0
    level: float = 0.0
    verify_level: float = 0.0
    notes: dict[str, Any] = field(default_factory=dict)


def sentences_of(solution: Sequence[int], decode: Callable[[list[int]], str]) -> list[Sentence]:
    """The sentences of a response by the split rule, on its own tokens."""
    return split_sentences(token_pieces(solution, decode))


def analyse_trace(
    estimator_for: Callable[[str], SuccessEstimator],
    solution: Sequence[int],
    sentences: Sequence[Sentence],
    settings: AnchorSettings,
    similarity: Any,
    answer_of: AnswerOf,
    seed: int = 0,
) -> TraceResult:
    """Measure every sentence of ``solution`` (split into ``sentences``); see the module docstring.

    ``estimator_for(phase)`` makes the estimator of a phase (``"anchors"``, ``"verify"``): the engine, task,
    prompt, sampling settings and seed it samples with. ``similarity`` has ``name`` and
    ``similarities(pairs)``; ``answer_of(text, ok)`` is a rollout's final answer (for the KL importance).
    """
    solution = tuple(solution)
    boundaries = [s.start for s in sentences] + [len(solution)]
    search = estimator_for("anchors")
    sampler = BoundarySampler(search, solution, boundaries, "anchors", answer_of)
    looks = rounds(settings.rollouts, settings.first_rollouts) if settings.sequential else [settings.rollouts]
    level = 1 - (1 - settings.confidence) / len(looks)
    decode = search.response_text
    firsts: dict[tuple[int, ...], str] = {}
    scores: dict[tuple[str, str], float] = {}

    def first_of(ids: Sequence[int]) -> str:
        ids = tuple(ids)
        if ids not in firsts:
            firsts[ids] = first_sentence(decode(list(ids)))
        return firsts[ids]

    def similarities(pairs: list[tuple[str, str]]) -> list[float]:
        # Every look groups all draws again: embed each (original, resample) pair once per response.
        new = list(dict.fromkeys(p for p in pairs if p not in scores))
        scores.update(zip(new, similarity.similarities(new)))
        return [scores[p] for p in pairs]

    def measure(s: BoundarySampler, i: int, at_level: float) -> tuple[Importance, list[str]]:
        draws = s.draws()
        groups = group_draws(
            solution[boundaries[i] : boundaries[i + 1]],
            sentences[i].text,
            draws[i],
            draws[i + 1],
            first_of,
            similarities,
            settings.similarity_threshold,
        )
        after_terminal = s.terminal[i + 1]
        after_answer = None
        if after_terminal is not None:
            after_answer = answer_of(decode(list(s.prefix(i + 1))), bool(after_terminal.successes))
        imp = importance(
            groups,
            at_level,
            before_terminal=s.terminal[i],
            after_terminal=after_terminal,
            after_answer=after_answer,
            seed=stable_seed(seed, s.salt, i),
        )
        return imp, groups.alternatives

    m = len(sentences)
    settled: dict[int, tuple[str, int]] = {}
    active = list(range(m))
    for look, target in enumerate(looks, start=1):
        targets: dict[int, int] = {}
        for i in active:
            targets[i] = targets[i + 1] = target
        sampler.top_up(targets)
        still = []
        for i in active:
            imp, _ = measure(sampler, i, level)
            verdict = (
                settle(*imp.counterfactual_ci, settings.prob_threshold) if imp.counterfactual is not None else None
            )
            if verdict is not None:
                settled[i] = ("important" if verdict else "unimportant", look)
            elif look == len(looks) or (sampler.terminal[i] is not None):
                settled[i] = ("cap" if sampler.terminal[i] is None else "terminal", look)
            else:
                still.append(i)
        active = still
    results = []
    for i in range(m):
        imp, alternatives = measure(sampler, i, level)
        reason, taken = settled[i]
        candidate = imp.counterfactual is not None and abs(imp.counterfactual) >= settings.prob_threshold - 1e-9
        results.append(SentenceResult(i, sentences[i], imp, alternatives, sampler.fresh[i], taken, reason, candidate))
    out = TraceResult(list(solution), results, similarity.name, level=level)
    out.rollouts, out.rollout_tokens = search.rollouts, search.rollout_tokens
    candidates = [r for r in results if r.candidate]
    if settings.verify and candidates:
        verifier = estimator_for("verify")
        checker = BoundarySampler(verifier, solution, boundaries, "verify", answer_of)
        vlooks = rounds(settings.verify_samples)
        out.verify_level = vlevel = 1 - (1 - settings.confidence) / len(vlooks)
        pending = candidates
        for look, target in enumerate(vlooks, start=1):
            targets = {}
            for r in pending:
                targets[r.index] = targets[r.index + 1] = target
            checker.top_up(targets)
            still = []
            for r in pending:
                imp, _ = measure(checker, r.index, vlevel)
                verdict = (
                    settle(*imp.counterfactual_ci, settings.prob_threshold) if imp.counterfactual is not None else None
                )
                if verdict is None and look < len(vlooks):
                    still.append(r)
                    continue
                r.verified = verdict is True
                r.verify_reason = {True: "moves", False: "small", None: "cap"}[verdict]
                r.verification, r.verify_looks = imp, look
            pending = still
        out.verify_rollouts = verifier.rollouts
        out.rollouts += verifier.rollouts
        out.rollout_tokens += verifier.rollout_tokens
    return out
