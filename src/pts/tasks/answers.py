"""The final answer an oracle reads in a response, in a canonical form where equal answers compare equal.

``pts eval`` records it per sample and ``pts contrast`` groups wrong responses by it (the most frequent
wrong answers make the negative training set).
"""

from __future__ import annotations

import re

from pts.tasks import oracles as o
from pts.tasks.task import Task

_NUMBER_RE = re.compile(r"^[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?$|^[-+]?\.\d+$")


def canonical_answer(text: str | None) -> str | None:
    """An extracted answer in a form where equal answers compare equal: numbers as numbers, else trimmed lower case."""
    if text is None:
        return None
    s = str(text).strip().strip("$").strip()
    if _NUMBER_RE.match(s):
        value = float(s.replace(",", ""))
        return str(int(value)) if value.is_integer() else repr(value)
    s = " ".join(s.lower().split())
    return s or None


def extracted_answer(task: Task, completion: str) -> str | None:
    """The final answer the task's oracle reads in ``completion`` (canonical form), or None when there is none.

    Uses the oracle's own extraction (math chain, reasoning-gym ``<answer>`` tags,
    multiple-choice letter, yes/no); other oracles fall back to the last line.
    """
    answer = o.final_answer_text(completion)
    if answer is None:
        return None
    oracle = task.oracle
    if isinstance(oracle, o.ReasoningGymOracle):
        found = oracle.extract_answer(answer)
    elif isinstance(oracle, o.MathOracle):
        found = o.extract_math_answer(answer)
    elif isinstance(oracle, o.MultipleChoiceOracle):
        found = o.extract_choice(answer)
    elif isinstance(oracle, o.YesNoOracle):
        value = o.yes_no_value(answer)
        found = None if value is None else ("yes" if value else "no")
    else:
        lines = [line for line in answer.splitlines() if line.strip()]
        found = o.normalize_text(lines[-1]) if lines else None
    return canonical_answer(found)
