"""One query of ``pts critical``: its incorrect trajectories (sampled, or an input response), scored, as records.

:class:`QueryAnalyser` holds what the queries of a run share; its
:meth:`~QueryAnalyser.steps` is the step generator of one query (driven by
:func:`~pts.search.critical.rounds.run_rounds`, many side by side), and
:func:`analyse` runs one query alone to the end, the unit of work of ``pts
critical --ray``. Every rollout of a query is seeded from the run's seed, the
dataset and the item id, so a query's records never depend on which queries
shared its engine calls or which process analysed it.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from pts.errors import PTSError
from pts.records import CriticalToken, FirstToken, stable_seed
from pts.search.analyser import Analyser, Outcome
from pts.search.critical.finder import CriticalTokenFinder, incorrect_trajectories
from pts.search.critical.result import CriticalResult
from pts.search.critical.rounds import run_rounds
from pts.search.critical.staged import Ask, StagedEstimator
from pts.search.estimate import QueryRollouts
from pts.search.searcher import context_length


@dataclass
class QueryOutcome(Outcome):
    """What analysing one query gave: ``status`` is analysed, no_incorrect, skipped (p below --min-prob),
    correct (input response), no_room or too_long (the prompt leaves no room for a response in the model's
    context); ``records`` are :class:`CriticalToken` records."""

    scoring_rollouts: int = 0
    pass_at_k_rollouts: int = 0
    incorrect: int = 0  # incorrect trajectories found, before any limit took its share (records: those analysed)


@dataclass(frozen=True)
class Trajectories:
    """Where a query's incorrect trajectories come from when no response is given: ``count`` responses are
    sampled and the ones the oracle rejects analysed; a query correct less often than ``min_prob`` is skipped."""

    count: int = 8
    min_prob: float = 0.0


@dataclass(eq=False)
class QueryAnalyser(Analyser):
    """What the queries of one run share, and :meth:`steps`, the step generator of one query.

    ``settings`` say how tokens are scored; ``trajectories`` how a query's
    incorrect trajectories are sampled; ``sampling`` and ``prompt_options`` are the
    sampling and prompt options of ``pts critical``.
    """

    trajectories: Trajectories = field(default_factory=Trajectories)

    def __post_init__(self) -> None:
        super().__post_init__()
        settings, sampling, p = self.settings, self.sampling, self.params
        self.context = context_length(self.engine)
        self.search_info = {
            "rollouts": settings.rollouts,
            "probe_samples": settings.probe,
            "verify_stride": settings.verify_stride,
            "verify_full": settings.verify_full,
            "verify_samples": settings.band_samples,
            "pool": settings.pool,
            "low_threshold": settings.low_threshold,
            "pass_at_k": settings.pass_at_k_samples,
            "max_new_tokens": sampling.max_new_tokens,
            "temperature": p.temperature,
            "top_p": p.top_p,
            "top_k": p.top_k,
            "min_p": p.min_p,
            "early_stop": sampling.early_stop,
            "seed": sampling.seed,
        }

    def steps(
        self,
        task: Any,
        response: Any = None,
        allocate: Callable[[int], int] | None = None,
    ) -> Generator[list[Ask], None, QueryOutcome]:
        """One query: its incorrect trajectories (sampled, or ``response``: text or token ids), scored.

        ``allocate(n)`` says how many of the ``n`` incorrect trajectories to
        analyse (the first ones; default: all); 0 gives status ``no_room``.
        """
        sampling, tok, wanted = self.sampling, self.tok, self.trajectories
        prompt_ids, judge_prefix = self.prompt(task)
        seed = stable_seed(sampling.seed, task.dataset_id, task.item_id)
        out = QueryOutcome(task.item_id, "analysed")
        budget = sampling.max_new_tokens
        ids = None if response is None else response_ids(tok, self.engine, response, task.item_id)
        if ids is not None:
            budget = max(budget, len(ids))
        if self.context is not None and len(prompt_ids) + budget > self.context:
            out.status = "too_long"  # nothing sampled: the prompt leaves no room for a whole response
            return out
        rollouts = QueryRollouts(
            self.engine,
            task,
            prompt_ids,
            self.params,
            max_new_tokens=budget,
            judge_prefix=judge_prefix,
            early_stop=sampling.early_stop,
        )
        if ids is None:
            sampler = rollouts.estimator(
                StagedEstimator, num_samples=wanted.count, seed=stable_seed(seed, "trajectories"), keep_rollouts=True
            )
            yield [(sampler, {(): wanted.count})]
            out.rollouts, out.rollout_tokens = sampler.rollouts, sampler.rollout_tokens
            out.p_initial = sampler.cache[()].p
            if out.p_initial < wanted.min_prob - 1e-9:
                out.status = "skipped"
                return out
            trajectories = incorrect_trajectories(
                task,
                sampler.drawn.get((), []),
                judge_prefix,
                decode=lambda ids: tok.decode(list(ids), skip_special_tokens=True),
            )
            if not trajectories:
                out.status = "no_incorrect"
                return out
            # pi of each trajectory's tokens, where the engine reports it: the bound skips tokens that cannot be critical.
            pi_of = {tuple(r.token_ids): r.sampling_logprobs for r in sampler.drawn.get((), [])}
            sampling_logprobs = [pi_of.get(t) for t in trajectories]
        else:
            if task.judge(judge_prefix + tok.decode(ids, skip_special_tokens=True)):
                out.status = "correct"
                return out
            trajectories = [tuple(ids)]
            sampling_logprobs = [None]  # a given response carries no sampling probabilities: nothing is skipped
        out.incorrect = len(trajectories)
        granted = len(trajectories) if allocate is None else allocate(len(trajectories))
        if granted == 0:
            out.status = "no_room"
            return out
        finder = CriticalTokenFinder(rollouts, self.settings, seed=seed)
        results = yield from finder.steps(trajectories[:granted], sampling_logprobs[:granted])
        out.scoring_rollouts = finder.scores.rollouts
        out.pass_at_k_rollouts = sum(e.rollouts for e in finder.pass_at_k_estimators)
        out.rollouts += out.scoring_rollouts + out.pass_at_k_rollouts
        out.rollout_tokens += sum(e.rollout_tokens for e in (finder.scores, *finder.pass_at_k_estimators))
        out.records = [self._record(task, prompt_ids, index, r, out.p_initial) for index, r in enumerate(results)]
        return out

    def _record(
        self, task: Any, prompt_ids: list[int], index: int, r: CriticalResult, p_initial: float | None
    ) -> CriticalToken:
        tok, settings = self.tok, self.settings
        pos, ids = r.position, list(r.response_ids)
        alts = [FirstToken(t, tok.decode([t], skip_special_tokens=False), c, k) for t, (c, k) in r.alternatives.items()]
        return CriticalToken(
            model_id=self.engine.model_id,
            response=tok.decode(ids, skip_special_tokens=True),
            response_ids=ids,
            prompt_ids=list(prompt_ids),
            prompt_length=len(prompt_ids),
            critical_position=pos,
            critical_token=None if pos is None else tok.decode([ids[pos]], skip_special_tokens=False),
            critical_token_id=r.token_id,
            critical_context="" if pos is None else tok.decode(list(prompt_ids) + ids[:pos], skip_special_tokens=False),
            rule=r.rule,
            score=r.score,
            scores=r.scores,
            score_samples=[0 if e is None else e.samples for e in r.estimates],
            score_successes=[0 if e is None else e.successes for e in r.estimates],
            score_terminal=[e is not None and e.terminal for e in r.estimates],
            low_threshold=settings.low_threshold,
            mode=settings.mode,
            rollouts=r.rollouts,
            **task.record_fields(),
            trajectory_index=index,
            p_initial=p_initial,
            **r.pass_at_k_fields(),
            alternatives=alts,
            response_tokens=[tok.decode([t], skip_special_tokens=False) for t in ids],
            search={**self.search_info, "mode": settings.mode, "alternatives_support": r.alternatives_support},
        )


def analyse(analyser: QueryAnalyser, task: Any, response: Any = None, limit: int | None = None) -> QueryOutcome:
    """One query analysed to the end on the analyser's engine, at most ``limit`` of its incorrect trajectories
    (the first ones): what a local run with that much of ``--max-trajectories`` left writes for it."""
    allocate = None if limit is None else (lambda n: min(n, limit))
    return run_rounds(analyser.engine, [analyser.steps(task, response, allocate)])[0]


def response_ids(tokenizer: Any, engine: Any, response: Any, item_id: str = "?") -> list[int]:
    """Token ids of an input response: tokenized after the prompt and closed with end-of-sequence.

    Given ids (a row's ``response_ids``) must be token ids of the model: PTSError naming the item otherwise.
    """
    if isinstance(response, list):
        size = len(tokenizer) if hasattr(tokenizer, "__len__") else None
        bad = [i for i in response if i < 0 or (size is not None and i >= size)]
        if bad:
            within = f" (its vocabulary has {size} tokens)" if size is not None else ""
            raise PTSError(f"item {item_id}: response_ids holds {bad[0]}, which is not a token id of the model{within}")
        return response
    ids = list(tokenizer(response, add_special_tokens=False)["input_ids"])
    eos = tokenizer.eos_token_id if tokenizer.eos_token_id in engine.eos_token_ids else min(engine.eos_token_ids)
    if not ids or ids[-1] not in engine.eos_token_ids:
        ids.append(eos)
    return ids
