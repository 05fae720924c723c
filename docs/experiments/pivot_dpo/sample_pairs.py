"""A seeded random sample of N pairs from a DPO file, kept in file order.

python sample_pairs.py IN.jsonl N OUT.jsonl [SEED]

`pts export --max-pairs N` keeps the first N pairs, which come from the first questions searched; the
unverified arm of docs/pivot_dpo.md samples from all of its pairs instead, so that it covers as many
questions as the verified arm.
"""

import json
import random
import sys


def main(in_path: str, n: str, out_path: str, seed: str = "0") -> None:
    with open(in_path, encoding="utf-8") as f:
        rows = [line for line in f if line.strip()]
    keep = sorted(random.Random(int(seed)).sample(range(len(rows)), min(int(n), len(rows))))
    with open(out_path, "w", encoding="utf-8") as f:
        f.writelines(rows[i] for i in keep)
    questions = {json.loads(rows[i])["metadata"]["dataset_item_id"] for i in keep}
    print(f"{len(keep)} of {len(rows)} pairs, from {len(questions)} questions")


if __name__ == "__main__":
    main(*sys.argv[1:5])
