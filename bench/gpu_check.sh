#!/usr/bin/env bash
# The GPU check, in one call on a lent GPU machine (see docs/engines.md, "GPU check").
#
# Here, first:  python bench/gpu_check.py prepare      (writes build/gpu-check: config, tokenizer, dataset; 3.4 MiB)
# There:        bash bench/gpu_check.sh                 (device tool: run with carry ["build/gpu-check"])
#
# Runs from the repository root with pts's sources on PYTHONPATH (nothing is installed there); writes its
# outputs and check.log under $OUT (default bench-out/gpu-check). Not needed for CI.
set -euo pipefail
OUT=${OUT:-bench-out/gpu-check}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PYTHON=${PYTHON:-python3}
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$PYTHON" bench/gpu_check.py check --out "$OUT" "$@" 2>&1 | tee "$OUT/check.log"
