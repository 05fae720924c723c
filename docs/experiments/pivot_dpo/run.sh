#!/usr/bin/env bash
# The pivot-DPO experiment of docs/pivot_dpo.md, every command in order.
# bash docs/experiments/pivot_dpo/run.sh OUT_DIR [TRAIN_QUERIES]   (from the repository root, after `make install`)
set -euo pipefail
OUT=${1:?output directory}
NQ=${2:-40}
HERE=$(dirname "$0")
export HF_HUB_OFFLINE=1
mkdir -p "$OUT"
step() { echo "== $(date -u +%H:%M:%S) $*"; /usr/bin/time -f "   %e s wall, %U+%S s CPU, %M KiB peak" "$@"; }

# 1. Disjoint questions: 100 train / 100 eval one-digit sums, 99 two-digit sums; overlap printed (must be 0)
step python "$HERE/split.py" "$OUT/data"

# 2. Pivotal tokens on the first NQ training questions: new defaults (pooled + verified) and today's (--no-pool --no-verify)
step pts run --dataset "$OUT/data/train.jsonl" --max-examples "$NQ" --output-path "$OUT/verified.jsonl" --no-progress
step pts run --dataset "$OUT/data/train.jsonl" --max-examples "$NQ" --output-path "$OUT/unverified.jsonl" \
  --no-pool --no-verify --no-progress

# 3. DPO pairs: counterparts from the searches' own first tokens (no extra sampling); the unverified arm
#    keeps as many pairs as the verified one has, a seeded random sample of all of its pairs (so that it
#    covers as many questions), so the arms differ in which pairs, not how many
step pts export --format dpo --input-path "$OUT/verified.jsonl" --output-path "$OUT/pairs_verified.jsonl"
N=$(wc -l < "$OUT/pairs_verified.jsonl")
step pts export --format dpo --input-path "$OUT/unverified.jsonl" --output-path "$OUT/pairs_unverified_all.jsonl"
step python "$HERE/sample_pairs.py" "$OUT/pairs_unverified_all.jsonl" "$N" "$OUT/pairs_unverified.jsonl"

# 4. Sequence-level control: 8 sampled responses per training question, correct vs incorrect, N pairs
step pts eval --dataset "$OUT/data/train.jsonl" --max-examples "$NQ" --num-samples 8 --seed 11 \
  --output-path "$OUT/train_samples.jsonl" --summary-path "$OUT/train_samples_summary.json" --no-progress
step python "$HERE/seq_pairs.py" "$OUT/train_samples.jsonl" "$N" "$OUT/pairs_sequence.jsonl"

# 5. The same DPO recipe for every arm (the cDPO experiment's: LoRA r16/alpha 32, lr 4e-5, beta 0.1,
#    3 epochs, batch 2 x 4)
for arm in verified unverified sequence; do
  step pts train --loss dpo --input-path "$OUT/pairs_$arm.jsonl" --output-dir "$OUT/dpo_$arm" \
    --epochs 3 --batch-size 2 --grad-accum 4 --no-progress --overwrite
done

# 6. Paired evaluation: same prompts and seeds for the base model and the three arms
step pts eval --model smollm2-135m --compare "$OUT/dpo_verified" "$OUT/dpo_unverified" "$OUT/dpo_sequence" \
  --dataset "$OUT/data/eval.jsonl" --num-samples 4 --max-new-tokens 64 --seed 7 \
  --output-path "$OUT/eval_heldout.jsonl" --summary-path "$OUT/eval_heldout_summary.json" --no-progress
step pts eval --model smollm2-135m --compare "$OUT/dpo_verified" "$OUT/dpo_unverified" "$OUT/dpo_sequence" \
  --dataset "$OUT/data/ood.jsonl" --num-samples 4 --max-new-tokens 64 --seed 7 \
  --output-path "$OUT/eval_twodigit.jsonl" --summary-path "$OUT/eval_twodigit_summary.json" --no-progress
echo "== $(date -u +%H:%M:%S) done"
