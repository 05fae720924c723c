"""One process against 1 and 2 Ray workers on this machine: wall time, rollouts/s, and the same records.

    HF_HUB_OFFLINE=1 nice -n 19 .venv/bin/python bench/ray_scale.py --queries 4 --json bench-out/ray_scale.json

Every mode runs the same `pts run` settings (float32 so that the records can be compared exactly) in a fresh
output. ``one process`` is the ordinary run with `--parallel 1` and 2 torch threads; ``ray N`` starts a local
Ray instance with N workers of one CPU each (Ray sets one thread per worker), each searching one query at a
time. The model cache should be warm (run `pts run --max-examples 1` once) so that loads are comparable.
Also prints what a pilot run measured per query and per pivot, the inputs of docs/scaling.md's estimate.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

DATASET = "rg:chain_sum?min_terms=2&max_terms=2&min_digits=1&max_digits=1&size=20"


def records(path: Path) -> list[str]:
    from pts.store import read_jsonl

    return sorted(
        json.dumps({k: v for k, v in r.items() if k != "timestamp"}, sort_keys=True) for r in read_jsonl(path)
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=4)
    parser.add_argument("--output-dir", default="bench-out/ray_scale")
    parser.add_argument("--json", default=None)
    parser.add_argument(
        "--workers",
        default="0,1,2",
        help="modes to run, comma-separated: 0 is one process (always run first, the reference), N is N Ray workers",
    )
    args = parser.parse_args()

    from pts.jobs.run import RunConfig, run

    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = dict(
        dataset=DATASET,
        max_examples=args.queries,
        dtype="float32",
        device="cpu",
        progress=False,
        parallel=1,
        overwrite=True,
    )
    rows, reference = [], None
    counts = sorted({int(n) for n in args.workers.split(",")} | {0})
    modes = [("one process", None)] + [(f"ray {n} worker{'s' if n > 1 else ''}", n) for n in counts if n]
    for name, ray_workers in modes:
        out = out_dir / f"{name.replace(' ', '_')}.jsonl"
        extra = {} if ray_workers is None else {"ray": "local", "ray_workers": ray_workers, "ray_num_cpus": 1.0}
        start = time.perf_counter()
        summary = run(RunConfig(output_path=str(out), **settings, **extra))
        wall = time.perf_counter() - start
        same = reference is None or records(out) == reference
        reference = reference or records(out)
        row = {
            "mode": name,
            "wall_s": round(wall, 1),
            "search_s": round(summary.seconds, 1),
            "rollouts": summary.rollouts,
            "rollout_tokens": summary.rollout_tokens,
            "pivots": summary.pivots,
            "searched": summary.searched,
            "skipped": summary.skipped,
            "rollouts_per_s": round(summary.rollouts / summary.seconds, 2),
            "same_records_as_one_process": same,
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    pilot = rows[0]
    print(
        f"pilot: {pilot['rollouts'] / args.queries:.0f} rollouts per query, "
        f"{pilot['rollouts'] / max(pilot['pivots'], 1):.0f} per pivot, "
        f"{pilot['rollout_tokens'] / max(pilot['rollouts'], 1):.0f} tokens per rollout"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"queries": args.queries, "cpus": os.cpu_count(), "rows": rows}, indent=1)
        )
    return 0 if all(r["same_records_as_one_process"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
