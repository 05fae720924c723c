"""DPO pairs from pivotal tokens, each counterpart measured with the task's oracle.

One pair per pivotal token: the context up to the pivot is the prompt, and
chosen/rejected are single tokens. A positive pivot is chosen against an
alternative next token whose measured p(success) is lower by at least
``min_prob_delta``; a negative pivot is rejected against one measured higher.
Counterparts come from measurements only, never from likelihood alone:

1. ``first_tokens`` of the record: rollouts sampled from the pivot's context
   during the search, grouped by their first token, with their successes. An
   alternative token needs at least ``min_counterpart_samples`` rollouts; its
   p(success) is successes / rollouts. Free: nothing is sampled.
2. With ``find_rejected_tokens``, for pivots still without one: the model's top
   ``num_candidates`` next tokens at the context (special tokens excluded) and
   the pivot itself are each estimated from ``num_samples`` rollouts judged by
   the dataset's oracle, in one engine call per pivot. Both sides of such a
   pair come from this new estimate, so an oracle that never accepts gives
   p = 0 everywhere and no pair.

Among qualifying alternatives the one the model takes most often wins
(most rollouts, or highest next-token probability), then the larger margin.

A pivotal span (several tokens, ``span_token_ids``) gives a span pair: the
prompt is the context before the span, one side is the span and the other a
continuation of the same length that rollouts from that context took, with
its successes (the record's ``continuations``, the span's counterpart of
``first_tokens``), chosen by the same rule. ``chosen_ids``/``rejected_ids``
then hold all of each side's tokens. A span without such a continuation gets
one measured with ``find_rejected_tokens``: the most frequent runs of its
length that new rollouts from the context took (:meth:`CounterpartFinder.measure_span`),
each estimated after the run, with the span, from ``num_samples`` rollouts.

``metadata.counterpart_verified`` is true only when the gap is established:
the interval of ``prob_chosen - prob_rejected`` at ``gap_confidence``
(Newcombe's hybrid score interval from the two Wilson intervals, as the
search's own verification uses) lies above zero. The pivot's side uses the
record's own counts, which for a verified record are its verification
rollouts. A gap of one success in four rollouts is not established at 0.9.

Output rows (JSONL) are ``{"prompt", "chosen", "rejected", "metadata"}``:

- plain form (the default): ``prompt_ids``, ``chosen_ids`` and
  ``rejected_ids`` are the measured token ids under the names TRL's
  ``DPOTrainer`` uses after tokenizing (one id each for chosen and rejected,
  no end-of-sequence token), and ``prompt``/``chosen``/``rejected`` the same
  as text. TRL 1.16 always tokenizes the text again and appends EOS to
  chosen and rejected, and has no switch to keep given ids: right after a
  pivot that EOS is most of each completion's log-probability, so the pair
  would mostly teach "stop here". :data:`pts.formats.dpo.TRL_IDS_TRAINER` is the
  few-line ``DPOTrainer`` subclass (in the docs and every DPO card) that
  trains on the ids as they are. ``metadata.trl_tokens_match`` says, per row,
  whether stock TRL's tokenization reproduces the measured prompt ids and
  single token (EOS aside).
- conversational form (``chat``): ``prompt`` is the messages the chat template
  rendered (``[{"role": "user", ...}]``, a system message when there was a
  non-default one) and chosen/rejected are one assistant message each: the
  response so far followed by the token. TRL 1.16 renders the prompt with a
  generation prompt, so a partial assistant turn cannot sit in the prompt; the
  shared response prefix is in both completions instead. Under the sigmoid DPO
  loss its log-probabilities cancel between chosen and rejected, so the
  preference is the single token, but the chat template closes each
  completion with its end-of-turn token, which is trained too (the same
  trade-off as stock TRL on the plain text).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pts import options
from pts.engines.base import SamplingParams
from pts.errors import PTSError
from pts.export.records import PivotalTokenRow, chat_messages
from pts.records import stable_seed
from pts.stats import newcombe_interval, wilson_interval
from pts.tasks.task import Task

log = logging.getLogger(__name__)

_EPS = 1e-9


@dataclass
class DPOSettings:
    """Options of the DPO export (CLI flags of the same names)."""

    min_prob_delta: float = options.checked(0.1, "half_open_unit")
    min_counterpart_samples: int = options.checked(2, "count")
    balance: bool = False
    max_pairs: int | None = options.checked(None, "count")
    seed: int = 42
    find_rejected_tokens: bool = False
    num_candidates: int = options.checked(10, "count")
    num_samples: int | None = options.checked(None, "count")
    max_new_tokens: int | None = options.checked(None, "count")
    chat: bool = False
    gap_confidence: float = options.checked(0.9, "open_unit")
    progress: bool = True

    def validate(self) -> None:
        options.check(self)


@dataclass
class Measured:
    """A next token at the pivot's context and p(success) after it: ``successes`` of ``samples`` rollouts.

    For a span pair, ``token_ids`` are all the side's tokens (``token_id`` is the first, ``token`` the text).
    """

    token_id: int
    token: str
    successes: int
    samples: int
    likelihood: float = 0.0  # rollouts that took it, or its next-token probability: how often the model picks it
    token_ids: tuple[int, ...] = ()

    @property
    def p(self) -> float:
        return self.successes / self.samples

    @property
    def ids(self) -> list[int]:
        """The side's token ids: the span's, or the one token."""
        return list(self.token_ids) or [self.token_id]


@dataclass
class DPOReport:
    """What the DPO export did with each pivot."""

    pivots: int = 0
    pairs: int = 0
    positive: int = 0
    negative: int = 0
    from_first_tokens: int = 0
    from_estimates: int = 0
    below_min_delta: int = 0
    no_counterpart: int = 0
    no_task: int = 0
    no_prompt_split: int = 0
    no_token_id: int = 0
    dropped_by_balance_or_max: int = 0
    rollouts: int = 0
    skipped_for_chat: int = 0
    established: int = 0
    gap_confidence: float = 0.9
    notes: list[str] = field(default_factory=list)

    def skipped_text(self) -> str:
        """Why pivots gave no pair, e.g. ``3 no measured counterpart, 1 no matching dataset item``."""
        skipped = {
            "|prob_delta| below --min-prob-delta": self.below_min_delta,
            "no measured counterpart": self.no_counterpart,
            "no matching dataset item": self.no_task,
            "prompt/response split unknown": self.no_prompt_split,
            "pivot token is not one token of this tokenizer": self.no_token_id,
            "prompt not rendered by the chat template": self.skipped_for_chat,
            "left out by --balance/--max-pairs": self.dropped_by_balance_or_max,
        }
        return ", ".join(f"{n} {why}" for why, n in skipped.items() if n)

    def format(self) -> str:
        lines = [
            (
                f"pairs: {self.pairs} ({self.positive} from positive pivots, {self.negative} from negative) "
                f"out of {self.pivots} pivotal tokens"
            ),
            f"counterparts: {self.from_first_tokens} from recorded rollouts, {self.from_estimates} estimated now"
            + (f" ({self.rollouts} rollouts)" if self.rollouts else ""),
            f"gap established at {self.gap_confidence:g} (counterpart_verified): {self.established} of "
            f"{self.pairs} pairs",
        ]
        if self.skipped_text():
            lines.append("skipped: " + self.skipped_text())
        return "\n".join(lines + self.notes)


def first_token_alternatives(pivot: PivotalTokenRow, min_samples: int) -> list[Measured]:
    """Alternatives to the pivot among the first tokens its context's rollouts took, with enough samples;
    for a span, among the continuations of its length."""
    if pivot.is_span:
        span = list(pivot.span_token_ids or [])
        return [
            Measured(c.token_ids[0], c.text, c.successes, c.count, likelihood=c.count, token_ids=tuple(c.token_ids))
            for c in pivot.continuations
            if list(c.token_ids) != span and len(c.token_ids) == len(span) and c.count >= min_samples
        ]
    return [
        Measured(t.token_id, t.token, t.successes, t.count, likelihood=t.count)
        for t in pivot.first_tokens
        if t.token_id != pivot.pivot_token_id and t.count >= min_samples
    ]


def pick_counterpart(
    is_positive: bool, p_pivot: float, alternatives: Sequence[Measured], min_delta: float
) -> Measured | None:
    """The alternative that makes a pair with the pivot, or None.

    A positive pivot needs one at least ``min_delta`` less likely to succeed, a
    negative one at least ``min_delta`` more likely. The model's most frequent
    choice wins, then the larger margin, then the lower token id.
    """
    sign = 1 if is_positive else -1
    ok = [a for a in alternatives if sign * (p_pivot - a.p) >= min_delta - _EPS]
    if not ok:
        return None
    return min(ok, key=lambda a: (-a.likelihood, -sign * (p_pivot - a.p), a.token_id))


def match_tasks(pivots: Sequence[PivotalTokenRow], tasks: Sequence[Task]) -> dict[str, Task]:
    """The task of each pivot (by pivot id): same dataset id and item id, else the same query text."""
    by_item = {(t.dataset_id, t.item_id): t for t in tasks}
    by_query: dict[str, list[Task]] = {}
    for t in tasks:
        by_query.setdefault(t.query, []).append(t)
    out = {}
    for p in pivots:
        task = by_item.get((p.dataset_id, p.dataset_item_id))
        if task is None and len(by_query.get(p.query, [])) == 1:
            task = by_query[p.query][0]
        if task is not None:
            out[p.id] = task
    return out


class CounterpartFinder:
    """Measures the model's top next tokens at a pivot's context with the task's oracle.

    ``engine`` samples rollouts (any :class:`pts.engines.base.Engine`) and
    ranks a single token's candidates with ``engine.next_token_logprobs(prefixes)``
    (a span's are sampled: :meth:`measure_span`).
    """

    def __init__(self, engine: Any, settings: DPOSettings) -> None:
        self.engine = engine
        self.settings = settings
        self.rollouts = 0
        special = getattr(engine.tokenizer, "all_special_ids", None) or []
        self.excluded = set(special) | set(engine.eos_token_ids)

    def default_samples(self, pivot: PivotalTokenRow) -> int:
        """Rollouts per candidate when --num-samples is not given: the records' own search setting."""
        from pts.search.searcher import SearchSettings

        return int({**vars(SearchSettings()), **pivot.search}["num_samples"])

    def candidates(self, pivot: PivotalTokenRow) -> list[tuple[int, float]]:
        """The ``num_candidates`` most likely next tokens other than the pivot, with their probabilities."""
        logprobs = self.engine.next_token_logprobs([pivot.context_ids])[0]
        k = min(logprobs.shape[-1], self.settings.num_candidates + len(self.excluded) + 1)
        values, ids = logprobs.topk(k)
        out = []
        for lp, t in zip(values.tolist(), ids.tolist()):
            if t != pivot.pivot_token_id and t not in self.excluded:
                out.append((t, float(lp)))
        return out[: self.settings.num_candidates]

    def estimator(self, pivot: PivotalTokenRow, task: Task, continuation_length: int = 0) -> Any:
        """A :class:`~pts.search.estimate.SuccessEstimator` of p(success) after ``pivot``'s prompt, with the
        record's own search settings (sampling, rollouts, budget) unless the export's override them."""
        from pts.search.estimate import SuccessEstimator
        from pts.search.searcher import SearchSettings, opens_think_block

        s = self.settings
        search = {**vars(SearchSettings()), **pivot.search}
        prompt_ids = pivot.context_ids[: pivot.prompt_length]
        params = SamplingParams(
            temperature=search["temperature"], top_p=search["top_p"], top_k=search["top_k"], min_p=search["min_p"]
        )
        prompt_text = self.engine.tokenizer.decode(prompt_ids, skip_special_tokens=False)
        return SuccessEstimator(
            self.engine,
            task,
            prompt_ids,
            params,
            num_samples=s.num_samples or search["num_samples"],
            max_new_tokens=s.max_new_tokens or search["max_new_tokens"],
            seed=stable_seed(s.seed, "counterparts", pivot.id),
            judge_prefix="<think>" if opens_think_block(prompt_text) else "",
            continuation_length=continuation_length,
        )

    def measure(self, pivot: PivotalTokenRow, task: Task) -> tuple[Measured, list[Measured]]:
        """p(success) after the pivot and after each candidate, from new rollouts judged by ``task``'s oracle
        (for a span, :meth:`measure_span`)."""
        from math import exp

        if pivot.is_span:
            return self.measure_span(pivot, task)
        tok = self.engine.tokenizer
        response = tuple(pivot.context_ids[pivot.prompt_length :])
        est = self.estimator(pivot, task)
        cands = self.candidates(pivot)
        token_ids = [pivot.pivot_token_id] + [t for t, _ in cands]
        estimates, _ = est.estimate([response + (t,) for t in token_ids])
        self.rollouts += est.rollouts
        chosen = Measured(pivot.pivot_token_id, pivot.pivot_token, estimates[0].successes, estimates[0].samples)
        alts = [
            Measured(t, tok.decode([t], skip_special_tokens=False), e.successes, e.samples, likelihood=exp(lp))
            for (t, lp), e in zip(cands, estimates[1:])
        ]
        return chosen, alts

    def measure_span(self, pivot: PivotalTokenRow, task: Task) -> tuple[Measured, list[Measured]]:
        """p(success) after a pivotal span and after alternative continuations of the same length, from new
        rollouts judged by ``task``'s oracle.

        The alternatives are the model's own: ``num_samples`` rollouts from the context before the span,
        grouped by their first ``len(span)`` tokens; the ``num_candidates`` most frequent runs other than the
        span (none ending the response or holding a special token) are each estimated from ``num_samples``
        rollouts after them, together with the span, in one engine call. ``likelihood`` is a run's share of
        those rollouts."""
        tok = self.engine.tokenizer
        span = tuple(pivot.span_token_ids or ())
        response = tuple(pivot.context_ids[pivot.prompt_length :])
        est = self.estimator(pivot, task, continuation_length=len(span))
        (drawn,), _ = est.estimate([response])
        runs = sorted(
            (
                (count, ids)
                for ids, (count, _) in drawn.continuations.items()
                if len(ids) == len(span) and ids != span and not self.excluded.intersection(ids)
            ),
            key=lambda c: (-c[0], c[1]),
        )[: self.settings.num_candidates]
        estimates, _ = est.estimate([response + span] + [response + ids for _, ids in runs])
        self.rollouts += est.rollouts
        chosen = Measured(span[0], pivot.pivot_token, estimates[0].successes, estimates[0].samples, token_ids=span)
        alts = [
            Measured(
                ids[0],
                tok.decode(list(ids), skip_special_tokens=False),
                e.successes,
                e.samples,
                likelihood=count / drawn.samples,
                token_ids=ids,
            )
            for (count, ids), e in zip(runs, estimates[1:])
        ]
        return chosen, alts


def build_pairs(
    pivots: Sequence[PivotalTokenRow],
    tokenizer: Any,
    settings: DPOSettings,
    *,
    finder: CounterpartFinder | None = None,
    tasks: dict[str, Task] | None = None,
) -> tuple[list[dict[str, Any]], DPOReport]:
    """DPO rows for ``pivots`` (token ids attached) and a report of what was skipped and why.

    ``finder`` and ``tasks`` (by pivot id, see :func:`match_tasks`) are needed
    only with ``settings.find_rejected_tokens``. Recorded counterparts are
    taken first; then the pivots still without one are measured, with a
    progress bar and its time estimate on stderr.
    """
    s = settings
    report = DPOReport(pivots=len(pivots), gap_confidence=s.gap_confidence)
    found: dict[int, tuple[PivotalTokenRow, dict[str, Any]]] = {}
    pending: list[tuple[int, PivotalTokenRow, Task]] = []
    for i, pivot in enumerate(pivots):
        if abs(pivot.prob_delta) < s.min_prob_delta - _EPS:
            report.below_min_delta += 1
            continue
        if pivot.pivot_token_id < 0:
            report.no_token_id += 1
            continue
        samples = pivot.samples_after or 0  # unknown (0) in the original tool's records
        successes = pivot.successes_after if pivot.successes_after is not None else round(pivot.prob_after * samples)
        chosen_side = Measured(
            pivot.pivot_token_id, pivot.pivot_token, successes, samples, token_ids=tuple(pivot.span_token_ids or ())
        )
        other = pick_counterpart(
            pivot.is_positive,
            pivot.prob_after,
            first_token_alternatives(pivot, s.min_counterpart_samples),
            s.min_prob_delta,
        )
        if other is not None:
            _add(found, i, pivot, chosen_side, pivot.prob_after, other, "first_tokens", tokenizer, s, report)
        elif not s.find_rejected_tokens:
            report.no_counterpart += 1
        elif (task := (tasks or {}).get(pivot.id)) is None:
            report.no_task += 1
        elif pivot.prompt_length is None:
            report.no_prompt_split += 1
        else:
            pending.append((i, pivot, task))
    if pending:
        assert finder is not None
        if not hasattr(finder.engine, "next_token_logprobs") and not all(p.is_span for _, p, _ in pending):
            raise PTSError("--find-rejected-tokens needs an engine that gives next-token log-probabilities")
        _measure(pending, found, finder, tokenizer, s, report)
        report.rollouts = finder.rollouts
    rows = [found[i] for i in sorted(found)]
    kept = _select(rows, s)
    report.dropped_by_balance_or_max = len(rows) - len(kept)
    report.pairs = len(kept)
    report.positive = sum(p.is_positive for p, _ in kept)
    report.negative = report.pairs - report.positive
    report.established = sum(r["metadata"]["counterpart_verified"] for _, r in kept)
    return [r for _, r in kept], report


def _measure(
    pending: list[tuple[int, PivotalTokenRow, Task]],
    found: dict[int, tuple[PivotalTokenRow, dict[str, Any]]],
    finder: CounterpartFinder,
    tokenizer: Any,
    s: DPOSettings,
    report: DPOReport,
) -> None:
    """Measure candidates for the pivots in ``pending`` (input order), adding their rows to ``found``."""
    import sys

    from tqdm.auto import tqdm

    per_pivot = (s.num_candidates + 1) * (s.num_samples or finder.default_samples(pending[0][1]))
    if s.progress:
        print(
            f"measuring counterparts of {len(pending)} pivots: up to {s.num_candidates + 1} tokens x "
            f"{per_pivot // (s.num_candidates + 1)} rollouts each (~{per_pivot * len(pending)} rollouts)",
            file=sys.stderr,
        )
    bar = tqdm(
        total=len(pending),
        desc="counterparts",
        unit="pivot",
        disable=not s.progress,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    try:
        for i, pivot, task in pending:
            if not s.balance and s.max_pairs is not None and sum(j < i for j in found) >= s.max_pairs:
                break  # --max-pairs is already met by the pairs before this one: do not spend rollouts on it
            chosen_side, alternatives = finder.measure(pivot, task)
            other = pick_counterpart(pivot.is_positive, chosen_side.p, alternatives, s.min_prob_delta)
            if other is None:
                report.no_counterpart += 1
            else:
                _add(found, i, pivot, chosen_side, chosen_side.p, other, "estimated", tokenizer, s, report)
            bar.update(1)
            bar.set_postfix(rollouts=finder.rollouts, pairs=len(found), refresh=False)
    finally:
        bar.close()


def _add(
    found: dict[int, tuple[PivotalTokenRow, dict[str, Any]]],
    i: int,
    pivot: PivotalTokenRow,
    chosen_side: Measured,
    p_pivot: float,
    other: Measured,
    source: str,
    tokenizer: Any,
    s: DPOSettings,
    report: DPOReport,
) -> None:
    row = _row(pivot, chosen_side, p_pivot, other, source, tokenizer, s.chat, s.gap_confidence)
    if row is None:
        report.skipped_for_chat += 1
        return
    found[i] = (pivot, row)
    if source == "first_tokens":
        report.from_first_tokens += 1
    else:
        report.from_estimates += 1


def gap_interval(better: Measured, worse: Measured, confidence: float) -> tuple[float, float]:
    """Interval of ``better.p - worse.p`` at ``confidence``: Newcombe's, from each side's Wilson interval."""

    def wilson(m: Measured) -> tuple[float, float]:
        return wilson_interval(m.successes, m.samples, confidence)

    return newcombe_interval(worse.p, wilson(worse), better.p, wilson(better))


def _select(
    rows: list[tuple[PivotalTokenRow, dict[str, Any]]], s: DPOSettings
) -> list[tuple[PivotalTokenRow, dict[str, Any]]]:
    """``--balance`` (as many pairs from positive as from negative pivots, a seeded sample) then ``--max-pairs``."""
    if s.balance:
        pos = [i for i, (p, _) in enumerate(rows) if p.is_positive]
        neg = [i for i, (p, _) in enumerate(rows) if not p.is_positive]
        n = min(len(pos), len(neg))
        if s.max_pairs is not None:
            n = min(n, s.max_pairs // 2)
        rng = random.Random(s.seed)
        keep = set(rng.sample(pos, n)) | set(rng.sample(neg, n))
        return [r for i, r in enumerate(rows) if i in keep]  # file order, which is reproducible and readable
    return rows[: s.max_pairs] if s.max_pairs is not None else rows


def _row(
    pivot: PivotalTokenRow,
    pivot_side: Measured,
    p_pivot: float,
    other: Measured,
    source: str,
    tok: Any,
    chat: bool,
    gap_confidence: float,
) -> dict[str, Any] | None:
    if pivot.is_positive:
        chosen, rejected, p_chosen, p_rejected = pivot_side, other, p_pivot, other.p
    else:
        chosen, rejected, p_chosen, p_rejected = other, pivot_side, other.p, p_pivot
    # The original tool's records have no counts: nothing can establish their gap.
    gap = gap_interval(chosen, rejected, gap_confidence) if chosen.samples and rejected.samples else (-1.0, 1.0)
    ids = list(pivot.context_ids or [])
    metadata = {
        "original_query": pivot.query,
        "prob_chosen": float(p_chosen),
        "prob_rejected": float(p_rejected),
        "prob_delta": float(pivot.prob_delta),
        "prob_before": float(pivot.prob_before),
        "samples": {"chosen": int(chosen.samples), "rejected": int(rejected.samples)},
        "is_positive": pivot.is_positive,
        "task_type": pivot.task_type,
        "model_id": pivot.model_id,
        "dataset_id": pivot.dataset_id,
        "dataset_item_id": pivot.dataset_item_id,
        "counterpart_verified": gap[0] > 0,
        "gap_interval": [float(gap[0]), float(gap[1])],
        "gap_confidence": gap_confidence,
        "counterpart_source": source,
        "pivot_id": pivot.id,
        "pivot_token_id": pivot.pivot_token_id,
        "chosen_token_id": chosen.token_id,
        "rejected_token_id": rejected.token_id,
        "span_token_ids": None if pivot.span_token_ids is None else list(pivot.span_token_ids),
        "prompt_token_ids": ids,
        "retokenized": pivot.retokenized,
        "trl_tokens_match": False,
    }
    if not chat:
        row = {"prompt": pivot.pivot_context, "chosen": chosen.token, "rejected": rejected.token}
        metadata["trl_tokens_match"] = _plain_match(tok, row, ids, chosen.ids, rejected.ids)
        return {
            **row,
            "prompt_ids": ids,
            "chosen_ids": chosen.ids,
            "rejected_ids": rejected.ids,
            "metadata": metadata,
        }
    if pivot.prompt_length is None:
        return None
    prompt_ids, response_ids = ids[: pivot.prompt_length], ids[pivot.prompt_length :]
    messages = chat_messages(tok, tok.decode(prompt_ids, skip_special_tokens=False))
    if messages is None:
        return None
    response = tok.decode(response_ids, skip_special_tokens=False)
    closing = _closing(tok, messages, response, ids)
    content = {}
    for key, side in (("chosen", chosen), ("rejected", rejected)):
        # The template closes every assistant message with its end-of-turn token: a side that is that token is
        # the response alone, or the token would be written twice.
        ends_turn = closing is not None and side.ids == closing[:1]
        content[key] = response if ends_turn else response + side.token
    row = {
        "prompt": messages,
        "chosen": [{"role": "assistant", "content": content["chosen"]}],
        "rejected": [{"role": "assistant", "content": content["rejected"]}],
    }
    metadata["trl_tokens_match"] = closing is not None and _chat_match(
        tok, row, ids, prompt_ids, chosen.ids, rejected.ids, closing
    )
    return {**row, "metadata": metadata}


def _render(tok: Any, messages: list[dict[str, str]], **kw: Any) -> list[int]:
    """The ids of ``messages`` through the chat template, as TRL 1.16 tokenizes conversational rows."""
    return list(tok.apply_chat_template(messages, tokenize=True, return_dict=True, **kw)["input_ids"])


def _closing(tok: Any, messages: list[dict[str, str]], response: str, ids: list[int]) -> list[int] | None:
    """The ids the chat template writes after an assistant message (e.g. ``<|im_end|>``, newline); None when
    the response so far does not render back to the measured ids."""
    full = _render(tok, [*messages, {"role": "assistant", "content": response}])
    return full[len(ids) :] if full[: len(ids)] == ids else None


def _ids(tok: Any, text: str) -> list[int]:
    return list(tok(text)["input_ids"])  # as TRL calls it: the tokenizer's default special tokens


def _plain_match(tok: Any, row: dict[str, str], ids: list[int], chosen: list[int], rejected: list[int]) -> bool:
    """Does TRL's tokenization of the plain row give the measured ids (prompt, the side's token or span, then
    EOS)?"""
    eos = getattr(tok, "eos_token", None)
    if eos is None:  # no tokenizer (or one without EOS) to check with
        return False
    if _ids(tok, row["prompt"]) != ids:
        return False
    for text, side in ((row["chosen"], chosen), (row["rejected"], rejected)):
        full = row["prompt"] + text + ("" if text.endswith(eos) else eos)
        expected = ids + side + ([] if text.endswith(eos) else [tok.eos_token_id])
        if _ids(tok, full) != expected:
            return False
    return True


def _chat_match(
    tok: Any,
    row: dict[str, Any],
    ids: list[int],
    prompt_ids: list[int],
    chosen: list[int],
    rejected: list[int],
    closing: list[int],
) -> bool:
    """Does TRL's chat tokenization give exactly the measured prompt, response and the side's token (or span),
    then the template's closing (the end-of-turn token once: a side that is that token is not followed by a
    second)?"""
    if _render(tok, row["prompt"], add_generation_prompt=True) != prompt_ids:
        return False
    for key, side in (("chosen", chosen), ("rejected", rejected)):
        expected = ids + closing if side == closing[:1] else ids + side + closing
        if _render(tok, row["prompt"] + row[key]) != expected:
            return False
    return True


def write_pairs(rows: Sequence[dict[str, Any]], path: str) -> None:
    """Write the rows as JSON lines, atomically (nothing is left half-written)."""
    from pts.store import write_jsonl

    write_jsonl(path, rows)
