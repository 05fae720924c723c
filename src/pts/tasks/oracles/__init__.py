"""Oracles: judge a completion's final answer against a reference.

This module is the registry (``ORACLES``, a :class:`pts.registry.Registry` open to
other packages through the ``pts.oracles`` entry-point group; :func:`register_oracle`,
:func:`get_oracle`) and the public import point; the oracles live in its modules:

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
from pts.registry import Registry
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
    "code_oracle",
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


def code_oracle(language: str = "python") -> Oracle:
    """The oracle that runs a response's code against the task's tests (imports the sandbox only when called)."""
    from pts.tasks.code import CodeOracle

    return CodeOracle(language)


ORACLES: Registry[Callable[[], Oracle]] = Registry(
    "oracle",
    "pts.oracles",
    {
        "math": MathOracle,
        "gsm8k": MathOracle,
        "multiple_choice": MultipleChoiceOracle,
        "yes_no": YesNoOracle,
        "exact": ExactMatchOracle,
        "code": code_oracle,
        "humaneval": code_oracle,
    },
)
"""Oracle name -> a factory of new oracles (a class, a function, or its ``"module:attribute"`` path)."""


def is_code_oracle(name: str | None) -> bool:
    """True when oracle ``name`` judges by running tests (``code``, ``humaneval``, ``code:<language>``)."""
    return bool(name) and (name in ("code", "humaneval") or name.startswith("code:"))


def register_oracle(name: str, factory: Callable[[], Oracle] | str) -> None:
    """Make ``--oracle name`` judge with a new ``factory()`` oracle (or ``"module:attribute"`` of the factory;
    see docs/architecture.md)."""
    ORACLES.register(name, factory)


def get_oracle(name: str) -> Oracle:
    """Return a new oracle by name: one of ``ORACLES``, ``rg:<reasoning-gym task>`` or
    ``code:<language>`` (``code`` alone is Python).

    Raises PTSError for an unknown name.
    """
    if isinstance(name, str) and name.startswith("rg:"):
        return ReasoningGymOracle(name[3:])
    if isinstance(name, str) and name.startswith("code:"):
        return code_oracle(name[len("code:") :])
    if not isinstance(name, str) or name not in ORACLES:
        raise PTSError(
            f"unknown oracle {name!r}; valid names: {', '.join(ORACLES.names())}, rg:<reasoning-gym task>, "
            "code:<language>"
        )
    return ORACLES.get(name)()
