"""Thought anchors: what ``pts anchors`` writes, one record per sentence of each analysed response.

A record carries the original PTS tool's fields (``pts/thought_anchors.py``
and its exporter: ``anchor_id, query, sentence, sentence_id, prefix_context,
sentence_category, importance_score, prob_delta, prob_with_sentence,
prob_without_sentence, is_positive, reasoning_pattern, alternatives_tested``
...), so its users' scripts read it, and pts's exact ones: the sentence's token
ids and span, the rollout counts, the intervals, and whether verification
kept it. Recognised by ``kind: thought_anchor`` or the ``sentence`` and
``prob_with_sentence`` fields. docs/anchors.md describes the method.

``pts export --format thought-anchors`` reads such records and writes the
anchors among them as the original tool's export rows; the
``thought-anchors-viewer`` format (:mod:`pts.formats.thought_anchors_viewer`)
writes them as Thought Anchors' viewer folders.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pts.formats import rows
from pts.formats.base import PTS_LINK, ExportRequest, FileSummary, Format, Written, by_model
from pts.records import Record

ANCHORS_URL = "https://arxiv.org/abs/2506.19143"

# Fields the original PTS tool's thought-anchor files have (its export), in its order.
ORIGINAL_FIELDS = (
    "anchor_id",
    "query",
    "sentence",
    "sentence_id",
    "prefix_context",
    "sentence_category",
    "importance_score",
    "prob_delta",
    "prob_with_sentence",
    "prob_without_sentence",
    "is_positive",
    "task_type",
    "model_id",
    "timestamp",
    "reasoning_pattern",
    "alternatives_tested",
    "num_alternatives",
    "dependency_sentences",
    "dataset_id",
    "dataset_item_id",
)


@dataclass(kw_only=True)
class ThoughtAnchor(Record):
    """One sentence of an analysed response and its measured importance (see :data:`FIELDS`)."""

    kind: str = "thought_anchor"
    # The original tool's fields.
    anchor_id: str = ""
    model_id: str
    query: str
    sentence: str
    sentence_id: int
    prefix_context: str
    sentence_category: str
    importance_score: float
    prob_delta: float | None
    prob_with_sentence: float | None
    prob_without_sentence: float | None
    is_positive: bool
    reasoning_pattern: str
    alternatives_tested: list[str] = field(default_factory=list)
    num_alternatives: int = 0
    dependency_sentences: list[int] = field(default_factory=list)
    task_type: str
    dataset_id: str
    dataset_item_id: str
    # pts's exact fields.
    answer: str = ""
    response: str = ""
    response_ids: list[int] = field(default_factory=list)
    prompt_ids: list[int] = field(default_factory=list)
    solution_index: int = 0
    num_sentences: int = 0
    sentence_start: int = 0
    sentence_end: int = 0
    sentence_token_ids: list[int] = field(default_factory=list)
    accuracy: float = 0.0
    accuracy_samples: int = 0
    accuracy_successes: int = 0
    accuracy_pooled: int = 0
    resampling_importance_accuracy: float = 0.0
    resampling_importance_ci: list[float] = field(default_factory=list)
    counterfactual_importance_accuracy: float | None = None
    counterfactual_importance_ci: list[float] = field(default_factory=list)
    counterfactual_importance_kl: float | None = None
    counterfactual_importance_kl_ci: list[float] | None = None
    ci_level: float = 0.0
    prob_delta_ci: list[float] = field(default_factory=list)
    prob_delta_ci_level: float = 0.0
    samples_with: int = 0
    successes_with: int = 0
    samples_without: int = 0
    successes_without: int = 0
    samples_similar: int = 0
    different_trajectories_fraction: float = 0.0
    rollouts: int = 0
    looks: int = 0
    settled: str = ""
    is_anchor: bool = False
    verified: bool | None = None
    verify_reason: str | None = None
    candidate: dict[str, Any] | None = None
    similarity_filter: str = ""
    similarity_threshold: float = 0.8
    prob_threshold: float = 0.2
    p_initial: float | None = None
    search: dict[str, Any] = field(default_factory=dict)

    def identity(self) -> tuple[Any, ...]:
        return (self.solution_index, self.sentence_id)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.anchor_id:  # the original tool's id, with the solution when a query has several
            suffix = f"_{self.solution_index}" if self.solution_index else ""
            self.anchor_id = f"{self.dataset_id}_{self.dataset_item_id}{suffix}_{self.sentence_id}"


FIELDS = {
    "anchor_id": "`<dataset_id>_<dataset_item_id>_<sentence_id>` (the original tool's id; `_<solution_index>` "
    "before the sentence id when a question has several analysed responses).",
    "model_id": "Model that wrote the response and whose rollouts were measured.",
    "query": "The task's question, before the chat template.",
    "sentence": "The sentence, decoded from its tokens (stripped).",
    "sentence_id": "Its index among the response's sentences (from 0).",
    "prefix_context": "The decoded response before the sentence (the original tool: the sentences before it).",
    "sentence_category": "Category from pts's rule-based labeller (Thought Anchors' eight categories, `unknown` "
    "when no rule fires).",
    "importance_score": "`abs(prob_delta)` (0 when it could not be measured).",
    "prob_delta": "Counterfactual importance: `prob_with_sentence - prob_without_sentence` (verification's "
    "numbers when verified).",
    "prob_with_sentence": "p(success) of rollouts that kept the sentence (all draws from the prefix after it).",
    "prob_without_sentence": "p(success) of rollouts from the prefix before it whose first sentence was different "
    "(similarity below `similarity_threshold`).",
    "is_positive": "True when the sentence raises p(success) (`prob_delta > 0`).",
    "reasoning_pattern": "The original tool's pattern name for the category (`planning`, `computation`...).",
    "alternatives_tested": "The different first sentences the rollouts wrote instead (up to 10).",
    "num_alternatives": "How many distinct different sentences the rollouts wrote.",
    "dependency_sentences": "Sentences this one depends on (not measured by pts: always empty).",
    "task_type": "Kind of task.",
    "dataset_id": "Dataset the question came from.",
    "dataset_item_id": "Id of the question within that dataset.",
    "answer": "Reference answer the oracle judged against.",
    "response": "The analysed response, decoded.",
    "response_ids": "Its token ids, after the prompt.",
    "prompt_ids": "Token ids of the exact prompt (chat template applied).",
    "solution_index": "Which analysed response of the question this is.",
    "num_sentences": "Sentences in the response.",
    "sentence_start": "Index in `response_ids` of the sentence's first token.",
    "sentence_end": "Index in `response_ids` after its last token.",
    "sentence_token_ids": "`response_ids[sentence_start:sentence_end]`.",
    "accuracy": "p(success) from the prefix before the sentence (all draws through it).",
    "accuracy_samples": "Draws behind `accuracy` (fresh and pooled).",
    "accuracy_successes": "Correct ones among them.",
    "accuracy_pooled": "How many of them were drawn from an earlier prefix and passed through this one.",
    "resampling_importance_accuracy": "acc(after the sentence) - acc(before it) (Thought Anchors' resampling "
    "importance).",
    "resampling_importance_ci": "Its interval at `ci_level` (Newcombe).",
    "counterfactual_importance_accuracy": "The search's `prob_with_sentence - prob_without_sentence` (null when "
    "no rollout wrote a different sentence). Thought Anchors' code reports the opposite sign.",
    "counterfactual_importance_ci": "Its interval at `ci_level` (Newcombe).",
    "counterfactual_importance_kl": "KL(different || kept) between final-answer distributions, Laplace-smoothed.",
    "counterfactual_importance_kl_ci": "Its bootstrap percentile interval at `ci_level`.",
    "ci_level": "Level of the search's intervals (Bonferroni over its looks).",
    "prob_delta_ci": "Interval of `prob_delta` (verification's when verified), at `prob_delta_ci_level`.",
    "prob_delta_ci_level": "Its level (Bonferroni over the looks that measured it).",
    "samples_with": "Draws behind `prob_with_sentence`.",
    "successes_with": "Correct ones among them.",
    "samples_without": "Draws behind `prob_without_sentence`.",
    "successes_without": "Correct ones among them.",
    "samples_similar": "Draws whose first sentence was similar but not identical (in neither group).",
    "different_trajectories_fraction": "Share of the draws before the sentence that wrote a different one.",
    "rollouts": "Rollouts drawn fresh from the prefix before the sentence by the search.",
    "looks": "Looks the sequential rule took before it settled the sentence.",
    "settled": "`important`, `unimportant` (its interval settled it), `cap` (sampled to --rollouts) or "
    "`terminal` (the response had already ended).",
    "is_anchor": "True when the search's importance reached `prob_threshold` (and, with verification, it was kept).",
    "verified": "True: verification's interval cleared the threshold; false: it did not; null: not a candidate "
    "or verification off.",
    "verify_reason": "`moves`, `small` or `cap`.",
    "candidate": "The search's own numbers for a verified sentence.",
    "similarity_filter": "`all-MiniLM-L6-v2` (cosine) or `exact` (identical text).",
    "similarity_threshold": "Similarity from which a resample counts as the same sentence.",
    "prob_threshold": "Importance that makes an anchor.",
    "p_initial": "Estimated p(success) of the question from the bare prompt.",
    "search": "Settings of the search that produced the record.",
}


class ThoughtAnchors(Format):
    name = "thought-anchors"
    aliases = ("thought_anchors", "anchors", "thought-anchor", "thought_anchor")
    what = "thought anchors"
    shapes = {"thought_anchors": "thought anchors (pts anchors)"}
    keys = ("sentence", "prob_with_sentence")
    record_kind = "thought_anchor"
    fields = FIELDS
    title = "Thought anchors"
    tags = ("thought-anchors", "reasoning", "interpretability")
    noun = "sentences"
    counted = (("anchors", "Anchors"),)
    default_output = "thought_anchors_export.jsonl"
    view_list = "anchors"

    def view_row(self, record: Mapping[str, Any], where: str, query: Callable[[Any], int]) -> dict[str, Any]:
        """The page's row for one sentence: its text and importance with its interval (counterfactual importance
        when measured, else the record's ``importance_score``), and its resampling importance."""
        counterfactual = rows.number(record.get("counterfactual_importance_accuracy"))
        return {
            "q": query(record.get("query", "")),
            "task": str(record.get("task_type") or ""),
            "item": str(record.get("dataset_item_id", "")),
            "sol": rows.int_or_none(record.get("solution_index")) or 0,
            "sentence_id": rows.int_or_none(record.get("sentence_id")) or 0,
            "sentence": rows.text(record.get("sentence", ""), where, "sentence"),
            "category": str(record.get("sentence_category") or ""),
            "importance": counterfactual if counterfactual is not None else rows.number(record.get("importance_score")),
            "ci": rows.interval(record.get("counterfactual_importance_ci" if counterfactual is not None else "")),
            "resampling": rows.number(record.get("resampling_importance_accuracy")),
            "resampling_ci": rows.interval(record.get("resampling_importance_ci")),
            "level": rows.number(record.get("ci_level")),
        }

    def summarise(self, s: FileSummary, rows: list[dict[str, Any]], meta: list[dict[str, Any]]) -> None:
        s.extra["anchors"] = sum(bool(r.get("is_anchor", abs(r.get("prob_delta") or 0) >= 0.2)) for r in rows)

    def description(self, s: FileSummary, model: str | None) -> str:
        return (
            f"Sentences of reasoning traces{by_model(model)} with their measured importance, by {PTS_LINK}: "
            f"[Thought Anchors]({ANCHORS_URL})' resampling and counterfactual importance, with intervals."
        )

    def read(self, path: str) -> list[Any]:
        """The ``pts anchors`` records of ``path`` (rows), not pivotal tokens."""
        from pts.export.anchors import read_anchors

        return read_anchors(path)

    def write(self, request: ExportRequest) -> Written:
        """The anchors among the records as the original PTS tool's export rows (:mod:`pts.export.anchors`),
        one per anchor."""
        from pts.export.anchors import write_original

        return Written(write_original(request.pivots, request.output))


FORMAT = ThoughtAnchors()
