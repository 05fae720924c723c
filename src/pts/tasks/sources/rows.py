"""Rows of a table become tasks: the query, answer and id fields detected (or named), an oracle per row.

Files, dataset directories and Hub datasets all end here (:func:`rows_to_tasks`); rows shaped like
HumanEval or MBPP become code tasks judged by running their tests.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pts import options
from pts.errors import PTSError
from pts.tasks.code import CodeOracle
from pts.tasks.code_data import code_shape, code_task, row_language
from pts.tasks.oracles import get_oracle, is_code_oracle
from pts.tasks.sources.answer_shape import auto_oracle, optillmbench_task
from pts.tasks.sources.request import LoadRequest, select_rows
from pts.tasks.task import Task

__all__ = ["ANSWER_KEYS", "ID_KEYS", "QUERY_KEYS", "Rows", "rows_to_tasks"]

# Warnings name the package, the public import point.
logger = logging.getLogger(__package__)

QUERY_KEYS = ("question", "query", "instruction", "problem", "prompt")
ANSWER_KEYS = ("answer", "output", "solution", "response", "canonical_solution")
ID_KEYS = ("id", "idx", "task_id", "unique_id")


@dataclass
class Rows:
    """Rows of a table: ``rows[i]`` is a mapping; ``columns`` are the field names.

    ``name`` (Hub name, directory or folder/file name) tells dataset families
    apart: names holding "gsm8k" or "optillmbench" get their special handling.
    """

    name: str
    columns: list[str]
    rows: Sequence[Mapping[str, Any]]


def _answer_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    return str(value).strip()


def _pick_key(kind: str, override: str | None, candidates: Sequence[str], rows: Rows, spec: str) -> str:
    flag = options.flag(f"{kind}_key")
    if override is not None:
        if override not in rows.columns:
            raise PTSError(
                f"{kind} field {override!r} not found in {spec}; available columns: "
                f"{', '.join(rows.columns) or '(none)'} (set {flag})"
            )
        return override
    for key in candidates:
        if key in rows.columns:
            return key
    raise PTSError(
        f"no {kind} field in {spec} (looked for {', '.join(candidates)}); available columns: "
        f"{', '.join(rows.columns) or '(none)'}; name one with {flag}"
    )


def _item_ids(rows: Rows, id_key: str | None, selected: Sequence[int], spec: str) -> dict[int, str]:
    """The item id of each selected row: its id column, else its index; unique within the dataset.

    A row whose id repeats an earlier row's is named ``<id>@row<index>``: decided over the whole file, so
    a row keeps its name whatever ``--sample-size``/``--max-examples`` select, and a resumed run never
    takes one row for another that finished.
    """
    if id_key is None:
        return {i: str(i) for i in selected}
    seen: set[str] = set()
    ids: dict[int, str] = {}
    renamed = []
    # A Hub dataset hands over a whole column at once, far faster than row by row.
    column = rows.rows[id_key] if hasattr(rows.rows, "column_names") else [r.get(id_key) for r in rows.rows]
    for i, value in enumerate(column):
        item_id = str(value) if value is not None else str(i)
        if item_id in seen:
            item_id = f"{item_id}@row{i}"
            renamed.append(i)
        seen.add(item_id)
        ids[i] = item_id
    picked = [i for i in renamed if i in set(selected)]
    if picked:
        logger.warning(
            "%d selected row(s) of %s repeat an earlier row's %r; each is searched under its own id "
            "(first: row %d as %r)",
            len(picked),
            spec,
            id_key,
            picked[0],
            ids[picked[0]],
        )
    return {i: ids[i] for i in selected}


def rows_to_tasks(rows: Rows, request: LoadRequest, *, dataset_id: str) -> list[Task]:
    """The tasks of the rows the request selects, each called ``dataset_id`` in records.

    Skips rows without a query or answer (with a warning); raises PTSError when none is left.
    """
    spec = request.spec
    if len(rows.rows) == 0:
        raise PTSError(f"dataset {spec} is empty")
    explicit_fields = request.query_key is not None or request.answer_key is not None
    if is_code_oracle(request.oracle) or (code_shape(rows.columns) and not explicit_fields):
        return _code_rows_to_tasks(rows, request, dataset_id=dataset_id)
    query_key = _pick_key("query", request.query_key, QUERY_KEYS, rows, spec)
    answer_key = _pick_key("answer", request.answer_key, ANSWER_KEYS, rows, spec)
    id_key = next((k for k in ID_KEYS if k in rows.columns), None)
    is_optillmbench = "optillmbench" in rows.name.lower()
    is_gsm8k = "gsm8k" in rows.name.lower()
    if request.oracle and request.oracle.startswith("rg:"):
        raise PTSError(f"oracle {request.oracle!r} judges reasoning-gym entries; use it with an rg:<task> dataset")
    fixed_oracle = get_oracle(request.oracle) if request.oracle else None

    tasks, skipped, structured = [], [], []
    selected = select_rows(len(rows.rows), request)
    item_ids = _item_ids(rows, id_key, selected, spec)
    for i in selected:
        row = rows.rows[i]
        query, raw_answer = row.get(query_key), row.get(answer_key)
        answer_text = None if raw_answer is None else _answer_text(raw_answer)
        if query is None or not str(query).strip() or not answer_text:
            skipped.append(i)
            continue
        if isinstance(raw_answer, dict) or (isinstance(raw_answer, (list, tuple)) and len(raw_answer) != 1):
            structured.append(i)
        if is_optillmbench:
            prompt, (gold, oracle, task_type) = optillmbench_task(str(query), answer_text, row.get("category"))
        else:
            prompt, (gold, oracle, task_type) = None, auto_oracle(answer_text, is_gsm8k)
        if fixed_oracle is not None:
            oracle, task_type = fixed_oracle, request.oracle
        metadata: dict[str, Any] = {"source_index": i}
        if gold != answer_text:
            metadata["raw_answer"] = answer_text
        for key, value in row.items():
            # Small scalar columns (category, level, id...) are worth keeping in records.
            if key not in (query_key, answer_key) and isinstance(value, (str, int, float, bool)):
                if not isinstance(value, str) or len(value) <= 200:
                    metadata[key] = value
        tasks.append(
            Task(
                query=str(query),
                answer=gold,
                item_id=item_ids[i],
                dataset_id=dataset_id,
                task_type=task_type,
                oracle=oracle,
                prompt=prompt,
                metadata=metadata,
            )
        )
    if skipped:
        logger.warning(
            "skipped %d row(s) of %s with an empty or missing %r or %r (first: row %d)",
            len(skipped),
            spec,
            query_key,
            answer_key,
            skipped[0],
        )
    if structured:
        logger.warning(
            "%d row(s) of %s have a list or object as %r; each is judged against its text form %r "
            "(first: row %d); pass --answer-key to pick a plain field",
            len(structured),
            spec,
            answer_key,
            _answer_text(rows.rows[structured[0]][answer_key]),
            structured[0],
        )
    if not tasks:
        raise PTSError(f"no usable rows in {spec}: every selected row lacks a {query_key!r} or {answer_key!r} value")
    return tasks


def _code_rows_to_tasks(rows: Rows, request: LoadRequest, *, dataset_id: str) -> list[Task]:
    """Tasks for HumanEval- or MBPP-shaped rows, each judged by running its tests (one oracle per language)."""
    shape = code_shape(rows.columns)
    if shape is None:
        raise PTSError(
            f"oracle {request.oracle!r} runs tests, but {request.spec} has no code task shape: "
            "expected HumanEval's prompt/test/entry_point or MBPP's text/test_list; columns: "
            f"{', '.join(rows.columns)}"
        )
    id_key = next((k for k in ID_KEYS if k in rows.columns), None)
    oracles: dict[str, CodeOracle] = {}
    tasks, skipped = [], []
    selected = select_rows(len(rows.rows), request)
    item_ids = _item_ids(rows, id_key, selected, request.spec)
    for i in selected:
        row = rows.rows[i]
        name = request.oracle if request.oracle not in (None, "humaneval") else f"code:{row_language(row)}"
        if name not in oracles:
            oracles[name] = get_oracle(name)
            oracles[name].check()
        task = code_task(row, i, shape, oracles[name], dataset_id, item_ids[i])
        if task is None:
            skipped.append(i)
        else:
            tasks.append(task)
    if skipped:
        logger.warning(
            "skipped %d row(s) of %s without code or tests (first: row %d)", len(skipped), request.spec, skipped[0]
        )
    if not tasks:
        raise PTSError(f"no usable rows in {request.spec}: every selected row lacks its code or tests")
    return tasks
