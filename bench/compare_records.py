"""Do two ``pts run`` outputs hold the same records? Compares ids and every number, ignoring timestamps.

Run: python bench/compare_records.py A.jsonl B.jsonl [--any-order]

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


def in_order(rows: list[dict]) -> list[dict]:
    """``rows`` sorted by what identifies them (a record's id, a progress line's kind and item): queries in flight
    together are written as each finishes, so two runs that search them differently may write the same records
    in another order."""
    return sorted(rows, key=lambda r: (str(r.get("kind", "")), str(r.get("dataset_item_id", "")), str(r.get("id", ""))))


def compare(a: Path, b: Path, any_order: bool = False) -> list[str]:
    """Differences between outputs ``a`` and ``b`` (records, then progress lines when both exist); with
    ``any_order``, whatever order each file holds them in."""
    arrange = in_order if any_order else list
    diff = differences(arrange(load(a)), arrange(load(b)), "records")
    pa, pb = Path(f"{a}.progress"), Path(f"{b}.progress")
    if pa.is_file() and pb.is_file():
        diff += differences(arrange(load(pa)), arrange(load(pb)), "progress")
    return diff


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--any-order", action="store_true", help="compare the records sorted by id, not in file order")
    args = ap.parse_args()
    diff = compare(args.a, args.b, args.any_order)
    if diff:
        print("\n".join(diff[:10]) + (f"\n... {len(diff) - 10} more" if len(diff) > 10 else ""))
        sys.exit(1)
    print(f"same records: {len(load(args.a))} in each (ids and numbers; timestamps ignored)")


if __name__ == "__main__":
    main()
