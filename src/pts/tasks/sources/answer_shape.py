"""Which oracle judges a row: chosen from the shape of its answer, or by an optillmbench row's category."""

from __future__ import annotations

import re
from typing import Any

from pts.tasks.oracles import (
    ExactMatchOracle,
    MathOracle,
    MultipleChoiceOracle,
    YesNoOracle,
    choice_gold,
    extract_boxed,
    math_gold_text,
)
from pts.tasks.task import Oracle

__all__ = ["auto_oracle", "optillmbench_task"]

# Oracles without state are shared by all rows.
_MATH, _MULTIPLE_CHOICE, _YES_NO, _EXACT = MathOracle(), MultipleChoiceOracle(), YesNoOracle(), ExactMatchOracle()

# A bare lower-case letter is more often a word ("a") than a choice; "(c)" and "c)" are choices.
_CHOICE_GOLD_RE = re.compile(r"^\(?[A-E]\)?[.:]?$|^\([a-e]\)$|^[a-e]\)$")
_YES_NO_GOLD_RE = re.compile(r"^(yes|no|true|false)\.?$", re.IGNORECASE)
_NUMERIC_GOLD_RE = re.compile(r"^[-+]?\$?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?%?$|^[-+]?\d+\s*/\s*\d+$")
_LATEX_GOLD_RE = re.compile(r"^\$.*\$$|\\[A-Za-z]+|\^|_\{", re.DOTALL)


def _is_math_like(text: str) -> bool:
    return bool(text) and (
        (bool(_NUMERIC_GOLD_RE.match(text)) and any(c.isdigit() for c in text)) or bool(_LATEX_GOLD_RE.search(text))
    )


def auto_oracle(answer: str, is_gsm8k: bool) -> tuple[str, Oracle, str]:
    """Choose (gold, oracle, task_type) from the answer's shape."""
    if is_gsm8k or "####" in answer:
        return math_gold_text(answer) or answer, _MATH, "gsm8k"
    if "\\boxed" in answer or "\\fbox" in answer:
        return extract_boxed(answer) or answer, _MATH, "math"
    if _CHOICE_GOLD_RE.match(answer):
        return choice_gold(answer), _MULTIPLE_CHOICE, "multiple_choice"
    if _YES_NO_GOLD_RE.match(answer):
        return answer.rstrip(".").lower(), _YES_NO, "yes_no"
    if _is_math_like(answer):
        return answer, _MATH, "math"
    return answer, _EXACT, "exact"


_OPTILLMBENCH_PROMPTS = {
    "gsm8k": (
        "Solve this math problem step by step. After solving, provide the final numerical answer after "
        "'### ' (three hash symbols and a space).\n\nQuestion: {q}\n\nShow your work, then give the final "
        "answer after '### '."
    ),
    "mmlu_math": "Solve this math problem. Provide only the answer with no explanation.\n\nQuestion: {q}",
    "boolq": "Answer this yes/no question with only 'yes' or 'no'.\n\nQuestion: {q}",
    "aqua_rat": "Choose the correct answer. Provide only the letter choice with no explanation.\n\nQuestion: {q}",
}
_OPTILLMBENCH_OTHER_PROMPT = "Question: {q}"


def optillmbench_task(question: str, answer: str, category: Any) -> tuple[str, tuple[str, Oracle, str]]:
    """The prompt and (gold, oracle, task_type) for one optillmbench row, by its category."""
    category = str(category or "other")
    prompt = _OPTILLMBENCH_PROMPTS.get(category, _OPTILLMBENCH_OTHER_PROMPT).format(q=question)
    task_type = f"optillmbench:{category}"
    if category == "gsm8k":
        judged: tuple[str, Oracle] = (math_gold_text(answer) or answer, _MATH)
    elif category == "mmlu_math":
        judged = (answer, _MATH if _is_math_like(answer) else _EXACT)
    elif category == "boolq":
        judged = (answer, _YES_NO)
    elif category == "aqua_rat":
        judged = (choice_gold(answer) or answer, _MULTIPLE_CHOICE)
    else:
        judged = (answer, _EXACT)
    return prompt, (*judged, task_type)
