"""Thought Anchors' viewer folders: what ``pts export --format thought-anchors-viewer`` writes.

Not a record file: a folder per analysed response, as the viewer of
interp-reasoning/thought-anchors.com reads them from ``src/app/data``
(``<model>/<correct|incorrect>_base_solution/problem_<item>[_<solution>]/``
holding ``problem.json``, ``base_solution.json``, ``chunks_labeled.json``,
``summary.json`` and ``step_importance.json``), made from ``pts anchors``
records by :func:`pts.export.anchors.viewer_files`. Never recognised in a file
and not published by ``pts push``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pts.formats.base import ExportRequest, Format, Written


class ThoughtAnchorsViewer(Format):
    name = "thought-anchors-viewer"
    aliases = ("thought_anchors_viewer", "anchors-viewer")
    what = "Thought Anchors viewer folders"
    jsonl = False
    noun = "files"
    unit = "files"
    default_output = "thought_anchors_viewer"

    def matches(self, row: Mapping[str, Any] | Iterable[str]) -> bool:
        return False  # folders of JSON files, not records

    def read(self, path: str) -> list[Any]:
        """The ``pts anchors`` records of ``path`` (rows)."""
        from pts.export.anchors import read_anchors

        return read_anchors(path)

    def check_output(self, output: str) -> None:
        """``output`` is a folder, or nothing yet (never a file)."""
        from pts.export.anchors import check_folder

        check_folder(output)

    def write(self, request: ExportRequest) -> Written:
        """One folder per analysed response under ``request.output`` (:func:`pts.export.anchors.write_viewer`)."""
        from pts.export.anchors import write_viewer

        return Written(write_viewer(request.pivots, request.output))


FORMAT = ThoughtAnchorsViewer()
