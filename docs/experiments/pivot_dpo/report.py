"""The tables of docs/pivot_dpo.md from the experiment's output directory.

python report.py OUT_DIR
"""

import json
import sys
from pathlib import Path

ARMS = {
    "smollm2-135m": "base",
    "smollm2-135m-instruct-q4_1": "base",
    "dpo_verified": "DPO, verified pivot pairs",
    "dpo_unverified": "DPO, unverified pivot pairs (--no-pool --no-verify)",
    "dpo_sequence": "DPO, whole responses (control)",
}


def arm(model_id: str) -> str:
    return ARMS.get(Path(model_id).name, model_id)


def main(out: str) -> None:
    root = Path(out)
    for name, title in (("eval_heldout", "held-out one-digit sums"), ("eval_twodigit", "two-digit sums")):
        path = root / f"{name}_summary.json"
        if not path.exists():
            continue
        blob = json.loads(path.read_text())
        print(
            f"\n{title} ({blob['results'][0]['queries']} questions x "
            f"{blob['results'][0]['samples'] // blob['results'][0]['queries']} samples)\n"
        )
        print("| model | accuracy | 95% interval |")
        print("|---|---|---|")
        for r in blob["results"]:
            lo, hi = r["accuracy_ci"]
            print(f"| {arm(r['model_id'])} | {r['accuracy']:.3f} | [{lo:.3f}, {hi:.3f}] |")
        print(
            "\n| comparison | difference | 95% interval (over questions) | questions better / worse / tied | "
            "sign test p |"
        )
        print("|---|---|---|---|---|")
        for c in blob["comparisons"]:
            lo, hi = c["diff_ci"]
            print(
                f"| {arm(c['model_b'])} vs {arm(c['model_a'])} | {c['diff']:+.3f} | [{lo:+.3f}, {hi:+.3f}] | "
                f"{c['better']} / {c['worse']} / {c['tied']} | {c['sign_p']:.3g} |"
            )
    for arm_name in ("verified", "unverified", "sequence"):
        info = root / f"dpo_{arm_name}" / "pts_train.json"
        if info.exists():
            t = json.loads(info.read_text())
            print(
                f"\ntrain {arm_name}: "
                + json.dumps({k: t.get(k) for k in ("rows", "steps", "train_loss", "seconds") if k in t})
            )


if __name__ == "__main__":
    main(sys.argv[1])
