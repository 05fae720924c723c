"""Critical tokens: what ``pts critical`` writes, one record per incorrect trajectory (cDPO's critical tokens).

A record holds the trajectory, the score of every response prefix, the critical
token the paper's rule picks from those scores (``critical_position`` and
``critical_token``, null when none was found) and pass@k with and without it.
Recognised by ``kind: critical_token`` or a ``critical_token`` or
``critical_position`` field. The search itself is :mod:`pts.search.critical`.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pts.errors import PTSError
from pts.formats import pivotal, rows
from pts.formats.base import CDPO_URL, PTS_LINK, FileSummary, Format, by_model

# What each field of a critical-token record means.
FIELDS = {
    "model_id": "Model that wrote the trajectory and whose rollouts were measured.",
    "query": "The task's question, before the chat template.",
    "answer": "Reference answer the oracle judged against.",
    "response": "The incorrect trajectory (the model's response), decoded.",
    "response_ids": "Token ids of `response`.",
    "response_tokens": "Each of `response_ids` decoded on its own (what `pts view` writes under the score strip).",
    "prompt_ids": "Token ids of the exact prompt (chat template applied).",
    "prompt_length": "Number of prompt tokens.",
    "critical_position": "Index in `response_ids` of the critical token (null when none was found).",
    "critical_token": "The critical token, decoded: the token after which rollouts (almost) never reach a "
    "correct answer (cDPO).",
    "critical_token_id": "Its token id.",
    "critical_context": "Decoded prompt and response before the critical token.",
    "rule": "How the token was chosen: `first_zero_then_low` (the paper's rule: the first zero-score token "
    "after which no token scores above `low_threshold`), `last_zero` (its fallback) or `none`.",
    "score": "Score of the critical token: share of accepted rollouts from the prefix that includes it.",
    "scores": "Score of every response prefix (the prefix including token i); null where not sampled.",
    "score_samples": "Rollouts behind each score.",
    "score_successes": "Accepted rollouts behind each score.",
    "low_threshold": "Score below which later tokens count as low for the paper's rule.",
    "mode": "How prefixes were scored (every token, or a search over them).",
    "rollouts": "Rollouts spent on this trajectory.",
    "task_type": "Kind of task.",
    "dataset_id": "Dataset the question came from.",
    "dataset_item_id": "Id of the question within that dataset.",
    "trajectory_index": "Which incorrect trajectory of the question this is.",
    "p_initial": "Estimated p(success) of the question from the bare prompt.",
    "pass_at_k_with": "pass@k for k = 1..n of rollouts that keep the critical token.",
    "pass_at_k_without": "pass@k for k = 1..n when the critical token is replaced by another token drawn from "
    "the model (one rollout each).",
    "samples_with": "Rollouts behind `pass_at_k_with`.",
    "successes_with": "Accepted ones among them.",
    "samples_without": "Rollouts behind `pass_at_k_without`.",
    "successes_without": "Accepted ones among them.",
    "alternatives": "The replacement tokens drawn for `pass_at_k_without`, with draw counts and successes.",
    "alternatives.token_id": "Token id.",
    "alternatives.token": "Decoded token.",
    "alternatives.count": "Times it was drawn.",
    "alternatives.successes": "Accepted rollouts after it.",
    "pass_at_k_rollouts": "Rollouts spent on the pass@k curves.",
    "search": "Settings of the search that produced the record.",
}


class CriticalTokens(Format):
    name = "critical"
    view_list = "critical"
    aliases = ("critical-tokens", "critical_tokens", "critical-token")
    what = "critical tokens"
    shapes = {"critical_tokens": "critical tokens (pts critical)"}
    keys = ("critical_token",)
    record_kind = "critical_token"
    fields = FIELDS
    title = "Critical tokens"
    tags = ("critical-tokens", "cdpo", "reasoning")
    noun = "incorrect trajectories"
    counted = (("found", "Trajectories with a critical token"),)

    def missing(self, row: Mapping[str, Any] | Iterable[str]) -> list[str]:
        return [] if "critical_token" in row or "critical_position" in row else ["critical_token"]

    def summarise(self, s: FileSummary, rows: list[dict[str, Any]], meta: list[dict[str, Any]]) -> None:
        s.extra["found"] = sum(
            r.get("critical_position") is not None or r.get("critical_token") is not None for r in rows
        )
        with_ = [r["pass_at_k_with"][0] for r in rows if r.get("pass_at_k_with")]
        without = [r["pass_at_k_without"][0] for r in rows if r.get("pass_at_k_without")]
        if with_ and without:
            s.extra["pass1"] = (statistics.fmean(with_), statistics.fmean(without), len(with_), len(without))

    def describe(self, s: FileSummary, name: str) -> str | None:
        own = super().describe(s, name)
        if own is not None:
            return own
        if name.startswith("search."):
            return "Search setting."
        return pivotal.FIELDS.get(name)

    def description(self, s: FileSummary, model: str | None) -> str:
        return (
            f"Critical tokens{by_model(model)} found by {PTS_LINK}: tokens of incorrect reasoning trajectories whose choice "
            f"leads to wrong answers, in the sense of [cDPO]({CDPO_URL})."
        )

    def extra_counts(self, s: FileSummary) -> list[tuple[str, str]]:
        rows = super().extra_counts(s)
        if "pass1" in s.extra:
            w, wo, nw, nwo = s.extra["pass1"]
            rows.append(("pass@1 keeping / replacing the critical token (mean)", f"{w:.3f} ({nw}) / {wo:.3f} ({nwo})"))
        return rows

    def view_row(self, record: Mapping[str, Any], where: str, query: Callable[[Any], int]) -> dict[str, Any]:
        """The page's row for one critical-token record: its per-position scores and Pass@k with vs without."""
        scores = record.get("scores")
        if not isinstance(scores, list) or not all(s is None or isinstance(s, (int, float)) for s in scores):
            raise PTSError(f"{where}: scores must be a list of numbers or nulls")
        response = rows.text(record.get("response", ""), where, "response")
        tokens = record.get("response_tokens")
        if not (isinstance(tokens, list) and len(tokens) == len(scores) and all(isinstance(t, str) for t in tokens)):
            tokens = None  # older records keep ids only; the page then names positions, not tokens
        position = rows.int_or_none(record.get("critical_position"))
        token = record.get("critical_token")
        split = critical_split(response, record.get("critical_context", ""), token) if position is not None else None
        return {
            "q": query(record.get("query", "")),
            "task": str(record.get("task_type") or ""),
            "item": str(record.get("dataset_item_id", "")),
            "trajectory": record.get("trajectory_index", 0),
            "answer": str(record.get("answer", "")),
            "response": response,
            "tokens": tokens,
            "split": split,
            "position": position,
            "token": token,
            "rule": record.get("rule"),
            "score": rows.number(record.get("score")),
            "scores": scores,
            "low_threshold": rows.number(record.get("low_threshold")),
            "samples": rows.ints(record.get("score_samples")),
            "successes": rows.ints(record.get("score_successes")),
            "terminal": [bool(t) for t in record.get("score_terminal") or []],
            "mode": record.get("mode"),
            "rollouts": rows.int_or_none(record.get("rollouts")),
            "p_initial": rows.number(record.get("p_initial")),
            "pass_with": [rows.number(x) for x in record.get("pass_at_k_with") or []],
            "pass_without": [rows.number(x) for x in record.get("pass_at_k_without") or []],
            "samples_with": record.get("samples_with"),
            "successes_with": record.get("successes_with"),
            "samples_without": record.get("samples_without"),
            "successes_without": record.get("successes_without"),
            "alternatives": [
                [a.get("token", ""), a.get("count", 0), a.get("successes", 0)]
                for a in record.get("alternatives") or []
                if isinstance(a, dict)
            ],
        }


def critical_split(response: str, context: Any, token: Any) -> list[str] | None:
    """``[before, critical token, after]`` of ``response``, or None when the token cannot be placed in the text.

    The critical context is the prompt text followed by the response before the
    token, so the right place is an occurrence of the token whose preceding
    response text ends the context.
    """
    if not isinstance(token, str) or not token or not isinstance(context, str):
        return None
    at = response.find(token)
    while at >= 0:
        if context.endswith(response[:at]):
            return [response[:at], token, response[at + len(token) :]]
        at = response.find(token, at + 1)
    return None


FORMAT = CriticalTokens()
