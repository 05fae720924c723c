"""Do two ``pts run`` outputs hold the same records? Compares ids and every number, ignoring timestamps.

Run: python bench/compare_records.py A.jsonl B.jsonl

Also compares the per-query lines of each output's ``.progress`` file (status, p_initial, rollouts, tokens,
pivots) when both have one. Prints one line per difference (the first 10) and exits 1 if there is any.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

IGNORED = {"timestamp"}


def load(path: Path) -> list[dict]:
    """The records of a JSONL file, without the fields that differ between identical runs."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rows.append({k: v for k, v in json.loads(line).items() if k not in IGNORED})
    return rows


def differences(a: list[dict], b: list[dict], what: str) -> list[str]:
    """What differs between two lists of records, as lines."""
    out = []
    if len(a) != len(b):
        out.append(f"{what}: {len(a)} records against {len(b)}")
    for i, (x, y) in enumerate(zip(a, b)):
        for key in sorted(set(x) | set(y)):
            if x.get(key) != y.get(key):
                out.append(
                    f"{what} #{i} ({x.get('id') or x.get('dataset_item_id')}): {key}: {x.get(key)!r} != {y.get(key)!r}"
                )
    return out


def compare(a: Path, b: Path) -> list[str]:
    """Differences between outputs ``a`` and ``b`` (records, then progress lines when both exist)."""
    diff = differences(load(a), load(b), "records")
    pa, pb = Path(f"{a}.progress"), Path(f"{b}.progress")
    if pa.is_file() and pb.is_file():
        diff += differences(load(pa), load(pb), "progress")
    return diff


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    args = ap.parse_args()
    diff = compare(args.a, args.b)
    if diff:
        print("\n".join(diff[:10]) + (f"\n... {len(diff) - 10} more" if len(diff) > 10 else ""))
        sys.exit(1)
    print(f"same records: {len(load(args.a))} in each (ids and numbers; timestamps ignored)")


if __name__ == "__main__":
    main()
