"""The positive and negative training sets of ``pts contrast``, selected per query as the authors' code does.

Positives: ``positives_per_query`` distinct correct trajectories per query (1
as in the authors' code; 0 takes all). Negatives: wrong answers in decreasing
frequency, one trajectory each, until their cumulative share of the wrong
responses reaches ``negative_top_p`` (0.5); after the most frequent one,
answers seen only once are skipped; responses without an extractable answer,
or cut off by the token budget (no final answer), are never negatives.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

from pts.contrast.trajectories import Trajectory
from pts.records import stable_id


def select_training_sets(
    trajectories: Sequence[Trajectory], *, positives_per_query: int = 1, negative_top_p: float = 0.5, seed: int = 42
) -> tuple[list[Trajectory], list[Trajectory]]:
    """Positive and negative training trajectories, per query (see the module docstring for the rule).

    Which trajectory represents an answer is drawn with a seed derived from
    ``seed`` and the query, so the selection is reproducible. Returns
    ``(positives, negatives)`` in query order.
    """
    groups: dict[tuple[str, str], list[Trajectory]] = {}
    for t in trajectories:
        groups.setdefault(t.group, []).append(t)
    positives, negatives = [], []
    for key, items in groups.items():
        items = list(items)
        random.Random(stable_id(seed, "select", *key)).shuffle(items)
        correct = _distinct([t for t in items if t.correct])
        positives += correct if positives_per_query == 0 else correct[:positives_per_query]
        wrong: dict[str, list[Trajectory]] = {}
        for t in items:
            if not t.correct and t.answer_key and t.finish_reason != "length":
                wrong.setdefault(t.answer_key, []).append(t)
        total = sum(len(v) for v in wrong.values())
        need = math.ceil(negative_top_p * total - 1e-9)
        first = True
        for _, group in sorted(wrong.items(), key=lambda kv: -len(kv[1])):  # stable: ties keep shuffled order
            if need <= 0:
                break
            if first or len(group) > 1:
                negatives.append(group[0])
                need -= len(group)
                first = False
    return positives, negatives


def _distinct(items: list[Trajectory]) -> list[Trajectory]:
    seen, out = set(), []
    for t in items:
        if tuple(t.response_ids) not in seen:
            seen.add(tuple(t.response_ids))
            out.append(t)
    return out


def training_rows(items: Sequence[Trajectory], tok) -> list[dict[str, Any]]:
    """Training examples in TRL's prompt-completion shape, with the exact ids pts trains on."""
    rows = []
    for t in items:
        prompt = tok.decode(t.prompt_ids, skip_special_tokens=False)
        completion = tok.decode(t.response_ids, skip_special_tokens=False)
        rows.append(
            {
                "prompt": prompt,
                "completion": completion,
                "prompt_ids": t.prompt_ids,
                "completion_ids": t.response_ids,
                "query": t.query,
                "answer": t.answer,
                "answer_key": t.answer_key,
                "correct": t.correct,
                "dataset_id": t.dataset_id,
                "dataset_item_id": t.dataset_item_id,
                "trajectory_id": t.id,
            }
        )
    return rows
