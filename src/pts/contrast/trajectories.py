"""Trajectories of ``pts contrast``: sampled responses with the oracle's verdict and the answer it read.

They come from a ``pts eval``-style sampling run (:func:`trajectories_from_eval`)
or from a JSONL file (:func:`read_trajectories`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pts import options
from pts.errors import PTSError
from pts.records import stable_id

SCHEMA_VERSION = 1
TEXT_RESPONSE_KEYS = ("response", "completion", "output")


@dataclass
class Trajectory:
    """One sampled response to a query, with the oracle's verdict and the final answer it read."""

    query: str
    answer: str
    prompt_ids: list[int]
    response_ids: list[int]
    response: str
    correct: bool
    answer_key: str | None
    dataset_id: str
    dataset_item_id: str
    task_type: str = ""
    oracle: str = ""
    sample_index: int = 0
    finish_reason: str = ""
    model_id: str = ""
    id: str = ""

    def __post_init__(self) -> None:
        if not self.id:
            self.id = stable_id("trajectory", self.dataset_id, self.dataset_item_id, self.prompt_ids, self.response_ids)

    @property
    def group(self) -> tuple[str, str]:
        return self.dataset_id, self.dataset_item_id

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "trajectory", "schema_version": SCHEMA_VERSION, **asdict(self)}


def trajectories_from_eval(result) -> list[Trajectory]:
    """Trajectories from a :class:`pts.evaluate.EvalResult` (every sample of every query)."""
    out = []
    for q in result.queries:
        t = q.task
        for s in q.samples:
            out.append(
                Trajectory(
                    t.query,
                    t.answer,
                    list(q.prompt_ids),
                    list(s.response_ids),
                    s.response,
                    s.correct,
                    s.extracted_answer,
                    t.dataset_id,
                    t.item_id,
                    t.task_type,
                    getattr(t.oracle, "name", ""),
                    s.sample_index,
                    s.finish_reason,
                    result.model_id,
                )
            )
    return out


def has_token_ids(path: str) -> bool:
    """True when every row of the JSONL file carries ``prompt_ids`` and ``response_ids`` (no tokenizer needed)."""
    from pts.store import read_jsonl

    rows = read_jsonl(path)
    return bool(rows) and all(r.get("prompt_ids") and r.get("response_ids") is not None for r in rows)


def read_trajectories(
    path: str,
    tokenizer,
    data: options.DatasetOptions,
    prompt: options.PromptOptions,
    *,
    seed: int = 42,
) -> list[Trajectory]:
    """Trajectories from a JSONL file: ``pts contrast``/``pts eval`` output or rows ``{query, answer, response}``.

    A row needs the query (``query``/``question``), and the response as
    ``response_ids`` (with ``prompt_ids``: used exactly) or as text (tokenized
    here, EOS appended, prompt built from the query like ``pts run``, with
    ``prompt``'s system prompt and chat template). Rows without ``correct`` are
    judged by an oracle (``data.oracle``, else chosen from the answer's shape as for
    datasets), which needs ``answer`` (or ``data.answer_key``; ``data.query_key`` names the query).
    """
    from pts.store import read_jsonl
    from pts.tasks.answers import extracted_answer

    rows = read_jsonl(path)
    if not rows:
        raise PTSError(f"{path} has no trajectories")
    needs_task = any(
        not isinstance(r.get("correct"), bool) or not ("answer_key" in r or "extracted_answer" in r) for r in rows
    )
    tasks = _tasks_for_rows(path, rows, data.query_key, data.answer_key, data.oracle, seed) if needs_task else {}
    dataset_id = Path(path).name
    out = []
    for n, r in enumerate(rows, 1):
        where = f"{path} line {n}"
        query = r.get("query", r.get("question"))
        if not isinstance(query, str):
            raise PTSError(f"{where} has no query")
        task = tasks.get(n - 1)
        prompt_ids, response_ids = r.get("prompt_ids"), r.get("response_ids")
        if response_ids is None:
            text = next((r[k] for k in TEXT_RESPONSE_KEYS if isinstance(r.get(k), str)), None)
            if text is None:
                raise PTSError(f"{where} has no response (response_ids, or text in {', '.join(TEXT_RESPONSE_KEYS)})")
            if tokenizer is None:
                raise PTSError(f"{where} gives the response as text; a tokenizer is needed")
            response_ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
            if tokenizer.eos_token_id is not None and (not response_ids or response_ids[-1] != tokenizer.eos_token_id):
                response_ids.append(tokenizer.eos_token_id)
        if prompt_ids is None:
            if tokenizer is None:
                raise PTSError(f"{where} has no prompt_ids; a tokenizer is needed to build the prompt")
            from pts.search.searcher import build_prompt_ids

            prompt_ids = build_prompt_ids(
                tokenizer,
                task.prompt if task else query,
                prompt.system_prompt,
                prompt.chat_template,
                task.raw_prompt if task else None,
            )
        for name, ids in (("prompt_ids", prompt_ids), ("response_ids", response_ids)):
            if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
                raise PTSError(f"{where}: {name} must be a list of token ids")
        response = r.get("response")
        if not isinstance(response, str):
            response = tokenizer.decode(response_ids, skip_special_tokens=True) if tokenizer is not None else ""
        correct = r.get("correct")
        if not isinstance(correct, bool):
            if task is None:
                raise PTSError(f"{where} has no correct verdict and no answer to judge it with")
            correct = bool(task.judge(response))
        if "answer_key" in r or "extracted_answer" in r:  # pts contrast / pts eval rows
            key = r.get("answer_key", r.get("extracted_answer"))
        else:
            key = extracted_answer(task, response) if task else None
        item = r.get("dataset_item_id", task.item_id if task else None)
        out.append(
            Trajectory(
                query=query,
                answer=str(r.get("answer", "")),
                prompt_ids=list(prompt_ids),
                response_ids=list(response_ids),
                response=response,
                correct=correct,
                answer_key=key,
                dataset_id=str(r.get("dataset_id") or dataset_id),
                dataset_item_id=str(item) if item is not None else stable_id(query),
                task_type=str(r.get("task_type") or (task.task_type if task else "")),
                oracle=str(r.get("oracle") or (getattr(task.oracle, "name", "") if task else "")),
                sample_index=int(r.get("sample_index", 0) or 0),
                finish_reason=str(r.get("finish_reason", "")),
                model_id=str(r.get("model_id", "")),
                id=str(r.get("trajectory_id") or r.get("id") or ""),
            )
        )
    return out


def _tasks_for_rows(
    path: str, rows: list[dict[str, Any]], query_key: str | None, answer_key: str | None, oracle: str | None, seed: int
) -> dict[int, Any]:
    """Tasks (oracle, prompt, gold answer) of the file's rows, by row index; rows without an answer get none."""
    from pts.tasks.sources import load_tasks

    if not any("answer" in r or (answer_key and answer_key in r) for r in rows):
        return {}
    query_key = query_key or ("query" if "query" in rows[0] else None)
    tasks = load_tasks(path, query_key=query_key, answer_key=answer_key or "answer", oracle=oracle, seed=seed)
    return {t.metadata.get("source_index"): t for t in tasks}
