"""Sequence-level DPO pairs (the control arm of docs/pivot_dpo.md) from `pts eval --output-path` samples.

python seq_pairs.py SAMPLES.jsonl NUM_PAIRS OUT.jsonl

For each question with at least one correct and one incorrect sampled response, pair them as token
ids exactly as sampled: round i takes, for every such question in turn, its i-th (correct, incorrect)
combination (correct responses cycling fastest), until NUM_PAIRS pairs: the same number of pairs,
hence the same training steps, as the pivot arm. No pair repeats.
"""

import json
import sys
from collections import defaultdict


def main(samples_path: str, num_pairs: str, out_path: str) -> None:
    by_query: dict[str, dict[bool, list[dict]]] = defaultdict(lambda: {True: [], False: []})
    with open(samples_path, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            by_query[row["dataset_item_id"]][bool(row["correct"])].append(row)
    mixed = [q for q in by_query.values() if q[True] and q[False]]
    combos = [[(c, w) for w in q[False] for c in q[True]] for q in mixed]
    pairs = []
    for i in range(max((len(c) for c in combos), default=0)):
        for q in combos:
            if i < len(q) and len(pairs) < int(num_pairs):
                good, bad = q[i]
                pairs.append(
                    {
                        "prompt_ids": good["prompt_ids"],
                        "chosen_ids": good["response_ids"],
                        "rejected_ids": bad["response_ids"],
                        "prompt": good["query"],
                        "chosen": good["response"],
                        "rejected": bad["response"],
                    }
                )
    with open(out_path, "w", encoding="utf-8") as f:
        for p in pairs:
            f.write(json.dumps(p) + "\n")
    print(f"{len(mixed)} questions with both kinds; {len(pairs)} pairs written (asked for {num_pairs})")


if __name__ == "__main__":
    main(*sys.argv[1:4])
