"""The search settings a pivotal-token record carries, and the settings a record's ``search`` object gives back.

Both are derived from the fields of :class:`pts.search.searcher.SearchSettings`
(nothing is listed by hand), so a field added there is written into every
record, shown on its dataset card and put back into the card's ``pts run``
command (:func:`pts.formats.pivotal.reconstructed_command`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any


def record_search(settings: Any, reported: float) -> dict[str, Any]:
    """A record's ``search`` object: every field of the search settings ``settings`` (a
    :class:`~pts.search.searcher.SearchSettings`) by name, except that ``confidence`` is ``reported``, the level
    the record's intervals are reported at, and ``adaptive`` says whether the search sampled adaptively
    (``confidence`` set)."""
    out = {f.name: getattr(settings, f.name) for f in fields(settings)}
    out["confidence"] = reported
    out["adaptive"] = bool(settings.confidence)
    return out


def settings_of_record(search: Mapping[str, Any]) -> dict[str, Any]:
    """The :class:`~pts.search.searcher.SearchSettings` field values a record's ``search`` object holds (by name;
    fields it lacks are left out): the inverse of :func:`record_search`."""
    from pts.search.searcher import SearchSettings

    names = {f.name for f in fields(SearchSettings)}
    out = {k: v for k, v in search.items() if k in names}
    if "confidence" in out and not search.get("adaptive"):
        out["confidence"] = None  # the reporting level, not an option the search was given
    return out
