"""Pivotal Token Search for one query: the Phi-4 procedure around :func:`find_pivots`."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from pts.engines.base import Engine, Rollout, SamplingParams
from pts.records import FirstToken, PivotalToken, stable_seed
from pts.search.estimate import SuccessEstimator
from pts.search.pivotal import IntervalDecider, Pivot, PointDecider, SplitAt, find_pivots, interval
from pts.tasks.task import Task

log = logging.getLogger(__name__)

# Level of the Wilson intervals written to records when sampling is not adaptive.
REPORTED_CONFIDENCE = 0.95


@dataclass
class SearchSettings:
    """Options of the search itself; names and defaults follow the original PTS tool."""

    prob_threshold: float = 0.2
    num_samples: int = 10
    max_new_tokens: int = 512
    max_generations: int = 10
    min_prob: float = 0.2
    max_prob: float = 0.8
    split_at: SplitAt = "logprob"
    early_stop: bool = True
    system_prompt: str | None = None
    chat_template: bool = True
    temperature: float = 0.6
    top_p: float = 0.95
    top_k: int = 20
    min_p: float = 0.0
    seed: int = 42
    confidence: float | None = None

    def decider(self, estimate_positions) -> PointDecider:
        """Fixed ``num_samples`` per estimate, or adaptive rounds when a ``confidence`` is set."""
        if self.confidence:
            return IntervalDecider(estimate_positions, self.prob_threshold, self.num_samples, self.confidence)
        return PointDecider(estimate_positions, self.prob_threshold, self.num_samples)

    def sampling(self) -> SamplingParams:
        return SamplingParams(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k,
                              min_p=self.min_p)


@dataclass
class TaskResult:
    """What searching one query produced and cost."""

    item_id: str
    status: str  # "searched" or "skipped" (initial p outside [min_prob, max_prob])
    p_initial: float
    pivots: list[PivotalToken] = field(default_factory=list)
    solutions: int = 0
    rollouts: int = 0
    rollout_tokens: int = 0
    engine_calls: int = 0

    def summary(self) -> dict[str, Any]:
        positive = sum(p.is_positive for p in self.pivots)
        return {"status": self.status, "p_initial": self.p_initial, "solutions": self.solutions,
                "pivots": len(self.pivots), "positive": positive, "negative": len(self.pivots) - positive,
                "rollouts": self.rollouts, "rollout_tokens": self.rollout_tokens}


def build_prompt_ids(tokenizer: Any, prompt: str, system_prompt: str | None = None,
                     chat_template: bool = True) -> list[int]:
    """The prompt as token ids: the tokenizer's chat template when it has one, else the raw text."""
    if chat_template and getattr(tokenizer, "chat_template", None):
        messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
        messages.append({"role": "user", "content": prompt})
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])
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
    search on each, sharing one memo of p(success | prefix) per query.
    """

    def __init__(self, engine: Engine, settings: SearchSettings,
                 on_rollout: Callable[[str, Rollout, bool], None] | None = None) -> None:
        self.engine = engine
        self.settings = settings
        self.on_rollout = on_rollout

    def search(self, task: Task) -> TaskResult:
        s = self.settings
        tok = self.engine.tokenizer
        prompt_ids = build_prompt_ids(tok, task.prompt, s.system_prompt, s.chat_template)
        prompt_text = tok.decode(prompt_ids, skip_special_tokens=False)
        est = SuccessEstimator(
            self.engine, task, prompt_ids, s.sampling(), num_samples=s.num_samples,
            max_new_tokens=s.max_new_tokens, seed=stable_seed(s.seed, task.dataset_id, task.item_id),
            judge_prefix="<think>" if opens_think_block(prompt_text) else "",
            early_stop=s.early_stop, on_rollout=self.on_rollout,
        )
        (root,), drawn = est.estimate([()], keep_rollouts=True)
        result = TaskResult(task.item_id, "searched", root.p)
        if not (s.min_prob - 1e-9 <= root.p <= s.max_prob + 1e-9):
            result.status = "skipped"
            log.info("item %s: p(success)=%.2f outside [%.2f, %.2f], skipped",
                     task.item_id, root.p, s.min_prob, s.max_prob)
        else:
            for index, solution in enumerate(self._solutions(est, drawn.get((), []))):
                ids = solution.token_ids

                def estimate_positions(positions: list[int], samples: int, ids=ids):
                    return est.estimate([tuple(ids[:i]) for i in positions], samples=samples)[0]

                pivots = find_pivots(ids, s.decider(estimate_positions), split_at=s.split_at,
                                     logprobs=solution.logprobs)
                result.solutions += 1
                # Solutions sharing a prefix find the same pivot; keep it once.
                seen = {r.id for r in result.pivots}
                for p in pivots:
                    record = self._record(task, prompt_ids, ids, p, index)
                    if record.id not in seen:
                        seen.add(record.id)
                        result.pivots.append(record)
        result.rollouts, result.rollout_tokens, result.engine_calls = est.rollouts, est.rollout_tokens, est.engine_calls
        return result

    def _solutions(self, est: SuccessEstimator, root_rollouts: Sequence[Rollout]) -> list[Rollout]:
        """Distinct sampled solutions to search: the root rollouts first, more if max_generations asks."""
        s = self.settings
        pool = list(root_rollouts)
        extra = s.max_generations - len(pool)
        if extra > 0:
            pool += est.sample_more(extra)
        seen, out = set(), []
        for r in pool:
            key = tuple(r.token_ids)
            if key and key not in seen:
                seen.add(key)
                out.append(r)
        return out[: s.max_generations]

    def _record(self, task: Task, prompt_ids: list[int], solution: Sequence[int], pivot: Pivot,
                solution_index: int) -> PivotalToken:
        tok = self.engine.tokenizer
        s = self.settings
        context_ids = list(prompt_ids) + list(solution[: pivot.position])
        first = sorted(pivot.before.first_tokens.items(), key=lambda kv: (-kv[1][0], kv[0]))
        return PivotalToken(
            model_id=self.engine.model_id,
            query=task.query,
            pivot_context=tok.decode(context_ids, skip_special_tokens=False),
            pivot_token=tok.decode([pivot.token_id], skip_special_tokens=False),
            pivot_token_id=pivot.token_id,
            prob_before=pivot.before.p,
            prob_after=pivot.after.p,
            prob_delta=pivot.delta,
            is_positive=pivot.delta > 0,
            task_type=task.task_type,
            dataset_id=task.dataset_id,
            dataset_item_id=task.item_id,
            pivot_context_ids=context_ids,
            prompt_length=len(prompt_ids),
            samples_before=pivot.before.samples,
            successes_before=pivot.before.successes,
            samples_after=pivot.after.samples,
            successes_after=pivot.after.successes,
            ci_before=list(interval(pivot.before, s.confidence or REPORTED_CONFIDENCE)),
            ci_after=list(interval(pivot.after, s.confidence or REPORTED_CONFIDENCE)),
            first_tokens=[FirstToken(t, tok.decode([t], skip_special_tokens=False), c, k) for t, (c, k) in first],
            answer=task.answer,
            position=pivot.position,
            solution_index=solution_index,
            search={"prob_threshold": s.prob_threshold, "num_samples": s.num_samples,
                    "max_new_tokens": s.max_new_tokens, "split_at": s.split_at,
                    "temperature": s.temperature, "top_p": s.top_p, "top_k": s.top_k, "min_p": s.min_p,
                    "confidence": s.confidence or REPORTED_CONFIDENCE, "adaptive": bool(s.confidence)},
        )
