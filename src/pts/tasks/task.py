"""A task is one query with its reference answer and the oracle that judges completions."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


class Oracle(ABC):
    """Judges one completion against a reference answer.

    An oracle never sees the prompt: only the model's completion text (the
    response, starting after the prompt) and the task's ``reference``.
    """

    name: str = "oracle"

    @abstractmethod
    def judge(self, completion: str, reference: Any) -> bool:
        """True when ``completion`` answers correctly."""

    def judge_many(self, completions: Sequence[str], reference: Any) -> list[bool]:
        """Verdicts for many completions of one task, in order; an oracle that runs programs does them in parallel."""
        return [self.judge(c, reference) for c in completions]

    def answer_complete(self, completion: str) -> bool:
        """True once ``completion`` already holds its final answer, so sampling can stop.

        The default says never, which is always safe.
        """
        return False


@dataclass
class Task:
    """One query to search.

    ``query`` is the question as the dataset states it (what records show);
    ``prompt`` is the user message sent to the model (defaults to ``query``;
    some datasets wrap the question in an instruction); ``answer`` is the gold
    answer as text, for records and display; ``reference`` is what the oracle
    receives (defaults to ``answer``; reasoning-gym passes its whole entry).
    ``raw_prompt`` is the text a model continues when no chat template is
    applied (a base model; defaults to ``prompt``): a code task gives the bare
    function header there. ``item_id`` is stable across reruns of the same dataset spec.
    """

    query: str
    answer: str
    item_id: str
    dataset_id: str
    task_type: str
    oracle: Oracle
    prompt: str | None = None
    reference: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)
    raw_prompt: str | None = None

    def __post_init__(self) -> None:
        if self.prompt is None:
            self.prompt = self.query
        if self.raw_prompt is None:
            self.raw_prompt = self.prompt
        if self.reference is None:
            self.reference = self.answer

    def record_fields(self) -> dict[str, str]:
        """What a record about this task says of it, under the record fields' names: the question as the dataset
        states it, its reference answer, its task type, and where it comes from (dataset, item id)."""
        return {
            "query": self.query,
            "answer": self.answer,
            "task_type": self.task_type,
            "dataset_id": self.dataset_id,
            "dataset_item_id": self.item_id,
        }

    def judge(self, completion: str) -> bool:
        return self.oracle.judge(completion, self.reference)

    def judge_many(self, completions: Sequence[str]) -> list[bool]:
        return self.oracle.judge_many(completions, self.reference)
