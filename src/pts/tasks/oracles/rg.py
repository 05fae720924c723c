"""The reasoning-gym oracle: reasoning-gym's own scorer judges the answer.

reasoning-gym is imported on first use so that importing this module stays cheap.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from pts.errors import PTSError
from pts.tasks.oracles.extract import (
    extract_math_answer,
    final_answer_text,
    math_answer_complete,
)
from pts.tasks.task import Oracle

__all__ = ["ReasoningGymOracle", "check_rg_task", "rg_task_names"]

_RG_ANSWER_TAG_RE = re.compile(r"<answer>\s?(.*?)\s?</answer>", re.DOTALL)


@functools.cache
def _rg_default_scorer(task_name: str) -> Callable[[str | None, dict], float]:
    import reasoning_gym

    return reasoning_gym.get_score_answer_fn(task_name)


def rg_task_names() -> list[str]:
    """Names of the installed reasoning-gym task families, sorted."""
    from reasoning_gym.factory import DATASETS

    return sorted(DATASETS)


def check_rg_task(task_name: str) -> None:
    """Raise PTSError unless ``task_name`` is an installed reasoning-gym task."""
    import difflib

    names = rg_task_names()
    if task_name in names:
        return
    close = difflib.get_close_matches(task_name, names, n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise PTSError(
        f"unknown reasoning-gym task {task_name!r}{hint}; {len(names)} tasks are installed, e.g. {', '.join(names[:8])}"
    )


class ReasoningGymOracle(Oracle):
    """Judges with reasoning-gym's own scorer; the reference is the reasoning-gym entry.

    The answer is the last ``<answer>...</answer>`` (reasoning-gym's format), else the
    math extraction chain; correct when the scorer gives 1.0. ``config`` (the
    dataset's options) matters only for scorers that read their config.
    """

    def __init__(self, task_name: str, config: dict[str, Any] | None = None) -> None:
        check_rg_task(task_name)
        self.task_name = task_name
        self.name = f"rg:{task_name}"
        self.config = dict(config or {})
        self._scorer: Callable | None = None

    def __getstate__(self) -> dict[str, Any]:
        # The bound scorer holds a whole dataset; rebuild it after unpickling.
        return {**self.__dict__, "_scorer": None}

    def __repr__(self) -> str:
        return f"ReasoningGymOracle({self.task_name!r})"

    def _score_fn(self, entry: dict) -> Callable:
        source = (entry.get("metadata") or {}).get("source_dataset") or self.task_name
        if source != self.task_name or not self.config:
            return _rg_default_scorer(source)
        if self._scorer is None:
            import reasoning_gym

            self._scorer = reasoning_gym.create_dataset(self.task_name, **self.config).score_answer
        return self._scorer

    @staticmethod
    def extract_answer(answer_text: str) -> str | None:
        """The answer reasoning-gym should score: the last <answer> tag, else the math chain."""
        tags = _RG_ANSWER_TAG_RE.findall(answer_text)
        if tags:
            return tags[-1].strip()
        return extract_math_answer(answer_text)

    def judge(self, completion: str, reference: Any) -> bool:
        try:
            if not isinstance(reference, dict) or "answer" not in reference:
                return False
            answer = final_answer_text(completion)
            prediction = self.extract_answer(answer) if answer is not None else None
            if prediction is None:
                return False
            return float(self._score_fn(reference)(prediction, reference)) >= 1.0
        except Exception:  # scorers raise on odd answers; that is a wrong answer
            return False

    def answer_complete(self, completion: str) -> bool:
        answer = final_answer_text(completion)
        if answer is None:
            return False
        if _RG_ANSWER_TAG_RE.search(answer):
            return True
        return "<answer>" not in answer and math_answer_complete(answer)
