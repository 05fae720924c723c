"""Contrastive scores: what ``pts contrast`` writes to ``scores.jsonl``, one line per scored trajectory.

Each line is a sampled response with one contrastive-estimation score
``s_t`` per response token (Lin et al., "Critical Tokens Matter"):
``softmax((1 + beta) log p_pos - beta log p_neg)`` at the token, from a model
tuned on correct and one tuned on incorrect trajectories
(:mod:`pts.train.contrast`). ``pts train --loss cdpo`` reads these lines;
``pts view`` shows them. Recognised by ``kind: contrastive_scores`` or the
fields ``tokens``, ``scores`` and ``logp_pos``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pts.errors import PTSError
from pts.formats import rows
from pts.formats.base import Format

# What each field of a contrastive-score line means.
FIELDS = {
    "trajectory_id": "Stable id of the scored trajectory.",
    "query": "The task's question, before the chat template.",
    "answer": "Reference answer the oracle judged against.",
    "correct": "Whether the oracle judged the response correct.",
    "answer_key": "The final answer the oracle read from the response (null when it found none).",
    "dataset_id": "Dataset the question came from.",
    "dataset_item_id": "Id of the question within that dataset.",
    "task_type": "Kind of task.",
    "sample_index": "Which sampled response to the question this is.",
    "prompt_ids": "Token ids of the exact prompt (chat template applied).",
    "response_ids": "Token ids of the response.",
    "response": "The response, decoded.",
    "tokens": "Each of `response_ids` decoded on its own.",
    "scores": "The contrastive score s_t of every response token, in (0, 1): low where the negative model "
    "explains the token better than the positive one.",
    "logp_pos": "Log-probability of each response token under the positive model.",
    "logp_neg": "Log-probability of each response token under the negative model.",
    "beta": "The `beta` of the score.",
    "min_score_position": "Index of the lowest-scoring response token (null for an empty response).",
    "min_score_token": "That token, decoded.",
    "min_score": "Its score.",
    "model_id": "Model that sampled the trajectory.",
    "positive_model": "The model tuned on correct trajectories.",
    "negative_model": "The model tuned on incorrect trajectories.",
    "id": "Stable id of the line (hash of the trajectory, both models and `beta`).",
}


class ContrastScores(Format):
    name = "contrast"
    view_list = "contrast"
    aliases = ("contrast-scores", "contrast_scores", "contrastive-scores", "contrastive_scores")
    what = "contrastive scores"
    shapes = {"contrast_scores": "contrastive scores (pts contrast)"}
    keys = ("tokens", "scores", "logp_pos")
    record_kind = "contrastive_scores"
    fields = FIELDS

    def view_row(self, record: Mapping[str, Any], where: str, query: Callable[[Any], int]) -> dict[str, Any]:
        """The page's row for one trajectory's contrastive scores s_t, one per response token."""
        tokens, scores = record.get("tokens"), record.get("scores")
        if not isinstance(tokens, list) or not isinstance(scores, list) or len(tokens) != len(scores):
            raise PTSError(f"{where}: tokens and scores must be lists of the same length")
        return {
            "q": query(record.get("query", "")),
            "task": str(record.get("task_type") or ""),
            "item": str(record.get("dataset_item_id", "")),
            "correct": record.get("correct"),
            "tokens": [rows.text(t, where, "tokens") for t in tokens],
            "scores": [rows.number(s) for s in scores],
            "min_position": rows.int_or_none(record.get("min_score_position")),
            "beta": rows.number(record.get("beta")),
        }


FORMAT = ContrastScores()
