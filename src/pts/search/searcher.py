"""Pivotal Token Search for one query: the Phi-4 procedure around :func:`find_pivots`."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pts import options
from pts.engines.base import Engine, Rollout, SamplingParams
from pts.records import Continuation, FirstToken, PivotalToken, stable_seed
from pts.search.estimate import Estimate, QueryRollouts, SuccessEstimator
from pts.search.evidence import Outcome, PooledEstimator
from pts.search.pivotal import (
    IntervalDecider,
    PivotalCandidate,
    PointDecider,
    SplitAt,
    find_pivots_many,
    interval,
    possible_positions,
    span_bound,
)
from pts.search.recorded import record_search
from pts.search.verify import Candidate, Verdict, delta_interval, verify
from pts.tasks.task import Task

log = logging.getLogger(__name__)

# Level of the Wilson intervals written to records when sampling is not adaptive.
REPORTED_CONFIDENCE = 0.95
# Slack on pi(token): a solution's pi was computed while it was decoded in a batch; a later forward pass of
# the same prefix can differ by batch composition in bf16. The bound closes a position only when
# 1 - pi < threshold - margin, and stratified intervals widen 1 - pi by it (docs/search.md).
SAMPLING_PROB_MARGIN = 0.02


def sampling_prob(rollout: Rollout, position: int) -> float | None:
    """pi of ``rollout``'s token at ``position`` under the sampling distribution; None when unknown."""
    lps = rollout.sampling_logprobs
    return None if lps is None else math.exp(lps[position])


def continuations_of(est: Estimate, length: int) -> dict[tuple[int, ...], list[int]]:
    """The rollouts behind ``est`` grouped by their first ``length`` tokens, ``ids -> [count, successes]``; rollouts
    that ended sooner are left out (they are no alternative of that length)."""
    out: dict[tuple[int, ...], list[int]] = {}
    for ids, (count, successes) in est.continuations.items():
        if len(ids) >= length:
            counts = out.setdefault(ids[:length], [0, 0])
            counts[0] += count
            counts[1] += successes
    return out


@options.config(group="search")
class SearchSettings(options.SamplingOptions, options.PromptOptions):
    """Options of the search itself; names and defaults follow the original PTS tool."""

    prob_threshold: float = options.option(
        0.2, "minimum change in p(success) that makes a token pivotal", check="half_open_unit"
    )
    num_samples: int = options.option(10, "rollouts per estimate of p(success | prefix)", check="count")
    max_generations: int = options.option(10, "sampled solutions searched per query", check="count")
    min_prob: float = options.option(0.2, "search only queries whose initial p(success) is at least this", check="unit")
    max_prob: float = options.option(0.8, "search only queries whose initial p(success) is at most this", check="unit")
    split_at: SplitAt = options.option(
        "logprob", "where segments are split: cumulative log-prob midpoint (Phi-4) or token middle"
    )
    confidence: float | None = options.option(
        None,
        "adaptive sampling: estimate in rounds until a Wilson interval at this level settles each segment "
        "(--num-samples is then the cap); off when omitted",
        check="open_unit",
    )
    pool: bool = options.option(
        True, "count every rollout that passed through a prefix in its estimate (--no-pool: only rollouts drawn there)"
    )
    verify: bool = options.option(
        True,
        "re-measure every candidate with fresh rollouts before writing it "
        "(--no-verify: write every candidate the subdivision flags, the original "
        "tool's way)",
    )
    verify_samples: int = options.option(
        64, "verification: the most rollouts per end (before and after the token) spent on one candidate", check="count"
    )
    verify_confidence: float = options.option(
        0.95,
        "verification: keep a candidate once the interval of its change at this level lies beyond the "
        "threshold; drop it once it lies inside or the cap is reached",
        check="open_unit",
    )
    bound: bool = options.option(
        True,
        "use each token's sampling probability pi: never estimate where 1 - pi rules a pivot out, know p "
        "exactly where every next token ends the response, verify by strata (--no-bound, or --no-pool "
        "--no-verify, the original procedure: do without)",
    )
    verify_strata: bool = options.option(
        True,
        "verification with the bound: estimate a single token's change by strata, (1 - pi)(p_t - p_alt), sampling "
        "the alternatives' stratum directly (--no-verify-strata: from rollouts before and after the token)",
    )
    direct_at_most: int = options.option(
        0,
        "with the bound: a segment with at most this many positions that can hold a pivot is searched by "
        "estimating around each of them instead of by bisection",
        check="nonneg",
    )
    max_span: int = options.option(
        1,
        "pivotal spans: the longest run of tokens written as one pivot when it moves p(success) by the threshold "
        "and no single token in it does (1, the default: single tokens only; spans cost rollouts, docs/search.md)",
        check="span_length",
    )

    def uses_bound(self) -> bool:
        """The sampling-probability bound is on unless asked off or the original procedure is asked for."""
        return self.bound and (self.pool or self.verify)

    def decider(self, estimate_positions) -> PointDecider:
        """Fixed ``num_samples`` per estimate, or adaptive rounds when a ``confidence`` is set."""
        if self.confidence:
            return IntervalDecider(estimate_positions, self.prob_threshold, self.num_samples, self.confidence)
        return PointDecider(estimate_positions, self.prob_threshold, self.num_samples)

    def sampling(self) -> SamplingParams:
        return SamplingParams(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k, min_p=self.min_p)


@dataclass
class TaskResult:
    """What searching one query produced and cost."""

    item_id: str
    status: str  # "searched", "skipped" (initial p outside [min_prob, max_prob]) or "too_long" (search_one)
    p_initial: float
    pivots: list[PivotalToken] = field(default_factory=list)
    solutions: int = 0
    rollouts: int = 0
    rollout_tokens: int = 0
    engine_calls: int = 0
    # Of which verification's (the rest is the initial estimate's and the subdivision's).
    verify_rollouts: int = 0
    verify_rollout_tokens: int = 0
    candidates: int = 0
    dropped: int = 0
    # Span candidates dropped because a token inside them was verified as a pivot on its own (counted in dropped).
    spans_split: int = 0
    undecided: int = 0
    traces: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        positive = sum(p.is_positive for p in self.pivots)
        return {
            "status": self.status,
            "p_initial": self.p_initial,
            "solutions": self.solutions,
            "pivots": len(self.pivots),
            "positive": positive,
            "negative": len(self.pivots) - positive,
            "candidates": self.candidates,
            "dropped": self.dropped,
            "undecided": self.undecided,
            "spans_split": self.spans_split,
            "rollouts": self.rollouts,
            "rollout_tokens": self.rollout_tokens,
            "verify_rollouts": self.verify_rollouts,
            "verify_rollout_tokens": self.verify_rollout_tokens,
        }


def build_prompt_ids(
    tokenizer: Any,
    prompt: str,
    system_prompt: str | None = None,
    chat_template: bool = True,
    raw_prompt: str | None = None,
) -> list[int]:
    """The prompt as token ids: the tokenizer's chat template when it has one, else the raw text.

    ``raw_prompt`` (default ``prompt``) is what a model without a chat template continues, e.g. a code
    task's bare function header (``Task.raw_prompt``).
    """
    if chat_template and getattr(tokenizer, "chat_template", None):
        messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
        messages.append({"role": "user", "content": prompt})
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])
    prompt = prompt if raw_prompt is None else raw_prompt
    text = f"{system_prompt}\n\n{prompt}" if system_prompt else prompt
    return list(tokenizer(text, add_special_tokens=True)["input_ids"])


def opens_think_block(prompt_text: str) -> bool:
    """True when the prompt ends inside ``<think>`` (some templates open it for the model)."""
    return prompt_text.rfind("<think>") > prompt_text.rfind("</think>")


class PivotalTokenSearcher:
    """Finds pivotal tokens in the model's own solutions to one query at a time.

    For a query: estimate p(success | query) from ``num_samples`` rollouts; if it
    lies in [min_prob, max_prob], take up to ``max_generations`` of those
    rollouts (sampling more if needed) as solutions and run the subdivision
    search on each. With ``pool``, every estimate counts all rollouts of the
    query that passed through its prefix (:mod:`pts.search.evidence`); without
    it, one memo of p(success | prefix) per query. With ``verify``, each single
    token the subdivision flags is a candidate, kept only if fresh rollouts
    confirm its change (:mod:`pts.search.verify`).
    """

    def __init__(
        self, engine: Engine, settings: SearchSettings, on_rollout: Callable[[str, Rollout, bool], None] | None = None
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.on_rollout = on_rollout

    def prompt_ids(self, task: Task) -> list[int]:
        """``task``'s prompt as the token ids the search samples after (:func:`build_prompt_ids`)."""
        s = self.settings
        return build_prompt_ids(self.engine.tokenizer, task.prompt, s.system_prompt, s.chat_template, task.raw_prompt)

    def search(self, task: Task, prompt_ids: Sequence[int] | None = None) -> TaskResult:
        """Search one query; ``prompt_ids`` is its prompt when already tokenized (:meth:`prompt_ids`)."""
        s = self.settings
        prompt_ids = self.prompt_ids(task) if prompt_ids is None else list(prompt_ids)
        prompt_text = self.engine.tokenizer.decode(prompt_ids, skip_special_tokens=False)
        rollouts = QueryRollouts(
            self.engine,
            task,
            prompt_ids,
            s.sampling(),
            s.max_new_tokens,
            judge_prefix="<think>" if opens_think_block(prompt_text) else "",
            early_stop=s.early_stop,
        )
        common = dict(
            num_samples=s.num_samples,
            seed=stable_seed(s.seed, task.dataset_id, task.item_id),
            on_rollout=self.on_rollout,
            continuation_length=s.max_span if s.max_span > 1 else 0,
        )
        est = rollouts.estimator(SuccessEstimator, **common)
        estimators: list[SuccessEstimator] = [est]
        (root,), drawn = est.estimate([()], keep_rollouts=True)
        result = TaskResult(task.item_id, "searched", root.p)
        if not (s.min_prob - 1e-9 <= root.p <= s.max_prob + 1e-9):
            result.status = "skipped"
            log.info(
                "item %s: p(success)=%.2f outside [%.2f, %.2f], skipped", task.item_id, root.p, s.min_prob, s.max_prob
            )
        else:
            judged = drawn.get((), [])
            more = self._more_solutions(est, len(judged))
            root_rollouts = [r for r, _ in judged] + more
            solutions = self._solutions(root_rollouts)
            result.solutions = len(solutions)

            def pooled_estimator(salt: str) -> PooledEstimator:
                """An estimator pooling the rollouts of one phase (search or verification) along the solutions."""
                return rollouts.estimator(
                    PooledEstimator,
                    **common,
                    solutions=[r.token_ids for r in solutions],
                    salt=salt,
                    exact_steps=s.uses_bound(),
                )

            if s.pool:
                pooled = pooled_estimator("search")
                estimators.append(pooled)
                # The initial estimate's rollouts keep the verdicts it judged them with; only more are judged here.
                oks = [ok for _, ok in judged] + [est.judge_response(r.token_ids) for r in more]
                outcome = {id(r): Outcome(tuple(r.token_ids), ok) for r, ok in zip(root_rollouts, oks)}
                pooled.add((), root_rollouts, [outcome[id(r)].ok for r in root_rollouts], fresh=True)
            outcomes = [outcome[id(r)] for r in solutions] if s.pool else []
            ids_of = [r.token_ids for r in solutions]

            def estimate_positions(keys: list[tuple[int, int]], samples: int):
                prefixes = [tuple(ids_of[k][:i]) for k, i in keys]
                if s.pool:
                    return pooled.estimate(prefixes, samples=samples, exclude=[outcomes[k] for k, _ in keys])
                return est.estimate(prefixes, samples=samples)[0]

            decide = s.decider(estimate_positions)
            pis = [r.sampling_logprobs if s.uses_bound() else None for r in solutions]
            possible = [possible_positions(lp, s.prob_threshold, SAMPLING_PROB_MARGIN) for lp in pis]
            found = find_pivots_many(
                ids_of,
                decide,
                split_at=s.split_at,
                logprobs=[r.logprobs for r in solutions],
                possible=possible,
                direct_at_most=s.direct_at_most,
                max_span=s.max_span,
                spans_possible=[span_bound(lp, s.prob_threshold, SAMPLING_PROB_MARGIN) for lp in pis],
            )
            candidates: dict[tuple, tuple[int, PivotalCandidate]] = {}
            for index, pivots in enumerate(found):
                for p in pivots:
                    # Solutions sharing a prefix find the same pivot; keep it once.
                    tokens = tuple(ids_of[index][p.position : p.position + p.length])
                    candidates.setdefault((tuple(ids_of[index][: p.position]), tokens), (index, p))
                known = {i: e for (k, i), e in decide.known.items() if k == index}
                result.traces.append(
                    self._trace(task, prompt_ids, index, ids_of[index], known, solutions[index].sampling_logprobs)
                )
            result.candidates = len(candidates)

            def keep(index: int, p: Any, before: Any, after: Any, **verified: Any) -> None:
                """Write candidate ``p`` of solution ``index`` as a pivot, with the estimates around it."""
                result.pivots.append(
                    self._record(
                        task,
                        prompt_ids,
                        solutions[index].token_ids,
                        index,
                        p.position,
                        before,
                        after,
                        length=p.length,
                        solution_rollout=solutions[index],
                        **verified,
                    )
                )

            if s.verify and candidates:
                # A span is verified with each single token inside it that can hold a pivot, as candidates of
                # the same call: a span stands only if none of its tokens is kept alone (docs/search.md, section 5).
                inner: dict[tuple, list[tuple]] = {}
                checked = dict(candidates)
                for key, (index, p) in candidates.items():
                    if p.length > 1:
                        inner[key] = [
                            self._inner_key(ids_of[index], index, p.position + j, checked, decide)
                            for j in range(p.length)
                            if possible[index] is None or possible[index][p.position + j]
                        ]
                checker = pooled_estimator("verify")
                estimators.append(checker)
                verdicts = verify(
                    checker,
                    [
                        Candidate(
                            context,
                            tokens[0],
                            sampling_prob(solutions[index], p.position) if s.uses_bound() and s.verify_strata else None,
                            span=tokens if len(tokens) > 1 else (),
                        )
                        for (context, tokens), (index, p) in checked.items()
                    ],
                    threshold=s.prob_threshold,
                    cap=s.verify_samples,
                    confidence=s.verify_confidence,
                    margin=SAMPLING_PROB_MARGIN,
                )
                result.verify_rollouts, result.verify_rollout_tokens = checker.rollouts, checker.rollout_tokens
                verdict_of = dict(zip(checked, verdicts))
                written: set[tuple] = set()

                def keep_verified(key: tuple, **more: Any) -> None:
                    """Write the candidate ``key`` with its verdict (and ``more`` record fields), once."""
                    if key not in written:
                        written.add(key)
                        index, p = checked[key]
                        v = verdict_of[key]
                        keep(index, p, v.before, v.after, search=p, verdict=v, **more)

                for key, (index, p) in candidates.items():
                    v = verdict_of[key]
                    pivots_inside = [k for k in inner.get(key, []) if verdict_of[k].kept]
                    # A token inside the span that is a pivot on its own is written, the span not (whether or not
                    # the span was kept: its change may also be smaller, as with tokens of opposite sign).
                    if pivots_inside:
                        result.spans_split += 1
                        result.dropped += 1
                        for k in pivots_inside:
                            keep_verified(k)
                    elif v.kept:
                        span_tokens = (
                            self._span_tokens(ids_of[index], p, possible[index], inner[key], verdict_of)
                            if key in inner
                            else None
                        )
                        keep_verified(key, span_tokens=span_tokens)
                    else:
                        result.dropped += 1
                        result.undecided += v.reason == "cap"
            else:
                for index, p in candidates.values():
                    keep(index, p, p.before, p.after)
        result.rollouts = sum(e.rollouts for e in estimators)
        result.rollout_tokens = sum(e.rollout_tokens for e in estimators)
        result.engine_calls = sum(e.engine_calls for e in estimators)
        return result

    def _inner_key(
        self, solution: Sequence[int], index: int, position: int, checked: dict[tuple, tuple], decide: PointDecider
    ) -> tuple:
        """The verification key ``(context, (token,))`` of the single token ``solution[position]`` inside a span,
        added to ``checked`` (with the search's estimates around it) unless it is a candidate already."""
        key = (tuple(solution[:position]), (solution[position],))
        if key not in checked:
            ends = ((index, position), (index, position + 1))
            if not all(e in decide.known for e in ends):
                decide([ends])
            before, after = (decide.known[e] for e in ends)
            checked[key] = (index, PivotalCandidate(position, solution[position], before, after))
        return key

    @staticmethod
    def _span_tokens(
        solution: Sequence[int],
        span: PivotalCandidate,
        possible: Sequence[bool] | None,
        keys: list[tuple],
        verdict_of: dict[tuple, Verdict],
    ) -> list[dict[str, Any]]:
        """Each token of a kept ``span`` as verification measured it alone (none was kept): the record's
        ``span_tokens``. A token the bound rules out was not measured (``reason`` ``"bound"``)."""
        measured = iter(keys)
        out = []
        for position in range(span.position, span.position + span.length):
            entry: dict[str, Any] = {"position": position, "token_id": solution[position]}
            if possible is None or possible[position]:
                v = verdict_of[next(measured)]
                entry.update(
                    prob_before=v.before.p,
                    prob_after=v.after.p,
                    prob_delta=v.after.p - v.before.p,
                    delta_ci=list(v.interval),
                    delta_ci_level=v.level,
                    reason=v.reason,
                )
            else:
                entry.update(prob_before=None, prob_after=None, prob_delta=None, delta_ci=None, reason="bound")
            out.append(entry)
        return out

    def _trace(
        self,
        task: Task,
        prompt_ids: list[int],
        index: int,
        solution: Sequence[int],
        known: dict[int, Estimate],
        sampling_logprobs: Sequence[float] | None,
    ) -> dict[str, Any]:
        """The estimates the search made along one solution: p(success) by position, for display.

        ``sampling_probs[i]`` is pi of token i under the sampling distribution (None: unknown), so a
        display can draw the bound 1 - pi along the solution."""
        tok = self.engine.tokenizer
        return {
            "kind": "solution_trace",
            "dataset_item_id": task.item_id,
            "solution_index": index,
            "query": task.query,
            "prompt_length": len(prompt_ids),
            "solution_ids": list(solution),
            "solution_tokens": [tok.decode([t], skip_special_tokens=False) for t in solution],
            "sampling_probs": [math.exp(lp) for lp in sampling_logprobs]
            if sampling_logprobs is not None
            else [None] * len(solution),
            "estimates": [
                {
                    "position": i,
                    "successes": e.successes,
                    "samples": e.samples,
                    "pooled": e.pooled,
                    "terminal": e.terminal,
                    "exact": e.exact,
                }
                for i, e in sorted(known.items())
            ],
        }

    def _more_solutions(self, est: SuccessEstimator, have: int) -> list[Rollout]:
        """Rollouts from the empty response beyond the initial estimate's, when max_generations asks for more."""
        extra = self.settings.max_generations - have
        return est.sample_more(extra) if extra > 0 else []

    def _solutions(self, root_rollouts: Sequence[Rollout]) -> list[Rollout]:
        """Distinct sampled solutions to search, in the order drawn, at most max_generations."""
        seen, out = set(), []
        for r in root_rollouts:
            key = tuple(r.token_ids)
            if key and key not in seen:
                seen.add(key)
                out.append(r)
        return out[: self.settings.max_generations]

    def _record(
        self,
        task: Task,
        prompt_ids: list[int],
        solution: Sequence[int],
        solution_index: int,
        position: int,
        before: Estimate,
        after: Estimate,
        *,
        length: int = 1,
        search: PivotalCandidate | None = None,
        verdict: Verdict | None = None,
        solution_rollout: Rollout | None = None,
        span_tokens: list[dict[str, Any]] | None = None,
    ) -> PivotalToken:
        """A record of the token ``solution[position]`` (with ``length`` > 1, of the pivotal span
        ``solution[position:position + length]``); ``before``/``after`` are the numbers it reports."""
        tok = self.engine.tokenizer
        s = self.settings
        token_id = solution[position]
        tokens = list(solution[position : position + length])
        context_ids = list(prompt_ids) + list(solution[:position])
        first = sorted(before.first_tokens.items(), key=lambda kv: (-kv[1][0], kv[0]))
        reported = s.confidence or REPORTED_CONFIDENCE
        delta = after.p - before.p
        extra: dict[str, Any]
        if verdict is not None and search is not None:
            extra = dict(
                verified=True,
                delta_ci=list(verdict.interval),
                delta_ci_level=verdict.level,
                candidate={
                    "prob_before": search.before.p,
                    "prob_after": search.after.p,
                    "samples_before": search.before.samples,
                    "samples_after": search.after.samples,
                },
            )
        else:
            extra = dict(delta_ci=list(delta_interval(before, after, reported)), delta_ci_level=reported)
        pis = (
            [sampling_prob(solution_rollout, i) for i in range(position, position + length)] if solution_rollout else []
        )
        pi = None if not pis or None in pis else math.prod(pis)
        span: dict[str, Any] = {}
        if length > 1:
            span = dict(
                span_start=position,
                span_end=position + length,
                span_token_ids=tokens,
                span_tokens=span_tokens,
                continuations=[
                    Continuation(list(ids), tok.decode(list(ids), skip_special_tokens=False), c, k)
                    for ids, (c, k) in sorted(
                        continuations_of(before, length).items(), key=lambda kv: (-kv[1][0], kv[0])
                    )
                ],
            )
        return PivotalToken(
            sampling_prob=pi,
            model_id=self.engine.model_id,
            pivot_context=tok.decode(context_ids, skip_special_tokens=False),
            pivot_token=tok.decode(tokens, skip_special_tokens=False),
            pivot_token_id=token_id,
            prob_before=before.p,
            prob_after=after.p,
            prob_delta=delta,
            is_positive=delta > 0,
            **task.record_fields(),
            pivot_context_ids=context_ids,
            prompt_length=len(prompt_ids),
            samples_before=before.samples,
            successes_before=before.successes,
            samples_after=after.samples,
            successes_after=after.successes,
            pooled_before=before.pooled,
            pooled_after=after.pooled,
            ci_before=list(interval(before, reported)),
            ci_after=list(interval(after, reported)),
            first_tokens=[FirstToken(t, tok.decode([t], skip_special_tokens=False), c, k) for t, (c, k) in first],
            position=position,
            solution_index=solution_index,
            search=record_search(s, reported),
            **span,
            **extra,
        )


def context_length(engine) -> int | None:
    """The most tokens (prompt + response) ``engine``'s model takes, when the engine knows it."""
    return getattr(engine, "context_length", None)


def search_one(searcher: PivotalTokenSearcher, task: Task, context: int | None) -> TaskResult:
    """Search one query, the unit of work everywhere; a prompt that leaves no room for a whole response
    within the model's ``context`` is skipped before any sampling (status ``too_long``)."""
    prompt_ids = searcher.prompt_ids(task)
    if context is not None and len(prompt_ids) + searcher.settings.max_new_tokens > context:
        return TaskResult(task.item_id, "too_long", 0.0)
    return searcher.search(task, prompt_ids)
