"""What a JSONL file holds, recognised by the fields of its records.

Every file ``pts view`` reads is JSON lines, one record per line, and every
record of a file is of one kind. The kind is read from the first record and
checked on every other one, so a mixed or foreign file fails with one line
that names the file and the record.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pts.errors import PTSError
from pts.store import progress_path, read_jsonl

# Kind name -> what it is, as the report's file list says it.
KINDS = {
    "pivotal_tokens": "pivotal tokens (pts run)",
    "original_pivotal_tokens": "pivotal tokens (original PTS tool)",
    "steering": "steering vectors (pts export --format steering)",
    "dpo": "DPO pairs (pts export --format dpo)",
    "original_dpo": "DPO pairs (original PTS tool)",
    "critical_tokens": "critical tokens (pts critical)",
    "contrast_scores": "contrastive scores (pts contrast)",
    "trace": "search trace (pts run)",
}

# Kinds whose records are pivotal tokens, read through pts.export.records.
PIVOT_KINDS = ("pivotal_tokens", "original_pivotal_tokens", "steering")


def kind_of(record: dict[str, Any]) -> str | None:
    """The kind of one record (a key of :data:`KINDS`), or None when no kind has its fields.

    Fields, not file names, decide: a DPO pair has ``prompt/chosen/rejected``
    (pts's exports add ``metadata.pivot_id`` and exact token ids, the original
    tool's do not); a steering record has ``steering_vector``; a critical token
    ``critical_position`` and per-position ``scores``; a contrastive-score row
    ``tokens``, ``scores`` and ``logp_pos``; a trace line ``solution_tokens``
    and ``estimates``; a pivotal token ``pivot_context`` and ``pivot_token``
    (pts's records add ``pivot_context_ids``).
    """
    if "steering_vector" in record:
        return "steering"
    if {"prompt", "chosen", "rejected"} <= record.keys():
        metadata = record.get("metadata")
        pts_made = isinstance(metadata, dict) and ("pivot_id" in metadata or "prompt_token_ids" in metadata)
        return "dpo" if pts_made else "original_dpo"
    if record.get("kind") == "critical_token" or {"critical_position", "scores", "response"} <= record.keys():
        return "critical_tokens"
    if record.get("kind") == "contrastive_scores" or {"tokens", "scores", "logp_pos"} <= record.keys():
        return "contrast_scores"
    if {"solution_tokens", "estimates"} <= record.keys():
        return "trace"
    if {"pivot_context", "pivot_token"} <= record.keys():
        return "pivotal_tokens" if "pivot_context_ids" in record else "original_pivotal_tokens"
    return None


@dataclass
class ViewFile:
    """One input file: its path, the kind of its records and the records themselves (file order)."""

    path: Path
    kind: str
    records: list[dict[str, Any]]


def read_view_file(path: str | os.PathLike) -> ViewFile:
    """Read ``path`` and recognise its kind; PTSError with one line for anything ``pts view`` cannot show."""
    p = Path(path)
    if not p.exists():
        raise PTSError(f"input file {p} does not exist")
    if not p.is_file():
        raise PTSError(f"input path {p} is not a file")
    try:
        records = read_jsonl(p, encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise PTSError(f"{p} is not a UTF-8 text file of JSON lines") from None
    if not records:
        if progress_path(p).is_file():  # a pts run that found no pivotal token: still worth a report
            return ViewFile(p, "pivotal_tokens", [])
        raise PTSError(f"{p} holds no records")
    kind = kind_of(records[0])
    if kind is None:
        raise PTSError(f"{p}: record 1 is of no shape pts view knows (pivotal tokens, DPO pairs, steering vectors, "
                       f"critical tokens, contrastive scores or a search trace)")
    for n, record in enumerate(records[1:], 2):
        other = kind_of(record)
        if other != kind:
            what = KINDS[other] if other else "of no known shape"
            raise PTSError(f"{p}: record {n} is {what}, but record 1 is {KINDS[kind]}")
    return ViewFile(p, kind, records)
