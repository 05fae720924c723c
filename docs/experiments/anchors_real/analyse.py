"""The tables of docs/anchors.md section 9, from the outputs of run.sh in folder OUT.

    python analyse.py OUT      # writes OUT/analysis.json and prints the tables

Two questions, on the same responses (`rows_sel.jsonl`):
1. Do the pivotal tokens `pts run` verified fall inside the sentences that matter most? For each pivot, the
   sentence that holds it, that sentence's rank by |counterfactual importance| (the fixed 100-draw protocol)
   among its response's sentences, and whether it is an anchor there (|importance| >= 0.2).
2. What does the sequential rule with verification cost against the fixed protocol, and how far do they agree
   (rank correlation of importance, recall of the fixed protocol's top 10% of sentences, anchors in common)?
"""

import json
import sys
from pathlib import Path

from scipy.stats import spearmanr

THRESHOLD = 0.2
out = Path(sys.argv[1] if len(sys.argv) > 1 else ".")


def read(path):
    with open(out / path) as f:
        return [json.loads(line) for line in f if line.strip()]


def key(r):
    return r["query"], tuple(r["response_ids"])


def importance(r):
    return r["counterfactual_importance_accuracy"]


def cost(path):
    """Rollouts and tokens per query from a progress file (None where it does not carry them)."""
    items = [r for r in read(path) if r.get("kind") == "item"]
    if not items or "rollouts" not in items[0]:
        return None
    return {k: sum(r[k] for r in items) for k in ("rollouts", "rollout_tokens", "verify_rollouts")}


pivots = [r for r in read("run/pivotal_tokens.jsonl") if r.get("kind") == "pivotal_token"]
rows = {key(r): r for r in read("rows_sel.jsonl")}
methods = {"fixed": read("fixed/anchors.jsonl"), "seq": read("seq/anchors.jsonl")}
by = {m: {} for m in methods}
for m, records in methods.items():
    for r in records:
        by[m].setdefault(key(r), []).append(r)
for m in by:
    for sentences in by[m].values():
        sentences.sort(key=lambda r: r["sentence_id"])
common = [k for k in rows if k in by["fixed"] and k in by["seq"]]

sentence_rows, pivot_rows = [], []
for k in common:
    fixed, seq, row = by["fixed"][k], by["seq"][k], rows[k]
    order = sorted(range(len(fixed)), key=lambda i: -abs(importance(fixed[i]) or 0.0))
    for f, s in zip(fixed, seq):
        sentence_rows.append(
            {
                "id": row["id"],
                "sentence_id": f["sentence_id"],
                "sentences": len(fixed),
                "sentence": f["sentence"],
                "fixed": importance(f),
                "fixed_ci": f["counterfactual_importance_ci"],
                "seq": importance(s),
                "seq_delta": s["prob_delta"],
                "seq_anchor": s["is_anchor"],
                "seq_draws": s["rollouts"],
                "settled": s["settled"],
            }
        )
    for p in pivots:
        if (p["dataset_item_id"], p["solution_index"]) != (row["dataset_item_id"], row["solution_index"]):
            continue
        i = next(j for j, f in enumerate(fixed) if f["sentence_start"] <= p["position"] < f["sentence_end"])
        pivot_rows.append(
            {
                "id": row["id"],
                "position": p["position"],
                "token": p["pivot_token"],
                "prob_delta": p["prob_delta"],
                "sentence_id": i,
                "sentences": len(fixed),
                "rank": order.index(i) + 1,
                "sentence_importance": importance(fixed[i]),
                "sentence": fixed[i]["sentence"],
            }
        )

measured = [r for r in sentence_rows if r["fixed"] is not None and r["seq"] is not None]
top = max(1, round(0.1 * len(measured)))
top_fixed = {(r["id"], r["sentence_id"]) for r in sorted(measured, key=lambda r: -abs(r["fixed"]))[:top]}
top_seq = {(r["id"], r["sentence_id"]) for r in sorted(measured, key=lambda r: -abs(r["seq"]))[:top]}
fixed_anchors = {(r["id"], r["sentence_id"], r["fixed"] > 0) for r in measured if abs(r["fixed"]) >= THRESHOLD}
seq_anchors = {(r["id"], r["sentence_id"], r["seq_delta"] > 0) for r in sentence_rows if r["seq_anchor"]}
multi = [p for p in pivot_rows if p["sentences"] > 1]
summary = {
    "responses": len(common),
    "sentences": len(sentence_rows),
    "multi_sentence_responses": sum(len(by["fixed"][k]) > 1 for k in common),
    "cost_fixed": cost("fixed/anchors.jsonl.progress"),
    "cost_seq_verified": cost("seq/anchors.jsonl.progress"),
    "spearman_seq_vs_fixed": spearmanr([r["fixed"] for r in measured], [r["seq"] for r in measured]).statistic,
    "sentences_compared": len(measured),
    "top_10pct": top,
    "recall_of_fixed_top_10pct": len(top_fixed & top_seq) / top,
    "anchors_fixed": len(fixed_anchors),
    "anchors_seq_verified": len(seq_anchors),
    "anchors_in_both_same_sign": len(fixed_anchors & seq_anchors),
    "pivots": len(pivot_rows),
    "pivots_in_multi_sentence_responses": len(multi),
    "of_those_in_the_top_sentence": sum(p["rank"] == 1 for p in multi),
    "of_those_in_an_anchor_sentence": sum(abs(p["sentence_importance"] or 0.0) >= THRESHOLD for p in multi),
    "top_sentence_by_chance": sum(1 / p["sentences"] for p in multi),
    "anchor_sentences_of_multi_sentence_responses": sum(
        1 for r in measured if r["sentences"] > 1 and abs(r["fixed"]) >= THRESHOLD
    ),
    "of_those_holding_a_pivot": len(
        {(p["id"], p["sentence_id"]) for p in multi}
        & {(r["id"], r["sentence_id"]) for r in measured if r["sentences"] > 1 and abs(r["fixed"]) >= THRESHOLD}
    ),
}
(out / "analysis.json").write_text(
    json.dumps({"summary": summary, "pivots": pivot_rows, "sentences": sentence_rows}, indent=1)
)
print(json.dumps(summary, indent=1))
print("\npivots in responses of several sentences:")
for p in multi:
    print(
        f"  {p['id']} token {p['token']!r} at {p['position']} ({p['prob_delta']:+.2f}): sentence {p['sentence_id']} "
        f"of {p['sentences']}, rank {p['rank']}, importance {p['sentence_importance']:+.2f}: {p['sentence'][:70]!r}"
    )
print("\nsentences of several-sentence responses (fixed importance [interval], sequential, anchor after verification):")
for r in sentence_rows:
    if r["sentences"] > 1:
        f = "n/a" if r["fixed"] is None else f"{r['fixed']:+.2f} [{r['fixed_ci'][0]:+.2f}, {r['fixed_ci'][1]:+.2f}]"
        s = "n/a" if r["seq"] is None else f"{r['seq']:+.2f}"
        print(
            f"  {r['id']} #{r['sentence_id']}: {f}  seq {s} ({r['seq_draws']} draws) {'ANCHOR' if r['seq_anchor'] else ''}  {r['sentence'][:60]!r}"
        )
