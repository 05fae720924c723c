"""``pts view``: one self-contained HTML report of pts's files, to read in any browser with no network.

It reads pivotal-token records (``pts run``, and the original PTS tool's),
DPO pairs (``pts export --format dpo``, and the original tool's), steering
vectors, critical-token records (``pts critical``) and contrastive scores
(``pts contrast``), recognised by their fields (:mod:`pts.view.shapes`). A
records file's sidecars are read when present: ``<output>.progress`` for the
run's settings and rollouts spent, ``<output>.trace.jsonl`` for every searched
solution's tokens and the estimates of p(success) along it
(:mod:`pts.view.trajectories` documents that format).

The page (:mod:`pts.view.page`) has an overview, the trajectories with their
pivotal tokens highlighted, the pivotal tokens as a table, DPO pairs, critical
tokens and contrast scores; search and filters live in the URL fragment so a
view can be shared as a link.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pts.errors import PTSError
from pts.store import atomic_write, check_output_path

DEFAULT_OUTPUT = "report.html"


@dataclass
class ReportSummary:
    """What a report holds, and where it was written (None when it was only rendered)."""

    output_path: str | None
    files: int
    pivots: int
    solutions: int
    pairs: int
    critical: int
    contrast: int
    bytes: int

    def format(self) -> str:
        parts = [
            f"{n} {what}"
            for n, what in (
                (self.pivots, "pivotal tokens"),
                (self.solutions, "solutions"),
                (self.pairs, "DPO pairs"),
                (self.critical, "critical tokens"),
                (self.contrast, "contrast-scored trajectories"),
            )
            if n
        ]
        where = f" -> {self.output_path}" if self.output_path else ""
        return f"report: {', '.join(parts) or 'no records'} from {self.files} file(s), {self.bytes:,} bytes{where}"


def render_report(paths: Sequence[str | os.PathLike]) -> tuple[str, ReportSummary]:
    """The report's HTML for the files ``paths``, and its summary; PTSError for a file it cannot show."""
    from pts.view.collect import collect
    from pts.view.page import render_page

    if not paths:
        raise PTSError("no input files")
    data = collect([os.fspath(p) for p in paths])
    title = ", ".join(Path(p).name for p in paths)
    page = render_page(data.to_dict(), title)
    summary = ReportSummary(
        output_path=None,
        files=len(data.files),
        pivots=len(data.pivots),
        solutions=len(data.solutions),
        pairs=len(data.pairs),
        critical=len(data.critical),
        contrast=len(data.contrast),
        bytes=len(page.encode("utf-8")),
    )
    return page, summary


def build_report(paths: Sequence[str | os.PathLike], output: str | os.PathLike = DEFAULT_OUTPUT) -> ReportSummary:
    """Write the report of ``paths`` to ``output`` in one atomic step (never a half-written file)."""
    check_report_path(output, paths)
    page, summary = render_report(paths)
    write_page(page, output)
    summary.output_path = os.fspath(output)
    return summary


def check_report_path(output: str | os.PathLike, paths: Sequence[str | os.PathLike]) -> None:
    """PTSError unless the report can be written at ``output`` without replacing one of its inputs."""
    check_output_path(output)
    target = Path(output).resolve()
    if any(Path(p).resolve() == target for p in paths):
        raise PTSError(f"--output {output} is one of the input files")


def write_page(page: str, output: str | os.PathLike) -> None:
    """Write ``page`` to ``output`` through an atomic replace."""
    with atomic_write(output) as f:
        f.write(page)
