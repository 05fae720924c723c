"""Record kinds written by pts, one dataclass each, serialised as JSON lines."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA_VERSION = 1

# Fields every pivotal-token record has in the original PTS tool's files.
ORIGINAL_FIELDS = (
    "model_id", "query", "pivot_context", "pivot_token", "pivot_token_id", "prob_before",
    "prob_after", "prob_delta", "is_positive", "task_type", "dataset_id", "dataset_item_id",
    "timestamp",
)


def stable_id(*parts: Any) -> str:
    """A short hex digest of ``parts`` (JSON-encoded), stable across runs and machines."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def stable_seed(*parts: Any) -> int:
    """A 32-bit seed derived from ``parts``, stable across runs and machines."""
    return int(stable_id(*parts)[:8], 16)


@dataclass
class FirstToken:
    """How often the rollouts from a context began with ``token_id``, and how many of those succeeded."""

    token_id: int
    token: str
    count: int
    successes: int


@dataclass
class PivotalToken:
    """A single token whose choice moves p(success) by at least the threshold.

    ``pivot_context`` is the decoded text of ``pivot_context_ids``: the exact
    prompt (chat template applied) followed by the response up to, not including,
    the pivot token. ``prompt_length`` says how many of those ids are the prompt.
    ``prob_before`` / ``prob_after`` are p(success) estimated from
    ``samples_before`` / ``samples_after`` rollouts (a terminal context, one that
    ends the response, is judged once and exactly). ``first_tokens`` are the
    first tokens that the rollouts from ``pivot_context`` actually took, with
    their success counts: measured counterparts for DPO pairs.
    """

    model_id: str
    query: str
    pivot_context: str
    pivot_token: str
    pivot_token_id: int
    prob_before: float
    prob_after: float
    prob_delta: float
    is_positive: bool
    task_type: str
    dataset_id: str
    dataset_item_id: str
    pivot_context_ids: list[int]
    prompt_length: int
    samples_before: int
    successes_before: int
    samples_after: int
    successes_after: int
    first_tokens: list[FirstToken]
    ci_before: list[float] = field(default_factory=list)
    ci_after: list[float] = field(default_factory=list)
    answer: str = ""
    position: int = 0
    solution_index: int = 0
    search: dict[str, Any] = field(default_factory=dict)
    timestamp: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S"))
    id: str = ""
    kind: str = "pivotal_token"
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if not self.id:
            self.id = stable_id(self.kind, self.model_id, self.dataset_id, self.dataset_item_id,
                                self.pivot_context_ids, self.pivot_token_id)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PivotalToken":
        data = dict(data)
        data["first_tokens"] = [FirstToken(**t) for t in data.get("first_tokens", [])]
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})
