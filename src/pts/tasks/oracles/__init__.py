"""Oracles: judge a completion's final answer against a reference.

This module is the registry (``ORACLES``, :func:`register_oracle`, :func:`get_oracle`)
and the public import point; the oracles live in its modules:

- ``extract``: where the answer is (after the last ``</think>``) and the math answer in it;
- ``math``: :class:`MathOracle` (numbers, else math-verify);
- ``simple``: :class:`MultipleChoiceOracle`, :class:`YesNoOracle`, :class:`ExactMatchOracle`;
- ``rg``: :class:`ReasoningGymOracle` (reasoning-gym's own scorers);
- ``pts.tasks.code``: the code oracle, imported only when code is judged.

Every oracle looks only at the completion (the model's response), never at the
prompt. Reasoning inside ``<think>...</think>`` is ignored: the answer is read
from the text after the last ``</think>``.

The heavy libraries (math-verify, reasoning-gym) are imported on first use so
that importing this module stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable

from pts.errors import PTSError
from pts.tasks.oracles.extract import (
    extract_boxed,
    extract_math_answer,
    final_answer_text,
    math_gold_text,
)
from pts.tasks.oracles.math import MathOracle, math_equal
from pts.tasks.oracles.rg import ReasoningGymOracle, check_rg_task, rg_task_names
from pts.tasks.oracles.simple import (
    ExactMatchOracle,
    MultipleChoiceOracle,
    YesNoOracle,
    choice_gold,
    extract_choice,
    normalize_text,
    yes_no_value,
)
from pts.tasks.task import Oracle

__all__ = [
    "ORACLES",
    "ExactMatchOracle",
    "MathOracle",
    "MultipleChoiceOracle",
    "ReasoningGymOracle",
    "YesNoOracle",
    "check_rg_task",
    "choice_gold",
    "extract_boxed",
    "extract_choice",
    "extract_math_answer",
    "final_answer_text",
    "get_oracle",
    "is_code_oracle",
    "math_equal",
    "math_gold_text",
    "normalize_text",
    "register_oracle",
    "rg_task_names",
    "yes_no_value",
]


def _code_oracle(language: str = "python") -> Oracle:
    # Imports the sandbox only when code is judged.
    from pts.tasks.code import CodeOracle

    return CodeOracle(language)


ORACLES: dict[str, Callable[[], Oracle]] = {
    "math": MathOracle,
    "gsm8k": MathOracle,
    "multiple_choice": MultipleChoiceOracle,
    "yes_no": YesNoOracle,
    "exact": ExactMatchOracle,
    "code": _code_oracle,
    "humaneval": _code_oracle,
}


def is_code_oracle(name: str | None) -> bool:
    """True when oracle ``name`` judges by running tests (``code``, ``humaneval``, ``code:<language>``)."""
    return bool(name) and (name in ("code", "humaneval") or name.startswith("code:"))


def register_oracle(name: str, factory: Callable[[], Oracle]) -> None:
    """Make ``--oracle name`` judge with a new ``factory()`` oracle (see docs/architecture.md)."""
    ORACLES[name] = factory


def get_oracle(name: str) -> Oracle:
    """Return a new oracle by name: one of ``ORACLES``, ``rg:<reasoning-gym task>`` or
    ``code:<language>`` (``code`` alone is Python).

    Raises PTSError for an unknown name.
    """
    if isinstance(name, str) and name.startswith("rg:"):
        return ReasoningGymOracle(name[3:])
    if isinstance(name, str) and name.startswith("code:"):
        return _code_oracle(name[len("code:") :])
    factory = ORACLES.get(name) if isinstance(name, str) else None
    if factory is None:
        raise PTSError(
            f"unknown oracle {name!r}; valid names: {', '.join(ORACLES)}, rg:<reasoning-gym task>, code:<language>"
        )
    return factory()
