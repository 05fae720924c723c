"""Turn a pilot run into the cost of a full one: GPU-hours for a target number of pivotal tokens.

    .venv/bin/python bench/estimate_cost.py pilot.jsonl --pivots 250000 --tokens-per-second 3000 --gpus 8 \
        --gpu-hour-price 2.5 [--tokens-per-rollout 400]

Reads the pilot's ``.progress`` sidecar (rollouts, generated tokens and pivots of every finished query), so the
estimate carries the pilot's own skip rate, pivots per query and rollouts per pivot. ``--tokens-per-second``
is the generation rate of one GPU for the target model (measure it, or see docs/scaling.md);
``--tokens-per-rollout`` replaces the pilot's average when the pilot ran a smaller model than the target.
"""

from __future__ import annotations

import argparse
import sys

from pts.store import progress_path, read_jsonl


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pilot", help="output of the pilot `pts run` (its .progress file is read)")
    parser.add_argument("--pivots", type=int, required=True, help="pivotal tokens the full run should find")
    parser.add_argument("--tokens-per-second", type=float, required=True, help="generated tokens/s of one GPU")
    parser.add_argument("--gpus", type=int, default=1)
    parser.add_argument("--gpu-hour-price", type=float, default=None)
    parser.add_argument("--tokens-per-rollout", type=float, default=None)
    args = parser.parse_args()

    items = [r for r in read_jsonl(progress_path(args.pilot)) if r.get("kind") == "item"]
    rollouts = sum(r.get("rollouts", 0) for r in items)
    tokens = sum(r.get("rollout_tokens", 0) for r in items)
    pivots = sum(r.get("pivots", 0) for r in items)
    if not items or not pivots:
        print(f"{args.pilot}: the pilot needs finished queries with at least one pivot", file=sys.stderr)
        return 2
    per_rollout = args.tokens_per_rollout or tokens / rollouts
    queries = args.pivots * len(items) / pivots
    total_rollouts = args.pivots * rollouts / pivots
    gpu_hours = total_rollouts * per_rollout / args.tokens_per_second / 3600
    print(f"pilot: {len(items)} queries, {pivots} pivots, {rollouts} rollouts, {tokens} tokens")
    print(
        f"  {rollouts / len(items):.0f} rollouts per query, {rollouts / pivots:.1f} per pivot, "
        f"{pivots / len(items):.2f} pivots per query, {tokens / rollouts:.0f} tokens per rollout"
    )
    print(
        f"full run: ~{queries:,.0f} queries, {total_rollouts:,.0f} rollouts, "
        f"{total_rollouts * per_rollout:,.3g} generated tokens"
    )
    print(
        f"  {gpu_hours:,.0f} GPU-hours, {gpu_hours / args.gpus:,.1f} h on {args.gpus} GPU(s)"
        + (f", about ${gpu_hours * args.gpu_hour_price:,.0f}" if args.gpu_hour_price else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
