"""Accuracy per model of a `pts eval --output-path` file, split by whether the question was in training.

python seen_unseen.py EVAL.jsonl TRAJECTORIES.jsonl   (TRAJECTORIES: the trajectories.jsonl of pts contrast)
"""

import json
import sys
from collections import defaultdict


def rows(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def main(eval_path: str, train_path: str) -> None:
    seen = {r["query"] for r in rows(train_path)}
    counts: dict[tuple[str, bool], list[int]] = defaultdict(lambda: [0, 0])
    queries: dict[bool, set] = defaultdict(set)
    for r in rows(eval_path):
        key = (r["model_id"], r["query"] in seen)
        counts[key][0] += r["correct"]
        counts[key][1] += 1
        queries[r["query"] in seen].add(r["dataset_item_id"])
    print(f"eval queries whose question was in training: {len(queries[True])}, not: {len(queries[False])}")
    for (model, was_seen), (correct, n) in sorted(counts.items()):
        print(f"{model}  {'seen' if was_seen else 'unseen'}: {correct}/{n} = {correct / n:.3f}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
