"""`pts anchors --input-path` rows from a `pts run` trace: every solution the search walked, with its exact token ids.

python rows.py pivotal_tokens.jsonl.trace.jsonl DATASET rows.jsonl
"""

import json
import sys

from pts.tasks.sources import load_tasks

trace_path, dataset, out_path = sys.argv[1:4]
answers = {t.item_id: t.answer for t in load_tasks(dataset)}
rows = []
with open(trace_path) as f:
    for t in map(json.loads, f):
        if t.get("kind") != "solution_trace":
            continue
        rows.append(
            {
                "id": f"{t['dataset_item_id']}-{t['solution_index']}",
                "query": t["query"],
                "answer": answers[t["dataset_item_id"]],
                "response": "".join(t["solution_tokens"]),
                "response_ids": t["solution_ids"],
                "dataset_item_id": t["dataset_item_id"],
                "solution_index": t["solution_index"],
            }
        )
with open(out_path, "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in rows)
print(f"{len(rows)} searched solutions -> {out_path}")
