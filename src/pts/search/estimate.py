"""Memoized estimates of p(success | query, response prefix) by rollouts and an oracle."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pts.engines.base import Engine, Rollout, RolloutRequest, SamplingParams
from pts.records import stable_seed
from pts.tasks.task import Task

log = logging.getLogger(__name__)

Prefix = tuple[int, ...]


@dataclass
class Estimate:
    """``successes`` of ``samples`` rollouts from one response prefix succeeded.

    A terminal prefix (the response already ended: end-of-sequence token, no
    token budget left, or an answer the oracle calls complete) is judged once,
    exactly: ``samples == 1`` and ``terminal`` is True. ``first_tokens`` maps the
    first token id of each rollout to ``[count, successes]``. ``pooled`` of the
    samples were drawn from a shorter prefix and passed through this one
    (:mod:`pts.search.evidence`); the rest were drawn here.

    ``exact``, when set, is p itself, known without sampling: at a prefix where
    every token the sampler can pick next ends the response, p is the
    pi-weighted share of those endings the oracle accepts (``terminal`` is then
    True as well: the value has no sampling error). For a stratified estimate
    (:mod:`pts.search.verify`) it is the combined value of its strata.
    """

    successes: int
    samples: int
    terminal: bool = False
    first_tokens: dict[int, list[int]] = field(default_factory=dict)
    pooled: int = 0
    exact: float | None = None
    continuations: dict[tuple[int, ...], list[int]] = field(default_factory=dict)

    @property
    def p(self) -> float:
        return self.exact if self.exact is not None else self.successes / self.samples


class SuccessEstimator:
    """p(success | prompt + response prefix) for one task, memoized by the prefix token ids.

    ``prompt_ids`` is the exact prompt; prefixes are response token ids after it.
    Every rollout is capped so that prefix + continuation stays within
    ``max_new_tokens``: the estimate is for the same sampling process that
    produced the solution being searched. The oracle judges the decoded response
    (prefix + continuation), never the prompt; ``judge_prefix`` is prepended for
    judging only (e.g. ``"<think>"`` when the prompt opened a think block).
    With a ``seed``, each request gets a seed derived from it, the prefix and the
    samples already drawn there: a rerun draws the same samples, whatever order
    or batching the estimates are asked in. With ``continuation_length`` > 0,
    estimates also count the first that many tokens of their rollouts
    (``Estimate.continuations``).

    Estimators that sample on their own terms (pooled, staged) build on
    :meth:`terminal` and :meth:`shortfall` (what a prefix still needs),
    :meth:`request` and :meth:`sample` (seeded requests, one counted engine
    call) and :meth:`score` (judge rollouts into an estimate).
    """

    def __init__(
        self,
        engine: Engine,
        task: Task,
        prompt_ids: Sequence[int],
        params: SamplingParams,
        *,
        num_samples: int,
        max_new_tokens: int,
        seed: int | None = None,
        judge_prefix: str = "",
        early_stop: bool = True,
        on_rollout: Callable[[str, Rollout, bool], None] | None = None,
        continuation_length: int = 0,
    ) -> None:
        self.engine = engine
        self.continuation_length = continuation_length
        self.task = task
        self.prompt_ids = tuple(prompt_ids)
        self.params = params
        self.seed = seed
        self.num_samples = num_samples
        self.max_new_tokens = max_new_tokens
        self.judge_prefix = judge_prefix
        self.early_stop = early_stop
        self.on_rollout = on_rollout
        self.cache: dict[Prefix, Estimate] = {}
        self.engine_calls = 0
        self.rollouts = 0
        self.rollout_tokens = 0

    def request(self, prefix: Prefix, n: int, text: str, *salt: object) -> RolloutRequest:
        """A request for ``n`` rollouts from ``prefix`` (decoded: ``text``), within the response's token budget.

        With a ``seed``, the request's seed is derived from it, the prefix and ``salt``
        (e.g. the samples already drawn there), so the same ask draws the same rollouts.
        """
        seed = None if self.seed is None else stable_seed(self.seed, prefix, *salt)
        return RolloutRequest(
            self.prompt_ids + prefix, n, self.max_new_tokens - len(prefix), stop=self._stop_test(text), seed=seed
        )

    def _stop_test(self, prefix_text: str) -> Callable[[str], bool] | None:
        if not self.early_stop:
            return None
        complete = self.task.oracle.answer_complete
        head = self.judge_prefix + prefix_text
        return lambda continuation: complete(head + continuation)

    def sample(self, requests: list[RolloutRequest]) -> list[list[Rollout]]:
        """The engine's rollouts for ``requests``, in one call (counted in ``engine_calls``)."""
        self.engine_calls += 1
        return self.engine.sample(requests, self.params)

    def response_text(self, response_ids: Sequence[int]) -> str:
        """Response token ids decoded as the oracle reads them (without ``judge_prefix``)."""
        return self.engine.tokenizer.decode(list(response_ids), skip_special_tokens=True)

    def _judge(self, text: str) -> bool:
        return self.task.judge(self.judge_prefix + text)

    def terminal(self, prefix: Prefix, text: str | None = None) -> Estimate | None:
        """The exact estimate of a prefix that already ends the response; None for one that does not.

        A response ends with an end-of-sequence token, when its token budget is used up,
        or (with ``early_stop``) once the oracle calls its answer complete; such a prefix
        is judged directly (one oracle call), never sampled. ``text`` is the prefix
        decoded, when the caller has it.
        """
        text = self.response_text(prefix) if text is None else text
        ends = (
            (bool(prefix) and prefix[-1] in self.engine.eos_token_ids)
            or len(prefix) >= self.max_new_tokens
            or (self.early_stop and self.task.oracle.answer_complete(self.judge_prefix + text))
        )
        return Estimate(int(self._judge(text)), 1, terminal=True) if ends else None

    def shortfall(self, prefix: Prefix, target: int) -> tuple[Estimate, str | None]:
        """The memo entry of ``prefix``, and the prefix decoded when the entry holds fewer than ``target`` samples.

        The entry is made on the first ask: judged when the prefix ends the response
        (:meth:`terminal`), else empty. The text is None when the entry needs no more
        samples (it is terminal or has ``target``); otherwise it is what :meth:`request` takes.
        """
        est = self.cache.get(prefix)
        text: str | None = None
        if est is None:
            text = self.response_text(prefix)
            est = self.cache[prefix] = self.terminal(prefix, text) or Estimate(0, 0)
        if est.terminal or est.samples >= target:
            return est, None
        return est, text if text is not None else self.response_text(prefix)

    def estimate(
        self, prefixes: Sequence[Sequence[int]], *, samples: int | None = None, keep_rollouts: bool = False
    ) -> tuple[list[Estimate], dict[Prefix, list[tuple[Rollout, bool]]]]:
        """Estimates for all ``prefixes`` with at least ``samples`` rollouts each (default ``num_samples``).

        Memoized prefixes are topped up rather than sampled again; everything still
        missing goes to the engine in one call. Returns the estimates in order and
        (with ``keep_rollouts``) the rollouts drawn by this call with the oracle's
        verdict on each, keyed by prefix.
        """
        target = samples or self.num_samples
        wanted = [tuple(p) for p in prefixes]
        missing: list[tuple[Prefix, int]] = []
        texts: dict[Prefix, str] = {}
        for prefix in dict.fromkeys(wanted):
            est, text = self.shortfall(prefix, target)
            if text is not None:
                texts[prefix] = text
                missing.append((prefix, target - est.samples))
        drawn: dict[Prefix, list[tuple[Rollout, bool]]] = {}
        if missing:
            requests = [self.request(prefix, n, texts[prefix], self.cache[prefix].samples) for prefix, n in missing]
            for (prefix, _), rollouts in zip(missing, self.sample(requests)):
                verdicts = self.score(self.cache[prefix], prefix, rollouts)
                if keep_rollouts:
                    drawn[prefix] = list(zip(rollouts, verdicts))
        return [self.cache[p] for p in wanted], drawn

    def score(self, est: Estimate, prefix: Prefix, rollouts: list[Rollout]) -> list[bool]:
        """Judge ``rollouts`` drawn from ``prefix`` and count them in ``est``; returns the verdicts."""
        verdicts = self.judge_rollouts(prefix, rollouts)
        for rollout, ok in zip(rollouts, verdicts):
            est.samples += 1
            est.successes += ok
            if rollout.token_ids:
                counts = est.first_tokens.setdefault(rollout.token_ids[0], [0, 0])
                counts[0] += 1
                counts[1] += ok
            if self.continuation_length:
                counts = est.continuations.setdefault(tuple(rollout.token_ids[: self.continuation_length]), [0, 0])
                counts[0] += 1
                counts[1] += ok
        return verdicts

    def judge_response(self, response_ids: Sequence[int]) -> bool:
        """The oracle's verdict on a whole response (not counted as a rollout)."""
        return self._judge(self.response_text(response_ids))

    def judge_rollouts(self, prefix: Prefix, rollouts: Sequence[Rollout]) -> list[bool]:
        """The oracle's verdicts on ``prefix`` + each rollout, counted in this estimator's totals.

        All of them go to the oracle at once: one that runs programs runs them in parallel.
        """
        texts = [self.response_text(prefix + tuple(r.token_ids)) for r in rollouts]
        verdicts = self.task.judge_many([self.judge_prefix + text for text in texts])
        for rollout, text, ok in zip(rollouts, texts, verdicts):
            self.rollouts += 1
            self.rollout_tokens += len(rollout.token_ids)
            if self.on_rollout is not None:
                self.on_rollout(text, rollout, ok)
        return verdicts

    def sample_more(self, n: int) -> list[Rollout]:
        """``n`` more full responses from the empty prefix, outside any estimate."""
        (rollouts,) = self.sample([self.request((), n, "", "solutions")])
        self.rollouts += len(rollouts)
        self.rollout_tokens += sum(len(r.token_ids) for r in rollouts)
        return rollouts


Estimator = TypeVar("Estimator", bound=SuccessEstimator)


@dataclass(frozen=True)
class QueryRollouts:
    """What every estimator of one query's rollouts shares: the ``engine`` and its sampling ``params``, the
    ``task`` whose oracle judges, the exact prompt ``prompt_ids``, the response's token budget
    ``max_new_tokens``, ``judge_prefix`` and ``early_stop`` (as :class:`SuccessEstimator` takes them)."""

    engine: Engine
    task: Task
    prompt_ids: Sequence[int]
    params: SamplingParams
    max_new_tokens: int
    judge_prefix: str = ""
    early_stop: bool = True

    def estimator(self, kind: type[Estimator], *, num_samples: int, seed: int | None, **kw: Any) -> Estimator:
        """A new estimator of class ``kind`` for these rollouts; ``kw`` are that class's own keywords."""
        return kind(
            self.engine,
            self.task,
            self.prompt_ids,
            self.params,
            num_samples=num_samples,
            max_new_tokens=self.max_new_tokens,
            seed=seed,
            judge_prefix=self.judge_prefix,
            early_stop=self.early_stop,
            **kw,
        )
