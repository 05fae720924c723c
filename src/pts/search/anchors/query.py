"""One query of ``pts anchors``: its responses (sampled, or an input response), measured sentence by sentence,
as :class:`~pts.formats.thought_anchors.ThoughtAnchor` records.

:func:`analyse_query` is the unit of work: it takes what the queries of a run
share (:class:`AnchorAnalyser`: the engine, the options, the similarity
filter) and one task. Every rollout is seeded from the run's seed, the dataset
and the item id, so a query's records do not depend on which queries shared
its engine calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pts.errors import PTSError
from pts.formats.thought_anchors import ThoughtAnchor
from pts.records import stable_seed
from pts.search.analyser import Analyser, Outcome
from pts.search.anchors.analysis import SentenceResult, TraceResult, analyse_trace, sentences_of
from pts.search.anchors.categories import categorise, reasoning_pattern
from pts.search.anchors.importance import Importance
from pts.search.anchors.sentences import Sentence
from pts.search.critical.query import response_ids
from pts.search.estimate import SuccessEstimator
from pts.search.searcher import context_length
from pts.tasks.oracles.extract import extract_math_answer, final_answer_text

MAX_ALTERNATIVES = 10


def answer_of(text: str, ok: bool) -> str:
    """A rollout's final answer for the answer distribution: the math extractor's answer, else its verdict."""
    answer = extract_math_answer(final_answer_text(text) or "")
    if answer is not None:
        return answer
    return "<correct>" if ok else "<no answer>"


@dataclass
class AnchorOutcome(Outcome):
    """What analysing one query gave: ``status`` is ``analysed``, ``skipped`` (p(success) outside
    [--min-prob, --max-prob]) or ``no_sentences`` (no sampled response had a sentence); ``records`` are
    :class:`ThoughtAnchor` records, from ``traces`` responses."""

    traces: int = 0
    verify_rollouts: int = 0

    @property
    def anchors(self) -> int:
        return sum(r.is_anchor for r in self.records)


@dataclass(frozen=True)
class Solutions:
    """Which responses of a query are analysed when none is given: ``count`` are sampled (their success rate is
    the query's p(success)), a query outside [``min_prob``, ``max_prob``] is skipped, and up to ``analysed`` of
    the distinct responses are measured."""

    count: int = 8
    analysed: int = 1
    min_prob: float = 0.1
    max_prob: float = 0.9


@dataclass(eq=False)
class AnchorAnalyser(Analyser):
    """What the queries of one run share: the ``engine``, how sentences are measured (``settings``: the
    :class:`AnchorSettings`), the ``sampling`` and ``prompt_options`` of ``pts anchors``, which responses are
    analysed (``solutions``) and the ``similarity`` filter."""

    solutions: Solutions = field(default_factory=Solutions)
    similarity: Any = None

    def decode(self, ids: Sequence[int]) -> str:
        return self.tok.decode(list(ids), skip_special_tokens=True)

    def estimator(
        self, task: Any, prompt_ids: list[int], judge_prefix: str, seed: int, budget: int
    ) -> SuccessEstimator:
        return SuccessEstimator(
            self.engine,
            task,
            prompt_ids,
            self.params,
            num_samples=self.solutions.count,
            max_new_tokens=budget,
            seed=seed,
            judge_prefix=judge_prefix,
            early_stop=self.sampling.early_stop,
        )

    def check_response(self, task: Any, response: Any) -> list[int]:
        """The token ids of an input response; PTSError when it cannot be analysed (one token, no sentence, or
        longer than the model's context with the prompt)."""
        ids = response_ids(self.tok, self.engine, response)
        content = [t for t in ids if t not in self.engine.eos_token_ids]
        if len(content) <= 1:
            raise PTSError(f"item {task.item_id}: the response has {len(content)} token(s): no sentences to measure")
        if not sentences_of(ids, self.decode):
            raise PTSError(f"item {task.item_id}: the response has no sentence (only whitespace)")
        prompt_ids, _ = self.prompt(task)
        limit = context_length(self.engine)
        if limit is not None and len(prompt_ids) + len(ids) >= limit:
            raise PTSError(
                f"item {task.item_id}: prompt and response are {len(prompt_ids) + len(ids)} tokens, the model "
                f"takes {limit}: no room to resample"
            )
        return ids


def check_responses(analyser: AnchorAnalyser, tasks: Sequence[Any], responses: dict[str, Any]) -> dict[str, Any]:
    """Every task's input response (text or token ids) as the token ids :meth:`AnchorAnalyser.check_response`
    accepts, by item id; PTSError at the first that cannot be analysed."""
    return {t.item_id: analyser.check_response(t, responses[t.item_id]) for t in tasks}


def analyse_query(analyser: AnchorAnalyser, task: Any, response: Any = None) -> AnchorOutcome:
    """One query to the end: sample its responses (or take ``response``: text or token ids), measure the
    sentences of up to ``num_solutions`` of them, and return their records."""
    decode, wanted = analyser.decode, analyser.solutions
    prompt_ids, judge_prefix = analyser.prompt(task)
    seed = stable_seed(analyser.sampling.seed, task.dataset_id, task.item_id)
    out = AnchorOutcome(task.item_id, "analysed")
    budget = analyser.sampling.max_new_tokens
    if response is None:
        sampler = analyser.estimator(task, prompt_ids, judge_prefix, stable_seed(seed, "solutions"), budget)
        rollouts = sampler.sample_more(wanted.count)
        oks = [sampler.judge_response(r.token_ids) for r in rollouts]
        out.rollouts, out.rollout_tokens = sampler.rollouts, sampler.rollout_tokens
        out.p_initial = sum(oks) / len(oks)
        if not wanted.min_prob - 1e-9 <= out.p_initial <= wanted.max_prob + 1e-9:
            out.status = "skipped"
            return out
        solutions = list(dict.fromkeys(tuple(r.token_ids) for r in rollouts))
    else:
        ids = analyser.check_response(task, response)
        solutions = [tuple(ids)]
        budget = max(budget, len(ids))
    index = 0
    for solution in solutions:
        if index >= wanted.analysed:
            break
        sentences = sentences_of(solution, decode)
        if not sentences or len([t for t in solution if t not in analyser.engine.eos_token_ids]) <= 1:
            continue

        def estimator_for(phase: str, index: int = index) -> SuccessEstimator:
            return analyser.estimator(task, prompt_ids, judge_prefix, stable_seed(seed, phase, index), budget)

        trace = analyse_trace(
            estimator_for, solution, sentences, analyser.settings, analyser.similarity, answer_of, seed
        )
        out.rollouts += trace.rollouts
        out.rollout_tokens += trace.rollout_tokens
        out.verify_rollouts += trace.verify_rollouts
        out.records += records(analyser, task, prompt_ids, index, trace, out.p_initial)
        out.traces += 1
        index += 1
    if not out.traces:
        out.status = "no_sentences"
    return out


def _numbers(imp: Importance) -> dict[str, Any]:
    return {
        "prob_with_sentence": imp.kept.p if imp.kept.samples else None,
        "prob_without_sentence": imp.different.p if imp.different.samples else None,
        "prob_delta": imp.counterfactual,
        "samples_with": imp.kept.samples,
        "successes_with": imp.kept.successes,
        "samples_without": imp.different.samples,
        "successes_without": imp.different.successes,
        "prob_delta_ci": list(imp.counterfactual_ci),
        "prob_delta_ci_level": imp.level,
    }


def records(
    analyser: AnchorAnalyser, task: Any, prompt_ids: list[int], index: int, trace: TraceResult, p_initial: Any
) -> list[ThoughtAnchor]:
    """One record per sentence of ``trace`` (the ``index``-th analysed response of ``task``)."""
    c, sampling, decode = analyser.settings, analyser.sampling, analyser.decode
    solution = trace.solution_ids
    search = {
        "rollouts": c.rollouts,
        "first_rollouts": c.first_rollouts,
        "sequential": c.sequential,
        "verify": c.verify,
        "verify_samples": c.verify_samples,
        "confidence": c.confidence,
        "max_new_tokens": sampling.max_new_tokens,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "top_k": sampling.top_k,
        "min_p": sampling.min_p,
        "early_stop": sampling.early_stop,
        "seed": sampling.seed,
    }
    out = []
    for r in trace.sentences:
        s: Sentence = r.sentence
        imp = r.importance
        shown = r.verification if r.verification is not None else imp
        numbers = _numbers(shown)
        candidate = _numbers(imp) if r.verification is not None else None
        delta = numbers["prob_delta"]
        category = categorise(s.text)
        is_anchor = r.candidate and (r.verified is True if r.verified is not None else not c.verify)
        out.append(
            ThoughtAnchor(
                model_id=analyser.engine.model_id,
                sentence=s.text,
                sentence_id=r.index,
                prefix_context=decode(solution[: s.start]),
                sentence_category=category,
                importance_score=abs(delta) if delta is not None else 0.0,
                is_positive=delta is not None and delta > 0,
                reasoning_pattern=reasoning_pattern(category, s.text),
                alternatives_tested=r.alternatives[:MAX_ALTERNATIVES],
                num_alternatives=len(r.alternatives),
                **task.record_fields(),
                response=decode(solution),
                response_ids=list(solution),
                prompt_ids=list(prompt_ids),
                solution_index=index,
                num_sentences=len(trace.sentences),
                sentence_start=s.start,
                sentence_end=s.end,
                sentence_token_ids=list(solution[s.start : s.end]),
                accuracy=imp.acc_before.p if imp.acc_before.samples else 0.0,
                accuracy_samples=imp.acc_before.samples,
                accuracy_successes=imp.acc_before.successes,
                accuracy_pooled=imp.acc_before.pooled,
                resampling_importance_accuracy=imp.resampling,
                resampling_importance_ci=list(imp.resampling_ci),
                counterfactual_importance_accuracy=imp.counterfactual,
                counterfactual_importance_ci=list(imp.counterfactual_ci),
                ci_level=imp.level,
                counterfactual_importance_kl=imp.counterfactual_kl,
                counterfactual_importance_kl_ci=None
                if imp.counterfactual_kl_ci is None
                else list(imp.counterfactual_kl_ci),
                samples_similar=imp.similar,
                different_trajectories_fraction=imp.different_fraction,
                rollouts=r.rollouts,
                looks=r.looks,
                settled=r.settled,
                is_anchor=is_anchor,
                verified=r.verified,
                verify_reason=r.verify_reason,
                candidate=candidate,
                similarity_filter=trace.similarity,
                similarity_threshold=c.similarity_threshold,
                prob_threshold=c.prob_threshold,
                p_initial=p_initial,
                search=search,
                **numbers,
            )
        )
    return out


__all__ = [
    "AnchorAnalyser",
    "AnchorOutcome",
    "Solutions",
    "check_responses",
    "SentenceResult",
    "analyse_query",
    "answer_of",
    "records",
]
