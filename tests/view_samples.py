"""Hand-made files of every kind `pts view` reads, shared by its unit and browser tests.

One planted solution with a search trace: ``"The answer is 7."`` to ``What is 3 + 4?``, whose
pivots are " answer" (p 0.6 -> 0.2, negative) and " 7" (p 0.2 -> 0.9, positive). A second item
holds hostile text (a script tag, an image with onerror) in its query, context and token.
"""

from __future__ import annotations

import json
from pathlib import Path

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
) -> dict:
    """A pts pivotal-token record of ``tokens[position]``, with the planted estimates around it."""
    k0, n0 = ESTIMATES.get(position, (5, 10))
    k1, n1 = ESTIMATES.get(position + 1, (5, 10))
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
        ci_after=[max(0.0, after - 0.3), min(1.0, after + 0.3)],
        answer="7",
        position=position,
        solution_index=0,
        search={"prob_threshold": 0.2, "num_samples": 10, "max_new_tokens": 64},
    ).to_dict()
    if verified is not None:
        record["verified"] = verified
    return record


def planted_records() -> list[dict]:
    """The planted solution's two pivots, and one hostile record of another item."""
    hostile = pivot_record(
        1,
        item="1",
        query=HOSTILE_QUERY,
        prompt=f"<|im_start|>user\n{HOSTILE_QUERY}<|im_end|>\n<|im_start|>assistant\n",
        tokens=["It is", HOSTILE_TOKEN, " 2"],
        task="rg:hostile",
    )
    return [pivot_record(1, verified=True), pivot_record(3, verified=False), hostile]


def trace_line() -> dict:
    """The search trace of the planted solution."""
    return {
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


def dpo_pair(pts_made: bool = True) -> dict:
    metadata = {
        "original_query": QUERY,
        "prob_chosen": 0.9,
        "prob_rejected": 0.0,
        "prob_delta": 0.7,
        "task_type": "rg:chain_sum",
        "counterpart_verified": True,
    }
    if pts_made:
        metadata.update(
            pivot_id="abc",
            prompt_token_ids=[1, 2, 3],
            is_positive=True,
            samples={"chosen": 10, "rejected": 3},
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


def critical_lines() -> list[dict]:
    """Real critical-token records (`pts critical` on the embedded model), from docs/experiments."""
    path = Path(__file__).resolve().parent.parent / "docs" / "experiments" / "critical_tokens.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()[:3]]


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


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def write_planted(directory: Path) -> dict[str, Path]:
    """Every kind of file in ``directory`` (records with their trace sidecar); returns them by kind."""
    records = write_jsonl(directory / "pivots.jsonl", planted_records())
    write_jsonl(directory / "pivots.jsonl.trace.jsonl", [trace_line()])
    return {
        "pivotal_tokens": records,
        "original_pivotal_tokens": write_jsonl(
            directory / "original.jsonl", [original_record(r) for r in planted_records()]
        ),
        "steering": write_jsonl(directory / "steering.jsonl", [steering_record()]),
        "dpo": write_jsonl(directory / "dpo.jsonl", [dpo_pair()]),
        "original_dpo": write_jsonl(directory / "dpo_original.jsonl", [dpo_pair(pts_made=False)]),
        "critical_tokens": write_jsonl(directory / "critical.jsonl", critical_lines()),
        "contrast_scores": write_jsonl(directory / "scores.jsonl", [contrast_row()]),
        "trace": write_jsonl(directory / "trace.jsonl", [trace_line()]),
        "thought_anchors": write_jsonl(directory / "anchors.jsonl", thought_anchor_lines()),
    }
