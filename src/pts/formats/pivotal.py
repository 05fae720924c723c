"""Pivotal tokens: the records ``pts run`` writes, and the original PTS tool's.

A pts record (:class:`pts.records.PivotalToken`) carries the exact token ids of
the context, where the prompt ends, the rollout counts behind each estimate and
the first tokens rollouts took; the original tool's records carry the text
fields only (:data:`pts.records.ORIGINAL_FIELDS`). Both are recognised by
``pivot_context`` and ``pivot_token``; ``pivot_context_ids`` tells them apart.
A steering line has these fields too, and a ``steering_vector``: it is its own
kind (:mod:`pts.formats.steering`).
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from dataclasses import fields
from typing import Any

from pts import options
from pts.formats.base import PHI4_LINK, PTS_LINK, FileSummary, Format, by_model, load_snippet, record_fields
from pts.search.recorded import settings_of_record
from pts.search.searcher import SearchSettings

# What each field of a pivotal-token record means (pts's and the original tool's).
FIELDS = {
    "model_id": "Model whose rollouts were sampled (pts writes its alias or Hub id).",
    "query": "The task's question, before the chat template.",
    "pivot_context": "Exact decoded text the model had seen before the pivot token: the prompt (chat template "
    "applied) followed by the response so far.",
    "pivot_token": "The pivotal token, decoded.",
    "pivot_token_id": "Id of the pivotal token in the model's tokenizer.",
    "prob_before": "Estimated p(success) of completions sampled from `pivot_context`.",
    "prob_after": "Estimated p(success) of completions sampled from `pivot_context` + `pivot_token`.",
    "prob_delta": "`prob_after - prob_before`: the token's effect on the chance of a correct answer.",
    "is_positive": "True when the token raises p(success) (`prob_delta > 0`).",
    "task_type": "Kind of task (e.g. the oracle or reasoning-gym task that judged the answers).",
    "dataset_id": "Dataset the question came from.",
    "dataset_item_id": "Id of the question within that dataset.",
    "pivot_context_ids": "Token ids of `pivot_context`, exactly as fed to the model (no re-tokenization needed).",
    "prompt_length": "How many of `pivot_context_ids` are the prompt; the rest is the model's response.",
    "samples_before": "Rollouts behind `prob_before`.",
    "successes_before": "Correct rollouts among them.",
    "samples_after": "Rollouts behind `prob_after`.",
    "successes_after": "Correct rollouts among them.",
    "first_tokens": "First tokens the rollouts from `pivot_context` actually took, each with how often "
    "(`count`) and how many of those rollouts succeeded (`successes`): measured alternatives "
    "to the pivot.",
    "first_tokens.token_id": "Token id.",
    "first_tokens.token": "Decoded token.",
    "first_tokens.count": "Rollouts from `pivot_context` that began with this token.",
    "first_tokens.successes": "How many of them were judged correct.",
    "ci_before": "Wilson score interval `[low, high]` of `prob_before` at the search's confidence level.",
    "ci_after": "Wilson score interval `[low, high]` of `prob_after`.",
    "pooled_before": "How many of `samples_before` were drawn from a shorter context and passed through "
    "`pivot_context` (the rest were drawn there).",
    "pooled_after": "The same for `samples_after`.",
    "verified": "True when the pivot was measured again, with rollouts drawn after the search flagged it, and "
    "the change held beyond the threshold at `delta_ci_level`; the probabilities and counts are "
    "then the verification's.",
    "delta_ci": "Interval `[low, high]` of `prob_delta` (Newcombe's hybrid score interval).",
    "delta_ci_level": "Confidence level of `delta_ci` (for verified pivots, the Bonferroni-corrected level of "
    "each verification look).",
    "candidate": "For verified pivots, the search's own estimates that flagged the token.",
    "candidate.prob_before": "p(success) before the token, as the search estimated it.",
    "candidate.prob_after": "p(success) after the token, as the search estimated it.",
    "candidate.samples_before": "Rollouts behind `candidate.prob_before`.",
    "candidate.samples_after": "Rollouts behind `candidate.prob_after`.",
    "sampling_prob": "Probability that the rollout sampler (after temperature, top-k, top-p, min-p) picks the "
    "pivot token after `pivot_context`; the change can be at most `1 - sampling_prob` in size. For a verified "
    "pivot measured by strata, `prob_before` is `sampling_prob * prob_after + (1 - sampling_prob) * p_alt` and "
    "`samples_before`/`successes_before` count the rollouts from `pivot_context` whose first token was another "
    "(p_alt is their share of successes, `ci_before` its interval). Null when the engine did not report it.",
    "span_start": "For a pivotal span (a run of tokens that moved p(success) by the threshold while no single token "
    "in it did): index of its first token within the response; null for a single pivotal token.",
    "span_end": "For a pivotal span: index just past its last token (end exclusive); null for a single token.",
    "span_token_ids": "For a pivotal span: its exact token ids (`pivot_token_id` is the first, `pivot_token` the whole "
    "span decoded, `prob_after` p(success) after all of it); null for a single token.",
    "continuations": "For a pivotal span: the runs of tokens of its length that rollouts from `pivot_context` took, "
    "with how often and how many succeeded (measured alternatives to the span); null for a single token.",
    "span_tokens": "For a verified pivotal span: each token inside it as verification measured it alone, on the "
    "same fresh rollouts (a span is written only when none of them was kept as a pivot): `position`, `token_id`, "
    "`prob_before`, `prob_after`, `prob_delta`, `delta_ci` (at `delta_ci_level`) and `reason`, why it was not kept: "
    "`small` (its interval lies inside the threshold), `futile` or `cap` (not shown either way), `bound` (its "
    "sampling probability rules a change of the threshold out; not measured). Null for a single token and for an "
    "unverified span.",
    "continuations.token_ids": "Token ids of the run.",
    "continuations.text": "The run, decoded.",
    "continuations.count": "Rollouts from `pivot_context` that began with this run.",
    "continuations.successes": "How many of them were judged correct.",
    "answer": "Reference answer the oracle judged against.",
    "position": "Index of the pivot token within the response (0 = first response token).",
    "solution_index": "Which of the sampled solutions to the question was searched.",
    "search": "Search settings that produced the record.",
    **record_fields("pivotal_token", "Stable id of the record (hash of model, dataset item, context ids and token)."),
}


def _search_fields() -> dict[str, str]:
    """``search.<name>`` -> what it means, for every search setting a record carries: the option's own help."""
    out = {
        f"search.{f.name}": f"{f.metadata['help'][0].upper()}{f.metadata['help'][1:]} (`pts run {options.flag(f.name)}`)."
        for f in fields(SearchSettings)
    }
    out["search.confidence"] = (
        "Confidence level of the reported intervals (and, when `search.adaptive`, the level adaptive sampling "
        "estimated to: the --confidence option)."
    )
    out["search.adaptive"] = "Whether estimates were sampled in rounds until their interval settled (--confidence)."
    return out


FIELDS.update(_search_fields())


def reconstructed_command(s: FileSummary) -> str | None:
    """The ``pts run`` command the records say made them (model, dataset and every recorded search setting),
    or None when they record no search settings."""
    if s.fmt != PivotalTokens.name or not s.search:
        return None
    parts = ["pts", "run"]
    if s.model_id:
        parts += ["--model", s.model_id]
    if len(s.datasets) == 1:
        parts += ["--dataset", next(iter(s.datasets))]
    parts += options.as_args(SearchSettings, settings_of_record(s.search))
    return shlex.join(parts)


class PivotalTokens(Format):
    name = "pivotal"
    aliases = ("pivotal-tokens", "pivotal_tokens", "pivotal-token", "pts")
    what = "pivotal tokens"
    shapes = {
        "pivotal_tokens": "pivotal tokens (pts run)",
        "original_pivotal_tokens": "pivotal tokens (original PTS tool)",
    }
    keys = ("pivot_context", "pivot_token")
    fields = FIELDS
    title = "Pivotal tokens"
    tags = ("reasoning", "interpretability")
    noun = "pivotal tokens"

    def matches(self, row: Mapping[str, Any] | Iterable[str]) -> bool:
        return super().matches(row) and "steering_vector" not in row

    def shape(self, row: Mapping[str, Any]) -> str:
        return "pivotal_tokens" if "pivot_context_ids" in row else "original_pivotal_tokens"

    def summarise(self, s: FileSummary, rows: list[dict[str, Any]], meta: list[dict[str, Any]]) -> None:
        s.original_tool = "pivot_context_ids" not in s.fields

    def description(self, s: FileSummary, model: str | None) -> str:
        by = by_model(model)
        text = (
            f"Pivotal tokens found by {PTS_LINK} in the reasoning{by}. A pivotal token is a single token of a "
            f"model's own response whose choice changes the probability that the response ends in a correct "
            f"answer by at least a threshold (the Pivotal Token Search of the {PHI4_LINK}). For each one, "
            f"p(success) was estimated by sampling completions from the context before and after the token "
            f"and judging their answers with the task's oracle."
        )
        if s.original_tool:
            text += " The records have the shape written by the original PTS tool (no token ids or sample counts)."
        return text

    def run_command(self, s: FileSummary) -> str | None:
        return reconstructed_command(s)

    def usage(self, s: FileSummary, repo_id: str, model: str | None, filename: str) -> list[str]:
        return [
            "### Load",
            "",
            *load_snippet(repo_id),
            'positive = dataset.filter(lambda r: r["is_positive"])',
            'print(len(dataset), "pivotal tokens,", len(positive), "positive")',
            "row = dataset[0]",
            'print(repr(row["pivot_context"][-80:]), "->", repr(row["pivot_token"]), row["prob_delta"])',
            "```",
            "",
            "Turn them into DPO pairs or steering vectors with pts:",
            "",
            "```bash",
            f"hf download {repo_id} {filename} --repo-type dataset --local-dir .",
            f"pts export --input-path {filename} --format dpo --output-path dpo_pairs.jsonl",
            "```",
        ]


FORMAT = PivotalTokens()
