"""Publishing pts outputs on the Hugging Face Hub: dataset cards and uploads.

from pts.hub import push_dataset
url = push_dataset("dpo_pairs.jsonl", "alice/pivotal-dpo", private=True)
"""

from pts.hub.card import (
    FileSummary,
    build_card,
    detect_format,
    inspect_file,
    size_category,
)
from pts.hub.push import NO_TOKEN, check_repo_id, push_dataset, resolve_token

__all__ = [
    "NO_TOKEN",
    "FileSummary",
    "build_card",
    "check_repo_id",
    "detect_format",
    "inspect_file",
    "push_dataset",
    "resolve_token",
    "size_category",
]
