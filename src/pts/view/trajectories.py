"""Searched solutions as text with their pivotal tokens in place, and p(success) along each.

A solution is drawn from one of two sources:

- **a search trace**, when ``pts run`` kept one beside its records: the file
  ``<output>.trace.jsonl``, one JSON object per searched solution::

      {"dataset_item_id": "3", "solution_index": 0, "query": "...",
       "prompt_length": 46,                      # prompt tokens before the solution
       "solution_ids": [504, 2988, ...],         # the solution's token ids
       "solution_tokens": ["The", " answer", ...],  # each id decoded on its own
       "estimates": [{"position": 0, "successes": 3, "samples": 10}, ...],
       "sampling_probs": [0.98, 0.41, ...]}    # optional: pi of each token when it was sampled

  ``position`` i is the number of solution tokens in the prefix that was
  estimated: p(success | prompt + solution[:i]); 0 is the prompt alone and
  ``len(solution_ids)`` the whole solution. An estimate may add
  ``"terminal": true`` when the prefix ends the response and was judged once,
  exactly. The text and every position are then exact, and the estimates
  draw the curve of p(success) along the solution with no new sampling.
  ``sampling_probs`` (when the run kept them) bound what each token can do:
  choosing a token of probability pi moves p(success) by at most 1 - pi.
- **the records alone** (no trace, or the original tool's files): the
  solution is the longest ``pivot_context`` of the solution's records plus its
  pivot token, and each pivot sits at the end of its own ``pivot_context``;
  the curve has only the points the records measured (p before and after
  each pivot). The prompt is cut off at the query and the chat-template
  markup after it (:func:`response_start`), a best guess from text only.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pts.errors import PTSError

# Confidence of the intervals drawn around p(success) on the curve, as pts run reports them.
CURVE_CONFIDENCE = 0.95

# Chat-template markup between a user message and the assistant's reply: <|im_end|>, <end_of_turn>, role names.
_TEMPLATE_MARKUP = re.compile(r"(?:\s+|<\|[^|<>]{1,40}\|>|<[A-Za-z_/][^<>\s]{0,40}>|\b(?:assistant|model)\b:?)*")


def trace_path(records_path: str | os.PathLike) -> Path:
    """Where ``pts run`` keeps the search trace of the records at ``records_path``."""
    return Path(f"{os.fspath(records_path)}.trace.jsonl")


@dataclass
class Trace:
    """One searched solution as the trace holds it (see the module docstring)."""

    dataset_item_id: str
    solution_index: int
    query: str
    prompt_length: int
    solution_tokens: list[str]
    estimates: list[dict[str, Any]]
    sampling_probs: list[float | None] | None = None


def trace_from_record(record: dict[str, Any], where: str) -> Trace:
    """The :class:`Trace` in one trace line; PTSError naming ``where`` when a field is missing or wrong."""
    tokens = record.get("solution_tokens")
    ids = record.get("solution_ids", tokens)
    estimates = record.get("estimates")
    if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
        raise PTSError(f"{where}: solution_tokens must be a list of strings")
    if not isinstance(ids, list) or len(ids) != len(tokens):
        raise PTSError(f"{where}: solution_ids and solution_tokens must have the same length")
    if not isinstance(estimates, list):
        raise PTSError(f"{where}: estimates must be a list")
    for e in estimates:
        ok = isinstance(e, dict) and all(
            isinstance(e.get(k), int) and not isinstance(e.get(k), bool) for k in ("position", "successes", "samples")
        )
        if not ok or not (0 <= e["position"] <= len(tokens) and 0 <= e["successes"] <= e["samples"]):
            raise PTSError(
                f"{where}: each estimate needs integer position (0..{len(tokens)}), "
                f"successes and samples (successes <= samples), got {e!r}"
            )
    probs = record.get("sampling_probs")
    if probs is not None and not (
        isinstance(probs, list)
        and len(probs) == len(tokens)
        and all(p is None or (isinstance(p, (int, float)) and not isinstance(p, bool) and 0 <= p <= 1) for p in probs)
    ):
        raise PTSError(f"{where}: sampling_probs must be one probability (or null) per solution token")
    return Trace(
        dataset_item_id=str(record.get("dataset_item_id", "")),
        solution_index=int(record.get("solution_index") or 0),
        query=str(record.get("query", "")),
        prompt_length=int(record.get("prompt_length") or 0),
        solution_tokens=list(tokens),
        estimates=list(estimates),
        sampling_probs=None if probs is None else [None if p is None else float(p) for p in probs],
    )


def read_traces(records: Sequence[dict[str, Any]], path: Path) -> dict[tuple[str, int], Trace]:
    """The traces of a trace file, by ``(dataset_item_id, solution_index)``."""
    traces = {}
    for n, record in enumerate(records, 1):
        trace = trace_from_record(record, f"{path} record {n}")
        traces[(trace.dataset_item_id, trace.solution_index)] = trace
    return traces


@dataclass
class PivotPlace:
    """Where one pivot sits, as a solution needs it: its index in the report, position, context and token
    (``length`` tokens of the solution for a pivotal span, whose ``token`` is the whole span)."""

    index: int
    position: int | None
    context: str
    token: str
    prompt_length: int | None = None
    length: int = 1


@dataclass
class Solution:
    """One solution as the report draws it.

    ``segments`` are ``(text, pivot)`` runs whose texts join to the solution;
    ``pivot`` is the index of the pivot the run is, or -1 for plain text.
    ``curve`` is p(success) by position (``position, successes, samples, p,
    low, high``); ``curve_source`` says ``"trace"`` or ``"records"``.
    """

    segments: list[tuple[str, int]]
    curve: list[dict[str, Any]] = field(default_factory=list)
    curve_source: str = "records"
    length: int | None = None
    pivots: list[int] = field(default_factory=list)


def response_start(text: str, query: str) -> int:
    """Where the response begins in a context known only as text: after the query and any template markup.

    0 when the query is not in the text (then the whole context is shown).
    """
    at = text.find(query) if query else -1
    if at < 0:
        return 0
    end = at + len(query)
    return _TEMPLATE_MARKUP.match(text, end).end()


def solution_from_trace(trace: Trace, places: Sequence[PivotPlace]) -> Solution:
    """The traced solution, its tokens merged into runs, each pivot at its recorded position (a pivotal span as
    one run of its tokens)."""
    n = len(trace.solution_tokens)
    at = {p.position: p.index for p in places if p.position is not None and 0 <= p.position < n}
    length = {p.position: max(1, p.length) for p in places if p.position in at}
    segments: list[tuple[str, int]] = []
    run: list[str] = []
    i = 0
    while i < n:
        if i in at:
            if run:
                segments.append(("".join(run), -1))
                run = []
            end = min(n, i + length[i])
            segments.append(("".join(trace.solution_tokens[i:end]), at[i]))
            i = end
        else:
            run.append(trace.solution_tokens[i])
            i += 1
    if run:
        segments.append(("".join(run), -1))
    return Solution(
        segments=segments,
        curve=curve_from_estimates(trace.estimates),
        curve_source="trace",
        length=len(trace.solution_tokens),
        pivots=sorted(at.values()),
    )


def solutions_from_contexts(places: Sequence[PivotPlace], query: str) -> list[Solution]:
    """Solutions rebuilt from the records' own contexts, for pivots of one solution (or one item, when unknown).

    The pivots whose ``context + token`` is a prefix of the longest one form one
    solution; any other pivot (a context that decodes differently, or another
    solution of the item) starts another.
    """
    groups: list[list[PivotPlace]] = []
    for place in sorted(places, key=lambda p: len(p.context) + len(p.token), reverse=True):
        for group in groups:
            full = group[0].context + group[0].token
            if full.startswith(place.context + place.token) and all(
                len(g.context) != len(place.context) for g in group
            ):
                group.append(place)
                break
        else:
            groups.append([place])
    solutions = []
    for group in groups:
        group.sort(key=lambda p: len(p.context))
        full = group[-1].context + group[-1].token
        cursor = response_start(full, query)
        cursor = min(cursor, len(group[0].context))
        segments: list[tuple[str, int]] = []
        for place in group:
            if len(place.context) > cursor:
                segments.append((full[cursor : len(place.context)], -1))
            segments.append((place.token, place.index))
            cursor = len(place.context) + len(place.token)
        solutions.append(Solution(segments=segments, pivots=[p.index for p in group]))
    return solutions


def search_of(pivot: dict[str, Any]) -> dict[str, Any] | None:
    """The search's estimates around a pivot row: its ``search`` numbers, or for an unverified record its own
    (the search wrote them); None for a verified record that did not keep the search's numbers."""
    if pivot["search"] is not None or pivot["verified"] is True:
        return pivot["search"]
    return {
        key: pivot[key]
        for key in (
            "before",
            "after",
            "k_before",
            "n_before",
            "k_after",
            "n_after",
            "terminal_before",
            "terminal_after",
        )
    }


def curve_from_estimates(estimates: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Points of p(success) by position from a trace's estimates (several at one position are pooled)."""
    pooled: dict[int, list[int]] = {}
    terminal: set[int] = set()
    for e in estimates:
        k_n = pooled.setdefault(e["position"], [0, 0])
        k_n[0] += e["successes"]
        k_n[1] += e["samples"]
        if e.get("terminal"):
            terminal.add(e["position"])
    return [_point(pos, k, n, pos in terminal) for pos, (k, n) in sorted(pooled.items()) if n]


def curve_from_pivots(pivots: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The search's estimates the records kept: p before and after each pivot, at its position.

    Each pivot row's search numbers are used (:func:`search_of`; a
    verified record's verification numbers are drawn apart from the curve); a pivot
    without them adds no point.
    """
    points: dict[int, dict[str, Any]] = {}
    for p in pivots:
        search = search_of(p)
        if p.get("position") is None or not search:
            continue
        for pos, side in ((p["position"], "before"), (p["position"] + p.get("length", 1), "after")):
            k, n, terminal = search.get(f"k_{side}"), search.get(f"n_{side}"), search.get(f"terminal_{side}", False)
            if n and k is not None:
                points[pos] = _point(pos, k, n, terminal)
            elif pos not in points and search.get(side) is not None:
                prob = search[side]
                points[pos] = {
                    "position": pos,
                    "successes": None,
                    "samples": n,
                    "p": prob,
                    "low": prob,
                    "high": prob,
                    "terminal": terminal,
                }
    return [points[k] for k in sorted(points)]


def _point(position: int, successes: int, samples: int, terminal: bool) -> dict[str, Any]:
    from pts.search.pivotal import wilson_interval

    p = successes / samples
    low, high = (p, p) if terminal else wilson_interval(successes, samples, CURVE_CONFIDENCE)
    return {
        "position": position,
        "successes": successes,
        "samples": samples,
        "p": p,
        "low": round(low, 4),
        "high": round(high, 4),
        "terminal": terminal,
    }
