"""Tasks: queries with reference answers, the oracles that judge them, and dataset sources."""

from pts.tasks.oracles import (
    ORACLES,
    ExactMatchOracle,
    MathOracle,
    MultipleChoiceOracle,
    ReasoningGymOracle,
    YesNoOracle,
    extract_math_answer,
    final_answer_text,
    get_oracle,
)
from pts.tasks.sources import DEFAULT_DATASET, load_tasks
from pts.tasks.task import Oracle, Task

__all__ = [
    "DEFAULT_DATASET",
    "ORACLES",
    "ExactMatchOracle",
    "MathOracle",
    "MultipleChoiceOracle",
    "Oracle",
    "ReasoningGymOracle",
    "Task",
    "YesNoOracle",
    "extract_math_answer",
    "final_answer_text",
    "get_oracle",
    "load_tasks",
]
