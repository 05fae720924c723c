"""Questions for Gemma 3 270M (a base model with no chat template): the pivot-DPO experiment's sums, few-shot.

python make_data.py OUT_DIR

Gemma 3 270M as embedded (base, Q4_K_M) answers the bare question "State the final answer to the
following arithmetic problem: 2 + 6 =" with text such as " 10.\n\nThe answer is: 10." and got
p(success) = 0 on most one-digit sums. Three solved examples before each question give it the
answer format ("The answer is N."), which the math oracle reads and stops on. The questions, their
answers and the train/eval split are those of docs/experiments/pivot_dpo (split by a hash of the
question text), so no eval question is a training question.
"""

import json
import sys
from pathlib import Path

SOURCE = Path(__file__).resolve().parent.parent / "pivot_dpo" / "results"
STEM = "State the final answer to the following arithmetic problem: "
SHOTS = [("4 + 3 =", "7"), ("9 - 5 =", "4"), ("2 - 6 =", "-4")]
PREFIX = "".join(f"{STEM}{q}\nThe answer is {a}.\n\n" for q, a in SHOTS)


def main(out_dir: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("train", "eval", "ood"):
        rows = [json.loads(line) for line in (SOURCE / f"{name}.jsonl").read_text().splitlines() if line.strip()]
        with (out / f"{name}.jsonl").open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(dict(row, question=PREFIX + row["question"] + "\n")) + "\n")
        print(f"{name}: {len(rows)} questions")


if __name__ == "__main__":
    main(sys.argv[1])
