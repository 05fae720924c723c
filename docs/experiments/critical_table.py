"""Markdown table of `pts critical` records: python critical_table.py critical_tokens.jsonl"""

import json
import sys


def cell(text: str, width: int = 60) -> str:
    text = text.replace("\n", " ").replace("|", "\\|")
    return text if len(text) <= width else text[: width - 3] + "..."


def main(path: str) -> None:
    print(
        "| # | query (gold) | response | critical token (position / length) | scoring rollouts "
        "| Pass@1 keep / replace | Pass@64 keep / replace |"
    )
    print("|---|---|---|---|---|---|---|")
    with open(path, encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    for i, r in enumerate(records, 1):
        query = r["query"].split("problem:")[-1].strip().rstrip("=").strip()
        token = cell(json.dumps(r["critical_token"])[1:-1])
        keep, replace = r["pass_at_k_with"], r["pass_at_k_without"]
        print(
            f"| {i} | {cell(query)} ({r['answer']}) | {cell(r['response'])} "
            f"| `{token}` ({r['critical_position']} / {len(r['response_ids'])}) | {r['rollouts']} "
            f"| {keep[0]:.2f} / {replace[0]:.2f} | {keep[-1]:.2f} / {replace[-1]:.2f} |"
        )


if __name__ == "__main__":
    main(sys.argv[1])
