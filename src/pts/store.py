"""Append-only JSONL output that survives interruption and resumes.

Records of one dataset item are written together in one ``write`` and fsynced;
then the item is marked finished in a sidecar ``<output>.progress`` file (JSON
lines: a header with the run's settings, then one line per finished item). On
resume, a torn last line is cut off, records of items that never finished are
dropped (the item is searched again), and finished items are skipped. Records
are idempotent by their stable ``id``: one already in the file is not written
twice.

One run writes an output at a time: :class:`OutputLock` holds an exclusive
``flock`` on ``<output>.lock`` for as long as the run lasts, so a second
``pts run`` on the same output is refused instead of interleaving its records.
A full disk stops the run with one line and leaves every file as it was
before the failed write.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from pts.errors import PTSError

log = logging.getLogger(__name__)

# Below this much free space a run is refused before it loads a model: records of one query are kilobytes,
# its traces tens of kilobytes, so this leaves room for thousands of queries.
MIN_FREE_BYTES = 32 * 2**20
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def progress_path(path: str | os.PathLike) -> Path:
    return Path(f"{os.fspath(path)}.progress")


def trace_path(path: str | os.PathLike) -> Path:
    """Where ``pts run`` keeps the estimates it made along each searched solution (for ``pts view``)."""
    return Path(str(path) + ".trace.jsonl")


def lock_path(path: str | os.PathLike) -> Path:
    return Path(f"{os.fspath(path)}.lock")


def disk_full(path: str | os.PathLike) -> PTSError:
    """The one-line error for a write that ran out of space (or quota)."""
    return PTSError(
        f"the disk is full: cannot write {path}; free some space and run the same command again "
        "to resume (the output is left valid)"
    )


def append_jsonl(path: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> None:
    """Append ``rows`` as whole lines and fsync them (a torn last line is cut on the next open of a store).

    On a full disk the file is cut back to its length before this call and PTSError is raised.
    """
    blob = ("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)).encode("utf-8")
    if not blob:
        return
    # Unbuffered, so that a failed write leaves nothing in a buffer to be flushed (and fail) at close.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        before = os.fstat(fd).st_size
        try:
            view = memoryview(blob)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except OSError as e:
            if e.errno not in _DISK_FULL:
                raise
            os.ftruncate(fd, before)
            raise disk_full(path) from None
    finally:
        os.close(fd)


def check_free_space(path: str | os.PathLike, need: int | None = None) -> None:
    """Raise PTSError when the disk that will hold ``path`` has less than ``need`` bytes free (default
    ``MIN_FREE_BYTES``): a run that cannot write its results is refused before it searches."""
    need = MIN_FREE_BYTES if need is None else need
    parent = Path(path).parent if str(Path(path).parent) else Path(".")
    free = shutil.disk_usage(parent).free
    if free < need:
        raise PTSError(
            f"only {free / 2**20:.1f} MiB free on the disk of {path} (pts needs at least "
            f"{need / 2**20:.0f} MiB); free some space or choose another --output-path"
        )


def _check_parent(p: Path) -> Path:
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        if parent.exists():
            raise PTSError(f"cannot write {p}: {parent} is a file, not a directory")
        raise PTSError(f"cannot write {p}: directory {parent} does not exist")
    return parent


def check_writable(path: str | os.PathLike) -> None:
    """Raise PTSError unless ``path`` can be created or appended to; creates nothing."""
    p = Path(path)
    if p.is_dir():
        raise PTSError(f"output path {p} is a directory")
    parent = _check_parent(p)
    for target in (p, progress_path(p)):
        if target.exists() and not os.access(target, os.W_OK):
            raise PTSError(f"cannot write {target}: permission denied")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PTSError(f"cannot write {p}: directory {parent} is not writable")


# What pts adds to an output's name for the files beside it: the longest is the temporary copy of the progress
# file made by atomic_write, "." + name + ".progress." + 8 random characters + ".tmp".
_LONGEST_SIDECAR = len("..progress.12345678.tmp")


def sidecars(path: str | os.PathLike) -> list[tuple[str, Path]]:
    """The files pts keeps beside a resumable output, by what they are: progress, traces, lock."""
    return [("progress", progress_path(path)), ("trace", trace_path(path)), ("lock", lock_path(path))]


def check_resumable_output(path: str | os.PathLike, inputs: Mapping[str, str | None] | None = None) -> Path:
    """Raise PTSError unless ``path`` can hold a resumable output; returns the file it names, resolved.

    Creates nothing. Refused, each with one line: a name too long for the
    file system once pts's sidecars are added; a symlink to nothing or a loop
    of symlinks; anything that is not a regular file (a directory,
    ``/dev/null``); a sidecar (``.progress``, ``.trace.jsonl``, ``.lock``) that
    is not a regular file; and an output or sidecar that is, or resolves to,
    one of ``inputs`` (the files the command reads, by the flag that names
    them: ``{"--dataset": "qa.jsonl"}``; specs that are not files are
    ignored). The resolved path is the one to lock and write: two spellings of
    one file (a symlink alias) share one lock.
    """
    text = os.fspath(path)
    p = Path(text)
    try:
        limit = os.pathconf(p.parent if str(p.parent) else ".", "PC_NAME_MAX")
    except OSError:
        limit = 255
    if len(os.fsencode(p.name)) + _LONGEST_SIDECAR > limit:
        raise PTSError(
            f"--output-path name is {len(os.fsencode(p.name))} bytes long; with the files pts keeps beside it "
            f"(.progress, .trace.jsonl) it must be at most {limit - _LONGEST_SIDECAR}"
        )
    try:
        if p.is_symlink():
            try:
                p.resolve(strict=True)
            except FileNotFoundError:
                raise PTSError(
                    f"--output-path {text} is a symlink to {os.readlink(p)}, which does not exist; "
                    "remove the link or choose another path"
                ) from None
            except (RuntimeError, OSError):  # a loop (RuntimeError before Python 3.13)
                raise PTSError(f"--output-path {text} is a symlink loop; remove it or choose another path") from None
        resolved = Path(os.path.realpath(p))
        if resolved.is_dir():
            raise PTSError(f"output path {text} is a directory")
        if resolved.exists() and not resolved.is_file():
            raise PTSError(f"output path {text} is not a regular file; pts appends records to a file it can resume")
        check_writable(resolved)
        for what, side in sidecars(resolved):
            if side.is_symlink() or (side.exists() and not side.is_file()):
                kind = "a directory" if side.is_dir() else "not a regular file"
                raise PTSError(
                    f"{side} (the {what} file of --output-path {text}) is {kind}; move it away or choose "
                    "another --output-path"
                )
        files = [
            ("is", resolved),
            *((f"would write its {what} file {side}, which is", side) for what, side in sidecars(resolved)),
        ]
        for flag, spec in (inputs or {}).items():
            if not spec or not os.path.exists(spec):
                continue
            source = os.path.realpath(spec)
            for role, target in files:
                if str(target) == source or (target.exists() and os.path.samefile(target, source)):
                    raise PTSError(
                        f"--output-path {text} {role} the dataset file given to {flag} ({spec}); "
                        "choose another --output-path"
                    )
    except OSError as e:  # a component too long, a directory that cannot be searched...
        raise PTSError(f"cannot use --output-path {text}: {e.strerror or e}") from None
    return resolved


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
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.errno in _DISK_FULL:
            raise disk_full(target) from None
        raise


def check_output_path(path: str | os.PathLike) -> None:
    """Raise PTSError unless a whole-file output can be written at ``path``; creates nothing."""
    p = Path(path)
    if p.is_dir():
        raise PTSError(f"output path {p} is a directory")
    parent = _check_parent(p)
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


class OutputLock:
    """An exclusive lock on one output for the life of a run: ``flock`` on ``<output>.lock``.

    A second process asking for the same output gets PTSError at once (it does
    not wait). The kernel drops the lock when its holder dies, so a killed run
    never blocks the next one; the lock file is removed on :meth:`release`.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.output = Path(path)
        self.path = lock_path(path)
        self._fd: int | None = None
        while self._fd is None:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as e:  # a directory in its place, a name too long, no permission
                raise PTSError(f"cannot lock {self.output}: {self.path}: {e.strerror or e}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise PTSError(
                    f"{self.output} is being written by another pts process (pid {holder}); wait for "
                    "it to finish or choose another --output-path"
                ) from None
            # A holder that released (and removed the file) between our open and flock leaves us a lock on a
            # file nobody else will open: lock the current file instead.
            try:
                current = os.stat(self.path).st_ino
            except FileNotFoundError:
                current = None
            if current != os.fstat(fd).st_ino:
                os.close(fd)
                continue
            self._fd = fd
        os.ftruncate(self._fd, 0)
        os.write(self._fd, f"{os.getpid()}\n".encode())

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)  # while still holding it, so nobody locks a file about to vanish
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> OutputLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _foreign_record(row: dict[str, Any], settings: dict[str, Any]) -> str | None:
    """Why ``row`` cannot be a record of this run (None when it can): pts records name their item,
    dataset and model, and an adopted file must be of the same dataset and model."""
    for key in ("dataset_item_id", "dataset_id", "model_id"):
        if row.get(key) is None:
            return f"it has no {key!r}, so it is not a pts record"
    for key in ("dataset_id", "model_id"):
        if key in settings and row[key] != settings[key]:
            return f"its {key} is {row[key]!r}, this run's is {settings[key]!r}"
    return None


class RunStore:
    """The output of one ``pts run``: records plus progress, opened for resuming or from scratch.

    ``settings`` are the run options that change results; resuming a file made
    with different ones is refused rather than mixing two searches in one file.
    A file without its progress is checked record by record: ``carried(record)``
    gives the settings a record states (under the names of ``settings``), and
    one that differs is refused too.
    ``resume=False`` starts an output that must not hold finished work yet;
    ``overwrite`` deletes whatever is there. The store holds ``lock`` (an
    :class:`OutputLock` taken earlier by the caller, or its own) until :meth:`close`.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        settings: dict[str, Any],
        *,
        resume: bool = True,
        overwrite: bool = False,
        lock: OutputLock | None = None,
        carried: Callable[[dict[str, Any]], Mapping[str, Any]] | None = None,
    ) -> None:
        self.path = Path(path)
        self.carried = carried
        self.progress = progress_path(path)
        self.settings = settings
        self.done: dict[str, dict[str, Any]] = {}
        self.ids: set[str] = set()
        self.records_in_file = 0
        self.lock = lock or OutputLock(path)
        try:
            # Progress without its output describes records that no longer exist.
            if overwrite or not self.path.exists():
                for p in (self.path, self.progress, trace_path(self.path)):
                    p.unlink(missing_ok=True)
            self._open(resume)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Release the output's lock; the files are complete after every :meth:`write_item`."""
        self.lock.release()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open(self, resume: bool) -> None:
        if self.path.exists() and self.path.stat().st_size:
            _cut_torn_tail(self.path)
        for side in (self.progress, trace_path(self.path)):
            if side.exists() and side.stat().st_size:
                _cut_torn_tail(side)
        records = read_jsonl(self.path) if self.path.exists() else []
        progress = read_jsonl(self.progress) if self.progress.exists() else []
        header = next((r for r in progress if r.get("kind") == "header"), None)
        finished = [r for r in progress if r.get("kind") == "item"]
        if header is not None:
            self._check_settings(header.get("settings", {}))
            for n, r in enumerate(finished, 1):
                if not isinstance(r.get("dataset_item_id"), str):
                    raise PTSError(
                        f"{self.progress} item line {n} has no dataset_item_id, so it is not a progress file "
                        "pts wrote; pass --overwrite to start again, or choose another --output-path"
                    )
            self.done = {r["dataset_item_id"]: r for r in finished}
        elif records:
            # A file without progress (older pts, or the original tool): items with records count as done,
            # once every line is known to be a record of this dataset and model.
            for n, row in enumerate(records, 1):
                why = _foreign_record(row, self.settings) or self._other_settings(row)
                if why is not None:
                    raise PTSError(
                        f"{self.path} holds data this run cannot add to (record {n}: {why}); choose "
                        "another --output-path, or pass --overwrite to replace the file"
                    )
            self.done = {str(r["dataset_item_id"]): {"status": "imported"} for r in records}
        if not resume and self.done:
            raise PTSError(
                f"{self.path} already holds the results of {len(self.done)} finished item(s), which "
                "--no-resume would discard: pass --overwrite to delete them and start again, or drop "
                "--no-resume to continue that run"
            )
        kept = [r for r in records if str(r.get("dataset_item_id")) in self.done]
        if len(kept) != len(records):
            log.warning(
                "%s: dropping %d records of an item that did not finish; it will be searched again",
                self.path,
                len(records) - len(kept),
            )
            write_jsonl(self.path, kept)
        self.ids = {r["id"] for r in kept if "id" in r}
        self.records_in_file = len(kept)
        if header is None:
            write_jsonl(
                self.progress,
                [
                    {"kind": "header", "settings": self.settings},
                    *({"kind": "item", "dataset_item_id": k, **v} for k, v in self.done.items()),
                ],
            )
        self.path.touch()

    def _other_settings(self, row: dict[str, Any]) -> str | None:
        """Why ``row`` was made with other settings than this run's (None when it was not, or cannot say)."""
        stated = self.carried(row) if self.carried is not None else {}
        for k, v in stated.items():
            if k in self.settings and v != self.settings[k]:
                return f"it was made with {k} {v!r}, this run's is {self.settings[k]!r}"
        return None

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
