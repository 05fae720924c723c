"""Rollouts per query as responses grow, with the same number of planted pivots: the bound against the original.

Planted pivots (3 per script, as in ``bench/fake_precision.py``) in scripts of
24, 100 and 400 tokens; flat steps either at pi 0.9 or drawn as on the
embedded model (``realistic_follow``), and off-script filler as sure of its
next token as the script at that step (``filler_like_script``). For each length and mode: precision,
recall and rollouts per query over the same seeds.

    python bench/length_scaling.py --seeds 100
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from fake_precision import measure

from pts.engines.fake import realistic_follow

MODES = {
    "original (--no-pool --no-verify)": dict(pool=False, verify=False),
    "no bound (dca1e4c defaults)": dict(pool=True, verify=True, bound=False),
    "bound (defaults)": dict(pool=True, verify=True),
}
FLAT = {
    "flat pi 0.9": dict(filler_like_script=True),
    "realistic pi": dict(flat_follow=realistic_follow, filler_like_script=True),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--lengths", default="24,100,400")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    rows = []
    print("| flat steps | length | mode | precision | recall | rollouts per query |")
    print("| --- | --- | --- | --- | --- | --- |")
    for flat, kwargs in FLAT.items():
        for length in map(int, args.lengths.split(",")):
            tallies = measure(range(args.seeds), MODES, length=length, **kwargs)
            for name, t in tallies.items():
                print(
                    f"| {flat} | {length} | {name} | {t.precision:.3f} | {t.recall:.3f} | {t.rollouts / t.queries:.0f} |"
                )
                rows.append(
                    dict(
                        flat=flat,
                        length=length,
                        mode=name,
                        precision=t.precision,
                        recall=t.recall,
                        rollouts_per_query=t.rollouts / t.queries,
                    )
                )
    print(f"{args.seeds} seeds in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
