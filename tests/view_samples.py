"""Hand-made files of every kind `pts view` reads, shared by its unit and browser tests.

One planted solution with a search trace: ``"The answer is 7."`` to ``What is 3 + 4?``, whose
pivots are " answer" (search 0.6 -> 0.2, verified 0.65 -> 0.15, negative), " 7" (search 0.2 -> 0.9,
not verified, positive) and "." (search 0.9 -> 1.0, verified 0.75 -> 1.0 judged exactly: the response
ends). A second item holds hostile text (a script tag, an image with onerror) in its query, context and
token.
"""

from __future__ import annotations

import json
from pathlib import Path

from conftest import write_jsonl

from pts.records import FirstToken, PivotalToken

PROMPT = "<|im_start|>user\nWhat is 3 + 4?<|im_end|>\n<|im_start|>assistant\n"
QUERY = "What is 3 + 4?"
TOKENS = ["The", " answer", " is", " 7", "."]
# p(success | prompt + TOKENS[:i]) as (successes, samples): the curve the trace holds.
ESTIMATES = {0: (6, 10), 1: (6, 10), 2: (2, 10), 3: (2, 10), 4: (9, 10), 5: (1, 1)}
HOSTILE_QUERY = "<script>window.__pwned = 1</script> What is 1 + 1?"
HOSTILE_TOKEN = '<img src=x onerror="window.__pwned = 2">'


def pivot_record(
    position: int,
    item: str = "0",
    query: str = QUERY,
    prompt: str = PROMPT,
    tokens: list[str] = TOKENS,
    verified: bool | None = None,
    task: str = "rg:chain_sum",
    verification: tuple[tuple[int, int], tuple[int, int]] | None = None,
    sampling_prob: float | None = None,
) -> dict:
    """A pts pivotal-token record of ``tokens[position]``, with the planted estimates around it.

    With ``verification`` ((successes, samples) before and after), the record is a verified one: its numbers
    are those counts and ``candidate`` keeps the planted search estimates, as `pts run` writes them.
    """
    k0, n0 = ESTIMATES.get(position, (5, 10))
    k1, n1 = ESTIMATES.get(position + 1, (5, 10))
    candidate = {"prob_before": k0 / n0, "prob_after": k1 / n1, "samples_before": n0, "samples_after": n1}
    if verification is not None:
        (k0, n0), (k1, n1) = verification
    before, after = k0 / n0, k1 / n1
    record = PivotalToken(
        model_id="smollm2-135m-instruct-q4_1",
        query=query,
        pivot_context=prompt + "".join(tokens[:position]),
        pivot_token=tokens[position],
        pivot_token_id=100 + position,
        prob_before=before,
        prob_after=after,
        prob_delta=after - before,
        is_positive=after > before,
        task_type=task,
        dataset_id="rg:chain_sum?size=3",
        dataset_item_id=item,
        pivot_context_ids=list(range(10 + position)),
        prompt_length=10,
        samples_before=n0,
        successes_before=k0,
        samples_after=n1,
        successes_after=k1,
        first_tokens=[FirstToken(100 + position, tokens[position], 4, 3), FirstToken(9, " 8", 3, 0)],
        ci_before=[max(0.0, before - 0.3), min(1.0, before + 0.3)],
        ci_after=[after, after] if n1 == 1 else [max(0.0, after - 0.3), min(1.0, after + 0.3)],
        answer="7",
        position=position,
        solution_index=0,
        search={"prob_threshold": 0.2, "num_samples": 10, "max_new_tokens": 64},
    ).to_dict()
    if verified is not None:
        record["verified"] = verified
    if verification is not None:
        record["verified"] = True
        record["candidate"] = candidate
    if sampling_prob is not None:
        record["sampling_prob"] = sampling_prob
    return record


# The verification's counts of the planted pivots, unlike the search's (the winner's curse): " answer" re-measured
# 0.65 -> 0.15 (search 0.6 -> 0.2), and "." 0.75 -> 1.0 whose after ends the response, judged exactly.
VERIFIED_ANSWER = ((26, 40), (6, 40))
VERIFIED_STOP = ((30, 40), (1, 1))
# The sampling probability of each planted token; the bound 1 - pi of " is" (0.95) is below the 0.2 threshold.
SAMPLING_PROBS = [0.9, 0.4, 0.95, 0.3, 0.6]


def planted_records(sampling: bool = True) -> list[dict]:
    """The planted solution's three pivots (two verified), and one hostile record of another item.

    ``sampling``: the records carry ``sampling_prob`` (newer runs do, older ones do not)."""
    pi = (lambda i: SAMPLING_PROBS[i]) if sampling else (lambda i: None)
    hostile = pivot_record(
        1,
        item="1",
        query=HOSTILE_QUERY,
        prompt=f"<|im_start|>user\n{HOSTILE_QUERY}<|im_end|>\n<|im_start|>assistant\n",
        tokens=["It is", HOSTILE_TOKEN, " 2"],
        task="rg:hostile",
    )
    return [
        pivot_record(1, verification=VERIFIED_ANSWER, sampling_prob=pi(1)),
        pivot_record(3, verified=False, sampling_prob=pi(3)),
        pivot_record(4, verification=VERIFIED_STOP, sampling_prob=pi(4)),
        hostile,
    ]


def trace_line(sampling: bool = True) -> dict:
    """The search trace of the planted solution (with each token's sampling probability, when ``sampling``)."""
    extra = {"sampling_probs": SAMPLING_PROBS} if sampling else {}
    return {
        **extra,
        "dataset_item_id": "0",
        "solution_index": 0,
        "query": QUERY,
        "prompt_length": 10,
        "solution_ids": [200 + i for i in range(len(TOKENS))],
        "solution_tokens": TOKENS,
        "estimates": [
            {"position": i, "successes": k, "samples": n, **({"terminal": True} if n == 1 else {})}
            for i, (k, n) in ESTIMATES.items()
        ],
    }


def original_record(record: dict) -> dict:
    """The same pivot as the original PTS tool wrote it: text fields only."""
    keep = (
        "model_id",
        "query",
        "pivot_context",
        "pivot_token",
        "pivot_token_id",
        "prob_before",
        "prob_after",
        "prob_delta",
        "is_positive",
        "task_type",
        "dataset_id",
        "dataset_item_id",
        "timestamp",
    )
    return {k: record[k] for k in keep}


def dpo_pair(pts_made: bool = True, established: bool = True) -> dict:
    """A pair of " 7" over " 8"; pts's carry the rollouts behind each side and whether the gap is established."""
    metadata = {
        "original_query": QUERY,
        "prob_chosen": 0.9,
        "prob_rejected": 0.0 if established else 0.5,
        "prob_delta": 0.7,
        "task_type": "rg:chain_sum",
        "counterpart_verified": established,
    }
    if pts_made:
        metadata.update(
            pivot_id="abc" if established else "abd",
            prompt_token_ids=[1, 2, 3],
            is_positive=True,
            samples={"chosen": 10, "rejected": 10 if established else 2},
            gap_interval=[0.45, 1.0] if established else [-0.12, 0.71],
            gap_confidence=0.9,
            counterpart_source="first_tokens",
        )
    return {"prompt": PROMPT + "The answer is", "chosen": " 7", "rejected": " 8", "metadata": metadata}


def steering_record() -> dict:
    record = pivot_record(3)
    keep = (
        "query",
        "pivot_context",
        "pivot_token",
        "pivot_token_id",
        "prob_before",
        "prob_after",
        "prob_delta",
        "is_positive",
        "model_id",
        "task_type",
        "pivot_context_ids",
        "dataset_id",
        "dataset_item_id",
    )
    return {
        **{k: record[k] for k in keep},
        "steering_vector": [0.1, -0.2],
        "cluster_id": 0,
        "reasoning_pattern": "numerical_accuracy",
        "steering_layer": 19,
    }


def contrast_row() -> dict:
    return {
        "kind": "contrastive_scores",
        "query": QUERY,
        "answer": "7",
        "correct": False,
        "task_type": "rg:chain_sum",
        "dataset_item_id": "0",
        "tokens": ["The", " answer", " is", " 8"],
        "scores": [0.5, 0.6, 0.4, 0.05],
        "logp_pos": [-1.0] * 4,
        "logp_neg": [-1.0] * 4,
        "beta": 1.0,
        "min_score_position": 3,
    }


# The first real critical record's response_ids, each decoded on its own by SmolLM2's tokenizer.
CRITICAL_TOKENS = ["The", " answer", " to", " the", " arithmetic", " problem", " is", " ", "2", ".", "<|im_end|>"]


def critical_lines(tokens: bool = True) -> list[dict]:
    """Real critical-token records (`pts critical` on the embedded model), from docs/experiments; with
    ``tokens``, the first one carries ``response_tokens`` as newer runs write them (the others, as older)."""
    path = Path(__file__).resolve().parent.parent / "docs" / "experiments" / "critical_tokens.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()[:3]]
    if tokens:
        assert len(lines[0]["response_ids"]) == len(CRITICAL_TOKENS)
        lines[0]["response_tokens"] = CRITICAL_TOKENS
    return lines


def critical_progress(lines: list[dict]) -> list[dict]:
    """The progress file `pts critical` keeps beside its records: the settings, then one line per query."""
    items = {}
    for r in lines:
        items.setdefault(r["dataset_item_id"], 0)
        items[r["dataset_item_id"]] += r["rollouts"] + r.get("pass_at_k_rollouts", 0)
    return [{"kind": "header", "settings": {"mode": "search", "rollouts": 64}}] + [
        {"kind": "item", "dataset_item_id": k, "status": "analysed", "rollouts": v} for k, v in items.items()
    ]


def thought_anchor_lines() -> list[dict]:
    """One sentence record of ``pts anchors``."""
    from pts.formats.thought_anchors import ThoughtAnchor

    record = ThoughtAnchor(
        model_id="fake",
        query="What is 3 + 4?",
        sentence="3 + 4 = 7.",
        sentence_id=0,
        prefix_context="",
        sentence_category="active_computation",
        importance_score=0.5,
        prob_delta=0.5,
        prob_with_sentence=0.75,
        prob_without_sentence=0.25,
        is_positive=True,
        reasoning_pattern="computation",
        task_type="fake",
        dataset_id="fake",
        dataset_item_id="0",
    )
    return [record.to_dict()]


def write_planted(directory: Path) -> dict[str, Path]:
    """Every kind of file in ``directory`` (records with their trace sidecar); returns them by kind."""
    records = write_jsonl(directory / "pivots.jsonl", planted_records())
    write_jsonl(directory / "pivots.jsonl.trace.jsonl", [trace_line()])
    write_jsonl(directory / "critical.jsonl.progress", critical_progress(critical_lines()))
    return {
        "pivotal_tokens": records,
        "original_pivotal_tokens": write_jsonl(
            directory / "original.jsonl", [original_record(r) for r in planted_records()]
        ),
        "steering": write_jsonl(directory / "steering.jsonl", [steering_record()]),
        "dpo": write_jsonl(directory / "dpo.jsonl", [dpo_pair(), dpo_pair(established=False)]),
        "original_dpo": write_jsonl(directory / "dpo_original.jsonl", [dpo_pair(pts_made=False)]),
        "critical_tokens": write_jsonl(directory / "critical.jsonl", critical_lines()),
        "contrast_scores": write_jsonl(directory / "scores.jsonl", [contrast_row()]),
        "trace": write_jsonl(directory / "trace.jsonl", [trace_line()]),
        "thought_anchors": write_jsonl(directory / "anchors.jsonl", thought_anchor_lines()),
    }


def span_record() -> dict:
    """A pivotal span of the planted solution: " is" and " 7" (positions 2 and 3) together, 0.2 -> 0.9."""
    record = pivot_record(2, sampling_prob=SAMPLING_PROBS[2] * SAMPLING_PROBS[3])
    k1, n1 = ESTIMATES[4]
    record.update(
        pivot_token=" is 7",
        span_start=2,
        span_end=4,
        span_token_ids=[102, 103],
        continuations=[{"token_ids": [102, 103], "text": " is 7", "count": 6, "successes": 5}],
        prob_after=k1 / n1,
        prob_delta=k1 / n1 - record["prob_before"],
        is_positive=True,
        samples_after=n1,
        successes_after=k1,
    )
    return record


def anchor_trace_lines() -> list[dict]:
    """Two sentences of one traced solution from ``pts anchors``: the first important (counterfactual importance
    +0.5, interval [0.3, 0.7]), the second not (-0.05, interval [-0.2, 0.1])."""
    first, second = thought_anchor_lines()[0], thought_anchor_lines()[0]
    first.update(counterfactual_importance_accuracy=0.5, counterfactual_importance_ci=[0.3, 0.7], ci_level=0.95)
    second.update(
        sentence=" So the answer is 7.",
        sentence_id=1,
        sentence_category="final_answer_emission",
        importance_score=0.05,
        counterfactual_importance_accuracy=-0.05,
        counterfactual_importance_ci=[-0.2, 0.1],
        ci_level=0.95,
        id="second",
    )
    return [second, first]
