"""Append-only JSONL output that survives interruption and resumes.

Records of one dataset item are written together in one ``write`` and fsynced;
then the item is marked finished in a sidecar ``<output>.progress`` file (JSON
lines: a header with the run's settings, then one line per finished item). On
resume, a torn last line is cut off, records of items that never finished are
dropped (the item is searched again), and finished items are skipped. Records
are idempotent by their stable ``id``: one already in the file is not written
twice.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

from pts.errors import PTSError

log = logging.getLogger(__name__)


def progress_path(path: str | os.PathLike) -> Path:
    return Path(f"{os.fspath(path)}.progress")


def trace_path(path: str | os.PathLike) -> Path:
    """Where ``pts run`` keeps the estimates it made along each searched solution (for ``pts view``)."""
    return Path(str(path) + ".trace.jsonl")


def append_jsonl(path: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> None:
    """Append ``rows`` as whole lines and fsync them (a torn last line is cut on the next open of a store)."""
    blob = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    if blob:
        with open(path, "a", encoding="utf-8") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())


def check_writable(path: str | os.PathLike) -> None:
    """Raise PTSError unless ``path`` can be created or appended to; creates nothing."""
    p = Path(path)
    if p.is_dir():
        raise PTSError(f"output path {p} is a directory")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise PTSError(f"cannot write {p}: directory {parent} does not exist")
    for target in (p, progress_path(p)):
        if target.exists() and not os.access(target, os.W_OK):
            raise PTSError(f"cannot write {target}: permission denied")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PTSError(f"cannot write {p}: directory {parent} is not writable")


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success it replaces ``path`` in one rename.

    An exception (bad input found halfway, Ctrl-C) leaves ``path`` as it was:
    never half-written. Use for every whole-file output (exports, cards, vectors).
    """
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if "b" in mode:
        encoding = None
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would survive the rename
    try:
        with os.fdopen(fd, mode, encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def check_output_path(path: str | os.PathLike) -> None:
    """Raise PTSError unless a whole-file output can be written at ``path``; creates nothing."""
    p = Path(path)
    if p.is_dir():
        raise PTSError(f"output path {p} is a directory")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise PTSError(f"cannot write {p}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PTSError(f"cannot write {p}: directory {parent} is not writable")


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> None:
    """Write ``rows`` as JSON lines through :func:`atomic_write`: the whole file or nothing."""
    with atomic_write(path) as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def read_jsonl(path: str | os.PathLike, encoding: str = "utf-8") -> list[dict[str, Any]]:
    """All JSON objects of a JSONL file; PTSError naming the line when one is not valid JSON.

    ``encoding="utf-8-sig"`` also accepts a leading byte-order mark (files from other tools).
    """
    rows = []
    with open(path, encoding=encoding) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise PTSError(f"{path} line {n} is not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise PTSError(f"{path} line {n} is not a JSON object")
            rows.append(row)
    return rows


def _cut_torn_tail(path: Path) -> None:
    """Drop a last line that was cut off mid-write (no trailing newline)."""
    with open(path, "rb+") as f:
        data = f.read()
        if data and not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
            log.warning("%s: dropping an incomplete last line left by an interrupted run", path)
            f.truncate(keep)


class RunStore:
    """The output of one ``pts run``: records plus progress, opened for resuming or from scratch.

    ``settings`` are the run options that change results; resuming a file made
    with different ones is refused rather than mixing two searches in one file.
    """

    def __init__(self, path: str | os.PathLike, settings: dict[str, Any], *,
                 resume: bool = True, overwrite: bool = False) -> None:
        self.path = Path(path)
        self.progress = progress_path(path)
        self.settings = settings
        self.done: dict[str, dict[str, Any]] = {}
        self.ids: set[str] = set()
        self.records_in_file = 0
        # Progress without its output describes records that no longer exist.
        if overwrite or not resume or not self.path.exists():
            for p in (self.path, self.progress, trace_path(self.path)):
                p.unlink(missing_ok=True)
        self._open()

    def _open(self) -> None:
        if self.path.exists() and self.path.stat().st_size:
            _cut_torn_tail(self.path)
        for side in (self.progress, trace_path(self.path)):
            if side.exists() and side.stat().st_size:
                _cut_torn_tail(side)
        records = read_jsonl(self.path) if self.path.exists() else []
        progress = read_jsonl(self.progress) if self.progress.exists() else []
        header = next((r for r in progress if r.get("kind") == "header"), None)
        if header is not None:
            self._check_settings(header.get("settings", {}))
            self.done = {r["dataset_item_id"]: r for r in progress if r.get("kind") == "item"}
        elif records:
            # A file without progress (older pts, or the original tool): items with records count as done.
            self.done = {str(r.get("dataset_item_id")): {"status": "imported"} for r in records}
        kept = [r for r in records if str(r.get("dataset_item_id")) in self.done]
        if len(kept) != len(records):
            log.warning("%s: dropping %d records of an item that did not finish; it will be searched again",
                        self.path, len(records) - len(kept))
            write_jsonl(self.path, kept)
        self.ids = {r["id"] for r in kept if "id" in r}
        self.records_in_file = len(kept)
        if header is None:
            write_jsonl(self.progress, [{"kind": "header", "settings": self.settings},
                                                *({"kind": "item", "dataset_item_id": k, **v}
                                                  for k, v in self.done.items())])
        self.path.touch()

    def _check_settings(self, previous: dict[str, Any]) -> None:
        changed = [k for k in self.settings if k in previous and previous[k] != self.settings[k]]
        if changed:
            k = changed[0]
            raise PTSError(
                f"{self.path} was written with different settings ({k}: {previous[k]!r} then, "
                f"{self.settings[k]!r} now); pass --overwrite or choose another --output-path"
            )

    def is_done(self, item_id: str) -> bool:
        return item_id in self.done

    def write_item(self, item_id: str, records: list[dict[str, Any]], summary: dict[str, Any]) -> int:
        """Append ``records`` of one finished item, then mark it done. Returns how many were new."""
        new = list({r["id"]: r for r in records if r["id"] not in self.ids}.values())
        append_jsonl(self.path, new)
        self.ids.update(r["id"] for r in new)
        self.records_in_file += len(new)
        line = {"kind": "item", "dataset_item_id": item_id, **summary}
        append_jsonl(self.progress, [line])
        self.done[item_id] = line
        return len(new)
