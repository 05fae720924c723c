"""Keep the rows worth measuring sentence by sentence: responses of two or more sentences (Thought Anchors' split
rule on their own tokens, as `pts anchors` splits them) and every response that holds a pivotal token.

    python pick_rows.py rows.jsonl pivotal_tokens.jsonl rows_sel.jsonl
"""

import json
import sys

from pts.models import load_model
from pts.search.anchors.sentences import split_sentences, token_pieces

rows_path, pivots_path, out_path = sys.argv[1:4]
tok = load_model("smollm2-135m", device="cpu", dtype="float32").tokenizer
with open(pivots_path) as f:
    with_pivot = {(r["dataset_item_id"], r["solution_index"]) for r in map(json.loads, f)}
keep = []
with open(rows_path) as f:
    for row in map(json.loads, f):
        sentences = split_sentences(token_pieces(row["response_ids"], tok.decode))
        row["sentences"] = len(sentences)
        if len(sentences) >= 2 or (row["dataset_item_id"], row["solution_index"]) in with_pivot:
            keep.append(row)
with open(out_path, "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in keep)
print(f"{len(keep)} rows, {sum(r['sentences'] for r in keep)} sentences -> {out_path}")
