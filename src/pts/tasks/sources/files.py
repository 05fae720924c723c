"""The local-file source: a ``.jsonl``, ``.json``, ``.csv`` or ``.parquet`` file of rows."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pts.errors import PTSError, first_line
from pts.tasks.sources.request import LoadRequest
from pts.tasks.sources.rows import Rows, rows_to_tasks
from pts.tasks.task import Task

__all__ = ["FILE_EXTENSIONS", "is_file_spec", "load_file"]

FILE_EXTENSIONS = (".jsonl", ".json", ".csv", ".parquet")
# Suffixes that mark a spec as a file path even when the file is missing or unsupported.
_FILE_LIKE_SUFFIXES = FILE_EXTENSIONS + (
    ".tsv",
    ".txt",
    ".arrow",
    ".gz",
    ".zip",
    ".xlsx",
    ".xls",
    ".xml",
    ".yaml",
    ".yml",
)


def _read_jsonl(path: Path) -> list[Any]:
    records = []
    with path.open(encoding="utf-8-sig") as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except ValueError as e:
                    raise PTSError(f"could not read {path}: line {number} is not valid JSON ({e})") from None
    return records


def _read_json(path: Path, split: str) -> list[Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except ValueError as e:
        raise PTSError(f"could not read {path}: not valid JSON ({e})") from None
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        lists = {k: v for k, v in data.items() if isinstance(v, list)}
        for key in (split, "data", "examples", "rows"):
            if key in lists:
                return lists[key]
        if len(lists) == 1:
            return next(iter(lists.values()))
        if lists:
            raise PTSError(f"{path} holds several lists ({', '.join(lists)}); pick one with --split")
    raise PTSError(f'{path} must hold a JSON list of objects, or an object with one such list like {{"data": [...]}}')


def _read_csv(path: Path) -> list[Any]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def _read_parquet(path: Path) -> list[Any]:
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


_FILE_READERS: dict[str, Callable[[Path, str], list[Any]]] = {
    ".jsonl": lambda path, split: _read_jsonl(path),
    ".json": _read_json,
    ".csv": lambda path, split: _read_csv(path),
    ".parquet": lambda path, split: _read_parquet(path),
}


def is_file_spec(spec: str) -> bool:
    """True for a spec naming a file: an existing file, a path, or a name with a data file suffix."""
    path = Path(spec).expanduser()
    if path.is_file():
        return True
    if path.is_dir():
        return False
    looks_like_path = spec.startswith(("/", "./", "../", "~")) or "\\" in spec
    return looks_like_path or path.suffix.lower() in _FILE_LIKE_SUFFIXES


def load_file(request: LoadRequest) -> list[Task]:
    """Tasks from the rows of a local data file."""
    path = Path(request.spec).expanduser()
    if not path.exists():
        raise PTSError(f"dataset file not found: {request.spec}")
    reader = _FILE_READERS.get(path.suffix.lower())
    if reader is None:
        raise PTSError(
            f"unsupported file extension {path.suffix or '(none)'!r} for {request.spec}: "
            f"use {', '.join(FILE_EXTENSIONS)}"
        )
    try:
        records = reader(path, request.split)
    except PTSError:
        raise
    except Exception as e:  # unreadable or corrupt: OSError, UnicodeDecodeError, ArrowInvalid, csv.Error
        raise PTSError(f"could not read {request.spec}: {first_line(e)}") from None
    bad = next((i for i, r in enumerate(records) if not isinstance(r, Mapping)), None)
    if bad is not None:
        raise PTSError(f"could not read {request.spec}: record {bad} is not an object with named fields")
    columns = list(dict.fromkeys(k for r in records[:100] for k in r))
    # The folder counts too: optillmbench/train.jsonl is optillmbench.
    name = f"{path.resolve().parent.name}/{path.name}"
    return rows_to_tasks(Rows(name, columns, records), request, dataset_id=request.spec)
