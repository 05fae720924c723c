"""The report's data: every input file turned into plain JSON-ready rows the page renders.

Nothing here is HTML: text stays text, and the page puts it into the DOM as
text (never as markup). Queries are kept once in ``queries`` and referred to
by index, so 10,000 records of a few queries stay small.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pts import formats
from pts.errors import PTSError
from pts.formats.rows import CONTEXT_TAIL, int_or_none, interval, number
from pts.store import progress_path, read_jsonl
from pts.view.shapes import PIVOT_SHAPES, ViewFile, read_view_file
from pts.view.trajectories import (
    PivotPlace,
    Trace,
    curve_from_pivots,
    read_traces,
    solution_from_trace,
    solutions_from_contexts,
    trace_path,
)


class ReportData:
    """Rows of the report, built file by file with :meth:`add`; :meth:`to_dict` is what the page reads."""

    def __init__(self) -> None:
        self.files: list[dict[str, Any]] = []
        self.queries: list[str] = []
        self._query_index: dict[str, int] = {}
        self.pivots: list[dict[str, Any]] = []
        self.solutions: list[dict[str, Any]] = []
        self.pairs: list[dict[str, Any]] = []
        self.critical: list[dict[str, Any]] = []
        self.contrast: list[dict[str, Any]] = []
        self.anchors: list[dict[str, Any]] = []  # thought-anchor sentences (pts anchors)
        # Lists of formats the page does not draw (a plugin's): kept in the report's data under their name.
        self.other_lists: dict[str, list[dict[str, Any]]] = {}
        self.other_titles: dict[str, str] = {}  # each other list's title: what its format's records are
        self.traces: dict[tuple[str, int], Trace] = {}
        # Pivot files wait for finish(): a trace named later on the command line still belongs to them.
        self._pending: list[tuple[int, int, int, ViewFile, dict[tuple[str, int], Trace]]] = []

    def query(self, text: Any) -> int:
        """The index of ``text`` in :attr:`queries`, added on first sight."""
        text = "" if text is None else str(text)
        if text not in self._query_index:
            self._query_index[text] = len(self.queries)
            self.queries.append(text)
        return self._query_index[text]

    def add(self, view_file: ViewFile) -> None:
        """Add the rows of one file (its search trace and progress sidecars too, when beside it)."""
        file_index = len(self.files)
        entry = {
            "path": str(view_file.path),
            "kind": view_file.shape,
            "what": formats.shapes()[view_file.shape],
            "records": len(view_file.records),
            "settings": {},
            "samples_spent": None,
            "queries": None,
            "trace": None,
        }
        self.files.append(entry)
        fmt = formats.detect(view_file.records[0]) if view_file.records else None
        if view_file.shape != "trace":
            read_sidecars(view_file, entry)
        if view_file.shape == "trace":
            self.traces.update(read_traces(view_file.records, view_file.path))
        elif view_file.shape in PIVOT_SHAPES:
            self._add_pivots(view_file, file_index, entry)
        elif fmt is not None and fmt.view_list is not None:
            # The format's own rows, in the page's list of its kind (pairs, critical tokens, contrast scores).
            rows = self._list(fmt.view_list, fmt.what)
            for n, record in enumerate(view_file.records, 1):
                row = fmt.view_row(record, f"{view_file.path} record {n}", self.query)
                rows.append({"file": file_index, "line": n, **row})

    def _list(self, name: str, title: str) -> list[dict[str, Any]]:
        if name in ("pairs", "critical", "contrast", "anchors"):
            return getattr(self, name)
        if name in ("files", "queries", "pivots", "solutions", "other_lists", "overview", "trajectories"):
            raise PTSError(f"a format's view_list may not be {name!r}: the page keeps its own rows there")
        self.other_titles.setdefault(name, title)
        return self.other_lists.setdefault(name, [])

    def _add_pivots(self, view_file: ViewFile, file_index: int, entry: dict[str, Any]) -> None:
        from pts.export.records import pivot_from_row

        first = len(self.pivots)
        for n, record in enumerate(view_file.records, 1):
            if view_file.shape == "steering":
                # A steering line keeps the context ids but not the rollout counts of a full pts record.
                pivot = pivot_from_row({k: v for k, v in record.items() if k != "pivot_context_ids"}, view_file.path, n)
            else:
                pivot = pivot_from_row(record, view_file.path, n)
            self.pivots.append(pivot_row(pivot, record, file_index, self))
        sidecar = trace_path(view_file.path)
        traces = dict(self.traces)
        if sidecar.is_file():
            traces.update(read_traces(read_jsonl(sidecar), sidecar))
            entry["trace"] = str(sidecar)
        self._pending.append((file_index, first, len(self.pivots), view_file, traces))

    def finish(self) -> None:
        """Assemble the solutions once every file (and any trace given on the command line) is read."""
        for file_index, first, last, view_file, traces in self._pending:
            traces = {**self.traces, **traces}
            groups: dict[tuple[str, int | None], list[int]] = defaultdict(list)
            for i in range(first, last):
                p = self.pivots[i]
                groups[(p["item"], p["sol"])].append(i)
            for (item, sol), members in groups.items():
                trace = traces.get((item, sol if sol is not None else 0))
                self._add_solutions(file_index, item, sol, members, view_file, trace)
        self._pending = []

    def _add_solutions(
        self, file_index: int, item: str, sol: int | None, members: list[int], view_file: ViewFile, trace: Trace | None
    ) -> None:
        places = [
            PivotPlace(
                index=i,
                position=self.pivots[i]["position"],
                context=view_file.records[self.pivots[i]["line"] - 1]["pivot_context"],
                token=self.pivots[i]["token"],
                length=self.pivots[i]["length"],
            )
            for i in members
        ]
        head = self.pivots[members[0]]
        bound: list[list[float]] = []
        if trace is not None and all(p.position is not None for p in places):
            built = [solution_from_trace(trace, places)]
            if trace.sampling_probs is not None:
                bound = [[i, round(1 - pi, 4)] for i, pi in enumerate(trace.sampling_probs) if pi is not None]
        else:
            built = solutions_from_contexts(places, self.queries[head["q"]])
            for s in built:
                s.curve = curve_from_pivots([self.pivots[i] for i in s.pivots])
        for s in built:
            index = len(self.solutions)
            members_here = [self.pivots[i] for i in s.pivots]
            for p in members_here:
                p["solution"] = index
                if s.curve_source == "trace":
                    take_search_from_curve(p, s.curve)
            if not bound or s.curve_source != "trace":
                bound = [
                    [p["position"], round(1 - p["sampling_prob"], 4)]
                    for p in members_here
                    if p["sampling_prob"] is not None and p["position"] is not None
                ]
            self.solutions.append(
                {
                    "file": file_index,
                    "item": item,
                    "sol": sol,
                    "q": head["q"],
                    "task": head["task"],
                    "segments": s.segments,
                    "curve": s.curve,
                    "curve_source": s.curve_source,
                    "bound": bound,
                    "threshold": number(_parse(self.files[file_index]["settings"].get("prob_threshold"))),
                    "length": s.length,
                    "tokens": trace.solution_tokens if s.curve_source == "trace" and trace is not None else None,
                    "pivots": s.pivots,
                }
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "queries": self.queries,
            "pivots": self.pivots,
            "solutions": self.solutions,
            "pairs": self.pairs,
            "critical": self.critical,
            "contrast": self.contrast,
            "anchors": self.anchors,
            **self.other_lists,
            # The lists of formats the page has no view of its own for (a plugin's): drawn as tables of their fields.
            "other_lists": self.other_titles,
        }


def collect(paths: Sequence[str]) -> ReportData:
    """Read every file of ``paths`` and build the report's rows; PTSError for the first bad one."""
    data = ReportData()
    for path in paths:
        data.add(read_view_file(path))
    data.finish()
    return data


def read_sidecars(view_file: ViewFile, entry: dict[str, Any]) -> None:
    """Fill a file's ``settings``, ``samples_spent`` and ``queries`` from its progress file (``pts run``,
    ``pts critical`` and any command that resumes through :mod:`pts.store`), else from its first record."""
    entry["settings"] = run_settings(view_file.path, view_file.records)
    entry["progress"] = None
    items = progress_items(view_file.path)
    if items is None:
        return
    entry["progress"] = str(progress_path(view_file.path))
    rollouts = [r["rollouts"] for r in items if isinstance(r.get("rollouts"), int)]
    entry["samples_spent"] = sum(rollouts) if rollouts else None
    entry["queries"] = dict(Counter(str(r.get("status", "done")) for r in items))


def pivot_row(pivot: Any, record: dict[str, Any], file_index: int, data: ReportData) -> dict[str, Any]:
    """The page's row for one pivotal token (a :class:`pts.export.records.PivotalTokenRow` and its raw record).

    ``before``/``after`` and their counts are the record's own numbers: a verified record's come from
    verification rollouts only. ``search`` holds the search's estimates of the same two prefixes when they
    differ from those: a verified record's ``candidate``, or the trace's numbers when the solution is drawn
    from a trace; None means "the record's own numbers" for an unverified record (:func:`pts.view.trajectories.search_of`).
    """
    context = pivot.pivot_context
    verified = record.get("verified")
    k_before, n_before = int_or_none(record.get("successes_before")), int_or_none(record.get("samples_before"))
    k_after, n_after = int_or_none(record.get("successes_after")), int_or_none(record.get("samples_after"))
    ci_before, ci_after = interval(record.get("ci_before")), interval(record.get("ci_after"))
    terminal_before = judged_exactly(n_before, ci_before)
    terminal_after = judged_exactly(n_after, ci_after)
    candidate = record.get("candidate") if isinstance(record.get("candidate"), dict) else {}
    if verified is True and candidate:
        search = {
            "before": number(candidate.get("prob_before")),
            "after": number(candidate.get("prob_after")),
            "k_before": None,
            "n_before": int_or_none(candidate.get("samples_before")),
            "k_after": None,
            "n_after": int_or_none(candidate.get("samples_after")),
            "terminal_before": False,
            "terminal_after": False,
        }
    else:
        # Unverified: the record's own numbers are the search's (:func:`pts.view.trajectories.search_of`). Verified without a candidate:
        # the search's numbers were not kept.
        search = None
    sampling_prob = number(record.get("sampling_prob"))
    return {
        "id": pivot.id,
        "file": file_index,
        "line": pivot.line,
        "q": data.query(pivot.query),
        "task": pivot.task_type,
        "item": pivot.dataset_item_id,
        "model": pivot.model_id,
        "sol": int_or_none(record.get("solution_index")),
        "position": int_or_none(record.get("position")),
        "length": span_length(record),
        "token": pivot.pivot_token,
        "token_id": pivot.pivot_token_id,
        "before": pivot.prob_before,
        "after": pivot.prob_after,
        "delta": pivot.prob_delta,
        "positive": pivot.is_positive,
        "k_before": k_before,
        "n_before": n_before,
        "k_after": k_after,
        "n_after": n_after,
        "ci_before": ci_before,
        "ci_after": ci_after,
        "terminal_before": terminal_before,
        "terminal_after": terminal_after,
        "search": search,
        "sampling_prob": sampling_prob if sampling_prob is not None and 0 <= sampling_prob <= 1 else None,
        "alternatives": [[t.token, t.count, t.successes] for t in pivot.first_tokens],
        "verified": verified if isinstance(verified, bool) else None,
        "tail": context[-CONTEXT_TAIL:],
        "solution": None,
        "pattern": record.get("reasoning_pattern"),
        "cluster": record.get("cluster_id"),
    }


def judged_exactly(samples: int | None, interval: list[float] | None) -> bool:
    """True for an end p(success) that was judged once, exactly (the response ended there): one sample and a
    point for its interval, which is how pts writes a terminal prefix."""
    return samples == 1 and interval is not None and interval[0] == interval[1]


def span_length(record: dict[str, Any]) -> int:
    """How many tokens of the solution the record marks: a pivotal span's length, else 1."""
    start, end = int_or_none(record.get("span_start")), int_or_none(record.get("span_end"))
    return end - start if start is not None and end is not None and end > start else 1


def take_search_from_curve(pivot: dict[str, Any], curve: Sequence[dict[str, Any]]) -> None:
    """Make ``pivot["search"]`` the curve's own points at its two ends, so that its label and the drawn curve
    are the same numbers (a trace may hold more rollouts at a prefix than the search had when it flagged it)."""
    at = {c["position"]: c for c in curve}
    pos, end = pivot["position"], (pivot["position"] or 0) + pivot.get("length", 1)
    if pos is None or pos not in at or end not in at:
        return
    before, after = at[pos], at[end]
    pivot["search"] = {
        "before": before["p"],
        "after": after["p"],
        "k_before": before["successes"],
        "n_before": before["samples"],
        "k_after": after["successes"],
        "n_after": after["samples"],
        "terminal_before": before.get("terminal", False),
        "terminal_after": after.get("terminal", False),
    }


def run_settings(path: Path, records: Sequence[dict[str, Any]]) -> dict[str, str]:
    """The run's settings as display text: the progress file's header when there is one, else the first record's
    ``search``."""
    return {
        str(k): v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
        for k, v in _settings(path, records).items()
    }


def _settings(path: Path, records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    progress = progress_path(path)
    if progress.is_file():
        try:
            header = next((r for r in read_jsonl(progress) if r.get("kind") == "header"), None)
        except (PTSError, UnicodeDecodeError):
            header = None
        if header and isinstance(header.get("settings"), dict):
            return header["settings"]
    first = records[0] if records else {}
    settings = dict(first.get("search") or {}) if isinstance(first.get("search"), dict) else {}
    for key in ("model_id", "dataset_id"):
        if first.get(key):
            settings.setdefault(key, first[key])
    return settings


def progress_items(path: Path) -> list[dict[str, Any]] | None:
    """The per-query lines of a run's progress file (status, rollouts, ...); None without a readable one."""
    progress = progress_path(path)
    if not progress.is_file():
        return None
    try:
        return [r for r in read_jsonl(progress) if r.get("kind") == "item"]
    except (PTSError, UnicodeDecodeError):
        return None


def _parse(value: Any) -> Any:
    """A setting shown as text (:func:`run_settings`) read back as JSON, or None."""
    try:
        return json.loads(value) if isinstance(value, str) else value
    except ValueError:
        return None
