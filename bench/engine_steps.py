"""``pts`` with the HF engine's work counted: merged calls, decode steps, rows per step, prefills, CPU / wall.

Run: python bench/engine_steps.py run [any pts run options]

Wraps ``HFEngine.sample``, ``RunningBatch.add`` (requests handed to a running batch: what the merged engine
calls became with continuous batching), ``_admit`` (prefill and first token) and ``_step`` (one decode forward)
with counters, runs the command, and prints at exit (on stderr): wall and CPU time of the process (all threads),
the calls, the steps with their mean rows and time, and a histogram of steps by rows (buckets of 8).
"""

from __future__ import annotations

import atexit
import sys
import time
from collections import Counter

from pts.engines import hf

stats = Counter()
rows_hist: Counter = Counter()


def _counted(name: str, fn, rows: bool = False):
    def wrapper(self, *args, **kwargs):
        stats[name] += 1
        if rows:
            batch = args[0]  # _step(batch, params)
            stats["rows"] += len(batch.rows)
            rows_hist[min(len(batch.rows) // 8 * 8, 64)] += 1
        t = time.perf_counter()
        try:
            return fn(self, *args, **kwargs)
        finally:
            stats[f"{name}_s"] += time.perf_counter() - t

    return wrapper


def report(t0: float, c0: float) -> None:
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    steps = max(stats["step"], 1)
    print(
        f"[engine_steps] wall {wall:.1f} s, cpu {cpu:.1f} s, cpu/wall {cpu / wall:.2f}; engine calls {stats['sample']} "
        f"taking {stats['sample_s']:.1f} s; submissions to running batches {stats['add']}; decode steps {stats['step']}, rows/step {stats['rows'] / steps:.1f}, "
        f"step time {stats['step_s']:.1f} s ({stats['step_s'] / steps * 1000:.1f} ms/step); "
        f"admits (prefill + first token) {stats['admit']}, {stats['admit_s']:.1f} s",
        file=sys.stderr,
    )
    buckets = ", ".join(f"{k}-{k + 7 if k < 64 else 'up'}: {v}" for k, v in sorted(rows_hist.items()))
    print(f"[engine_steps] steps by rows: {buckets}", file=sys.stderr)


def main() -> None:
    hf.HFEngine.sample = _counted("sample", hf.HFEngine.sample)
    hf.RunningBatch.add = _counted("add", hf.RunningBatch.add)
    hf.HFEngine._admit = _counted("admit", hf.HFEngine._admit)
    hf.HFEngine._step = _counted("step", hf.HFEngine._step, rows=True)
    atexit.register(report, time.perf_counter(), time.process_time())
    from pts.cli import main as pts_main

    sys.exit(pts_main(sys.argv[1:]))


if __name__ == "__main__":
    main()
