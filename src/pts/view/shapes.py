"""What a JSONL file holds, recognised by the fields of its records.

Every file ``pts view`` reads is JSON lines, one record per line, and every
record of a file is of one shape (a variant of a :mod:`pts.formats` format).
The shape is read from the first record and checked on every other one, so a
mixed or foreign file fails with one line that names the file and the record.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pts import formats
from pts.errors import PTSError
from pts.store import progress_path, read_jsonl

# Kind name -> what it is, as the report's file list says it: the shapes of every format pts knows at import
# (formats.shapes() also has those registered later).
SHAPES = formats.shapes()

# Kinds whose records are pivotal tokens, read through pts.export.records.
PIVOT_SHAPES = ("pivotal_tokens", "original_pivotal_tokens", "steering")


def shape_of(record: dict[str, Any]) -> str | None:
    """The shape of one record (a key of :data:`SHAPES`), or None when no format has its fields.

    Fields, not file names, decide (:func:`pts.formats.detect`): a DPO pair has
    ``prompt/chosen/rejected`` (pts's exports add ``metadata.pivot_id`` and
    exact token ids, the original tool's do not); a steering record has
    ``steering_vector``; a critical token ``kind: critical_token`` or a
    ``critical_token``/``critical_position`` field; a contrastive-score row
    ``tokens``, ``scores`` and ``logp_pos``; a trace line ``solution_tokens``
    and ``estimates``; a pivotal token ``pivot_context`` and ``pivot_token``
    (pts's records add ``pivot_context_ids``).
    """
    fmt = formats.detect(record)
    return fmt.shape(record) if fmt is not None and fmt.shapes else None


@dataclass
class ViewFile:
    """One input file: its path, the shape of its records and the records themselves (file order)."""

    path: Path
    shape: str
    records: list[dict[str, Any]]


def read_view_file(path: str | os.PathLike) -> ViewFile:
    """Read ``path`` and recognise its shape; PTSError with one line for anything ``pts view`` cannot show."""
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
    shape = shape_of(records[0])
    if shape is None:
        whats = [f.what for f in formats.registered() if f.shapes]
        raise PTSError(f"{p}: record 1 is of no shape pts view knows ({', '.join(whats[:-1])} or {whats[-1]})")
    for n, record in enumerate(records[1:], 2):
        other = shape_of(record)
        if other != shape:
            shapes = formats.shapes()
            what = shapes[other] if other else "of no known shape"
            raise PTSError(f"{p}: record {n} is {what}, but record 1 is {shapes[shape]}")
    return ViewFile(p, shape, records)
