"""Throughput of the code oracle: sandboxed executions per second, and the verdict cache on a real run.

Run (about 3-4 minutes on 2 cores; ``--skip-run`` leaves out the model):

    python bench/code_oracle.py

Part 1, executions: HumanEval's 164 canonical solutions and the same 164 with the body
replaced by ``return None`` (328 distinct programs, so no cache hits) through a fresh
:class:`pts.tasks.code.CodeOracle` per setting, for each isolation (bubblewrap, unshare,
rlimits only) and each pool size in ``--workers``: executions per second and the median
time of one execution.

Part 2, a real run: ``pts run`` (in-process, :func:`pts.jobs.run.run`) on the HumanEval
problems named by ``--ids`` with the embedded model, then the oracle's counters: rollouts
judged, executions, cache hit rate, and the time spent executing (summed over the
search threads) against the run's wall time.
Prints a table; ``--json`` writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pts import sandbox
from pts.tasks import load_tasks
from pts.tasks.code import CodeOracle
from pts.tasks.code_data import read_humaneval

# Problems SmolLM2-135M sometimes solves, so that a run searches some of them instead of skipping all.
EASY_IDS = "HumanEval/23,HumanEval/53,HumanEval/45,HumanEval/30"


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--workers", default="1,2,4", help="pool sizes to time (default 1,2,4)")
    ap.add_argument("--isolations", default="bubblewrap,unshare,rlimits")
    ap.add_argument("--skip-run", action="store_true", help="time executions only, no model")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--ids", default=EASY_IDS, help=f"HumanEval task ids for the run (default {EASY_IDS})")
    ap.add_argument("--num-samples", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--max-generations", type=int, default=2)
    ap.add_argument("--json", default=None, help="write the results here")
    return ap.parse_args()


def time_executions(isolation: str, workers: int) -> dict:
    """328 distinct HumanEval programs (164 right, 164 broken) through a fresh oracle with ``workers``."""
    sandbox._isolation = isolation  # measure each isolation, whatever the strongest here is
    tasks = load_tasks("humaneval", max_examples=None)
    rows = {r["task_id"]: r for r in read_humaneval()}
    oracle = CodeOracle(workers=workers)
    jobs = [(t, rows[t.item_id]["canonical_solution"]) for t in tasks] + [(t, "    return None\n") for t in tasks]
    durations = []

    def judge(job):
        task, completion = job
        start = time.perf_counter()
        ok = oracle.judge(completion, task.reference)
        durations.append(time.perf_counter() - start)
        return ok

    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        verdicts = list(pool.map(judge, jobs))
    seconds = time.perf_counter() - start
    assert verdicts == [True] * len(tasks) + [False] * len(tasks), "a canonical solution failed or a broken one passed"
    return {
        "isolation": isolation,
        "workers": workers,
        "executions": oracle.stats()["executions"],
        "seconds": round(seconds, 2),
        "executions_per_s": round(len(jobs) / seconds, 1),
        "median_ms": round(1000 * statistics.median(durations), 1),
    }


def real_run(args: argparse.Namespace) -> dict:
    """A small ``pts run`` on HumanEval with the embedded model; the oracle's counters afterwards."""
    from pts.jobs.run import RunConfig, run

    sandbox._isolation = None
    wanted = args.ids.split(",")
    tasks = [t for t in load_tasks("humaneval", max_examples=None) if t.item_id in wanted]
    out = Path(tempfile.mkdtemp(prefix="pts-bench-code-")) / "pivots.jsonl"
    config = RunConfig(
        model=args.model,
        dataset="humaneval",
        num_samples=args.num_samples,
        max_new_tokens=args.max_new_tokens,
        max_generations=args.max_generations,
        output_path=str(out),
        progress=False,
    )
    summary = run(config, tasks=tasks)
    stats = tasks[0].oracle.stats()
    return {
        "model": args.model,
        "ids": wanted,
        "searched": summary.searched,
        "skipped": summary.skipped,
        "pivots": summary.pivots,
        "rollouts": summary.rollouts,
        "run_seconds": round(summary.seconds, 1),
        "judged": stats["judged"],
        "executions": stats["executions"],
        "cache_hits": stats["cache_hits"],
        "hit_rate": round(stats["hit_rate"], 3),
        "timeouts": stats["timeouts"],
        "execution_seconds": round(stats["execution_seconds"], 1),
        "mean_ms_per_execution": round(1000 * stats["execution_seconds"] / max(stats["executions"], 1), 1),
    }


def main() -> None:
    args = parse_args()
    results = {"executions": [], "run": None}
    print("| isolation | workers | executions/s | median ms per execution |")
    print("| --- | --- | --- | --- |")
    for isolation in args.isolations.split(","):
        for workers in map(int, args.workers.split(",")):
            row = time_executions(isolation, workers)
            results["executions"].append(row)
            print(f"| {isolation} | {workers} | {row['executions_per_s']} | {row['median_ms']} |", flush=True)
    if not args.skip_run:
        results["run"] = r = real_run(args)
        print(
            f"\nrun: {r['searched']} searched, {r['skipped']} skipped, {r['pivots']} pivots, {r['rollouts']} "
            f"rollouts in {r['run_seconds']} s; judged {r['judged']}, executed {r['executions']} "
            f"(hit rate {r['hit_rate']:.1%}), {r['execution_seconds']} s executing in all "
            f"({r['mean_ms_per_execution']} ms each)"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
