"""Disjoint train/eval questions for the pivot-DPO experiment (docs/pivot_dpo.md).

python split.py OUT_DIR

The one-digit two-term task of reasoning-gym's chain_sum has 200 distinct questions. They are
split in half by a hash of the question text, so no eval question is a training question; a
two-digit set (a harder distribution the training never saw) is written beside them. Rows are
{"id", "question", "answer"}, judged by pts's math oracle in every step of the experiment.
"""

import hashlib
import json
import sys
from pathlib import Path

import reasoning_gym


def distinct(num_digits: int, size: int, seed: int) -> dict[str, str]:
    data = reasoning_gym.create_dataset(
        "chain_sum", min_terms=2, max_terms=2, min_digits=num_digits, max_digits=num_digits, size=size, seed=seed
    )
    questions: dict[str, str] = {}
    for entry in data:
        questions.setdefault(entry["question"], entry["answer"])
    return questions


def write(path: Path, rows: list[tuple[str, str]], prefix: str) -> None:
    with path.open("w", encoding="utf-8") as f:
        for i, (question, answer) in enumerate(rows):
            f.write(json.dumps({"id": f"{prefix}-{i}", "question": question, "answer": answer}) + "\n")


def main(out_dir: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    one_digit = distinct(1, 3000, seed=1)
    ordered = sorted(one_digit.items(), key=lambda qa: hashlib.sha256(qa[0].encode()).hexdigest())
    half = len(ordered) // 2
    train, held_out = ordered[:half], ordered[half:]
    two_digit = list(distinct(2, 100, seed=7).items())
    write(out / "train.jsonl", train, "train")
    write(out / "eval.jsonl", held_out, "eval")
    write(out / "ood.jsonl", two_digit, "ood")
    train_q = {q for q, _ in train}
    print(
        f"one-digit distinct questions: {len(one_digit)}; train {len(train)}, eval {len(held_out)}, "
        f"two-digit {len(two_digit)}"
    )
    print(
        f"overlap by question text: train/eval {len(train_q & {q for q, _ in held_out})}, "
        f"train/two-digit {len(train_q & {q for q, _ in two_digit})}"
    )


if __name__ == "__main__":
    main(sys.argv[1])
