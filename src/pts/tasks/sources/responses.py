"""Rows that bring their own response (``--input-path`` of ``pts critical`` and ``pts anchors``): each row's task
and the response to analyse instead of sampling one."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from pts import options
from pts.errors import PTSError
from pts.options import option
from pts.store import read_jsonl
from pts.tasks.sources import load_tasks_from
from pts.tasks.sources.rows import ANSWER_KEYS
from pts.tasks.task import Task


@options.config
class ResponsesInput:
    """``--input-path``: rows that bring their own response, analysed instead of responses sampled from
    ``--dataset`` (``pts critical``, ``pts anchors``). Listed with the command's own options."""

    input_path: str | None = option(
        None,
        "JSONL of {query, answer, response} rows to analyse instead of sampling from --dataset (an optional "
        "response_ids list is used as the exact tokens)",
    )
    response_key: str = option("response", "field of --input-path rows holding the response")

    def check_input(self) -> None:
        """PTSError unless ``input_path`` is None or an existing ``.jsonl`` file."""
        if self.input_path is None:
            return
        path = Path(self.input_path).expanduser()
        if not path.is_file():
            raise PTSError(f"input file not found: {self.input_path}")
        if path.suffix.lower() != ".jsonl":
            raise PTSError(
                f"--input-path must be a .jsonl file of {{query, answer, response}} rows, got {self.input_path}"
            )


def load_response_rows(
    input_path: str, response_key: str, data: options.DataOptions, seed: int
) -> tuple[list[Task], dict[str, Any]]:
    """The tasks of the JSONL file ``input_path`` (fields as ``data`` names them; the answer field detected when
    it names none) and, by item id, each row's response: its ``response_ids`` when they are a list of ints, else
    the text under ``response_key``. Rows without a response are among the tasks, not in the dict: what to do
    with them is the command's call. PTSError (one line) for an empty file or a missing response or answer field."""
    rows = read_jsonl(Path(input_path).expanduser(), encoding="utf-8-sig")
    if not rows:
        raise PTSError(f"{input_path} is empty")
    columns = list(dict.fromkeys(k for r in rows[:100] for k in r))
    if response_key not in columns:
        raise PTSError(
            f"no {response_key!r} field in {input_path}; available columns: {', '.join(columns)} (set --response-key)"
        )
    answer_key = data.answer_key or next((k for k in ANSWER_KEYS if k in columns and k != response_key), None)
    if answer_key is None:
        raise PTSError(
            f"no answer field in {input_path} (looked for "
            f"{', '.join(k for k in ANSWER_KEYS if k != response_key)}); name one with --answer-key"
        )
    # The file's own fields: a Hub config or split has no meaning for it.
    rows_of_file = dataclasses.replace(data, dataset=input_path, answer_key=answer_key, config=None, split="train")
    tasks = load_tasks_from(rows_of_file, seed)
    responses: dict[str, Any] = {}
    for task in tasks:
        row = rows[task.metadata["source_index"]]
        ids = row.get("response_ids")
        if isinstance(ids, list) and ids and all(isinstance(i, int) for i in ids):
            responses[task.item_id] = [int(i) for i in ids]
        elif isinstance(row.get(response_key), str):
            responses[task.item_id] = row[response_key]
    return tasks, responses
