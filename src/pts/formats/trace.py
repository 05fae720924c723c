"""A search trace: what ``pts run`` keeps beside its records (``<output>.trace.jsonl``), one line per solution.

Each line is one searched solution, token by token, with every estimate of
p(success) the search made along it; ``pts view`` draws the solution's curve
from it. :mod:`pts.view.trajectories` documents and reads the format.
Recognised by ``solution_tokens`` and ``estimates``.
"""

from __future__ import annotations

from pts.formats.base import Format

# What each field of a trace line means.
FIELDS = {
    "dataset_item_id": "Id of the question within its dataset.",
    "solution_index": "Which of the sampled solutions to the question was searched.",
    "query": "The task's question, before the chat template.",
    "prompt_length": "Prompt tokens before the solution.",
    "solution_ids": "The solution's token ids.",
    "solution_tokens": "Each of `solution_ids` decoded on its own.",
    "estimates": "Every estimate of p(success) the search made along the solution.",
    "estimates.position": "Solution tokens in the estimated prefix: p(success | prompt + solution[:position]).",
    "estimates.successes": "Correct rollouts from that prefix.",
    "estimates.samples": "Rollouts from that prefix.",
    "estimates.terminal": "True when the prefix ends the response and was judged once, exactly.",
}


class SearchTrace(Format):
    name = "trace"
    aliases = ("search-trace", "search_trace")
    what = "search traces"
    shapes = {"trace": "search trace (pts run)"}
    keys = ("solution_tokens", "estimates")
    fields = FIELDS


FORMAT = SearchTrace()
