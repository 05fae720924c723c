#!/bin/bash
# Issue 24's experiment (docs/anchors.md section 9): pts run and pts anchors on the same responses of SmolLM2-135M
# to a step-by-step prompt, float32 (this CPU has no bf16, so --dtype auto is float32 and every count is exact).
#   bash docs/experiments/anchors_real/run.sh OUT     # about 55 minutes on 2 cores
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:?usage: run.sh OUT}
mkdir -p "$OUT" && cd "$OUT"
export HF_HUB_OFFLINE=1
DS="rg:chain_sum?min_terms=3&max_terms=3&min_digits=1&max_digits=1&size=40&seed=5"
SP="Think step by step, one short sentence per step, then give the final answer."
# 1. pivotal tokens on 16 three-term sums (the 128-token budget leaves room for several sentences)
pts run --dataset "$DS" --system-prompt "$SP" --max-examples 16 --max-new-tokens 128 \
  --output-path run/pivotal_tokens.jsonl --no-progress
# 2. the solutions the search walked, as pts anchors input rows with their exact token ids; keep those of two or
#    more sentences and every one that holds a pivot
python "$HERE/rows.py" run/pivotal_tokens.jsonl.trace.jsonl "$DS" rows.jsonl
python "$HERE/pick_rows.py" rows.jsonl run/pivotal_tokens.jsonl rows_sel.jsonl
# 3. the same responses, sequential rule + verification (defaults) and the paper's fixed 100 draws per sentence
#    (the math oracle: input rows carry the answer, not the reasoning-gym entry)
pts anchors --input-path rows_sel.jsonl --system-prompt "$SP" --oracle math --max-new-tokens 128 \
  --max-examples 100 --output-path seq/anchors.jsonl --no-progress
pts anchors --input-path rows_sel.jsonl --system-prompt "$SP" --oracle math --max-new-tokens 128 \
  --max-examples 100 --no-sequential --no-verify --rollouts 100 --output-path fixed/anchors.jsonl --no-progress
# 4. the tables of docs/anchors.md section 10
python "$HERE/analyse.py" .
