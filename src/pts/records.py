"""Record kinds written by pts, one dataclass each, serialised as JSON lines."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA_VERSION = 1


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
class Continuation:
    """How often the rollouts from a context began with the tokens ``token_ids``, and how many of those
    succeeded: a measured alternative to a pivotal span of the same length."""

    token_ids: list[int]
    text: str
    count: int
    successes: int


@dataclass(kw_only=True)
class Record:
    """What the record kinds share: ``kind`` and ``schema_version`` say what a line is, ``timestamp`` when it
    was written, and ``id``, when not given, is made from the kind, model, dataset item and what identifies
    the record within it (:meth:`identity`), so a rerun writes the same ids. Fields are keyword-only."""

    id: str = ""
    kind: str = ""
    schema_version: int = SCHEMA_VERSION
    timestamp: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S"))

    def identity(self) -> tuple[Any, ...]:
        raise NotImplementedError

    def __post_init__(self) -> None:
        if not self.id:
            self.id = stable_id(
                self.kind,
                self.model_id,
                self.dataset_id,  # type: ignore[attr-defined]
                self.dataset_item_id,
                *self.identity(),
            )  # type: ignore[attr-defined]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def _from_dict(cls, data: dict[str, Any], *token_lists: str) -> Any:
        """The record of ``data`` (a JSON line): fields it does not know are dropped (a newer pts may have
        written them), and ``token_lists`` name its lists of :class:`FirstToken`."""
        known = cls.__dataclass_fields__
        data = {k: v for k, v in data.items() if k in known}
        for key in token_lists:
            data[key] = [FirstToken(**t) for t in data.get(key, [])]
        return cls(**data)


@dataclass(kw_only=True)
class PivotalTokenFields:
    """The fields every pivotal-token record has, pts's and the original PTS tool's (which has a ``timestamp``
    too): the token, its context as text, p(success) before and after it, and where it comes from."""

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


ORIGINAL_FIELDS = (*PivotalTokenFields.__dataclass_fields__, "timestamp")
"""Fields every pivotal-token record has in the original PTS tool's files."""


@dataclass(kw_only=True)
class PivotalToken(PivotalTokenFields, Record):
    """A single token whose choice moves p(success) by at least the threshold.

    ``pivot_context`` is the decoded text of ``pivot_context_ids``: the exact
    prompt (chat template applied) followed by the response up to, not including,
    the pivot token. ``prompt_length`` says how many of those ids are the prompt.
    ``prob_before`` / ``prob_after`` are p(success) estimated from
    ``samples_before`` / ``samples_after`` rollouts (a terminal context, one that
    ends the response, is judged once and exactly). ``first_tokens`` are the
    first tokens that the rollouts from ``pivot_context`` actually took, with
    their success counts: measured counterparts for DPO pairs.

    ``pooled_before`` / ``pooled_after`` of those samples were drawn from a
    shorter context and passed through this one (the rest were drawn there).
    ``verified`` records were re-measured after the search flagged them: their
    probabilities and counts come from verification rollouts only, ``candidate``
    holds the search's own numbers, and ``delta_ci`` is the interval of the
    change at level ``delta_ci_level`` that settled it (for unverified records,
    the same interval from the search's estimates). ``sampling_prob`` is pi of the pivot token
    after its context under the sampling distribution (None when the engine did not say); the
    change can be at most ``1 - sampling_prob`` in size.
    """

    pivot_context_ids: list[int]
    prompt_length: int
    samples_before: int
    successes_before: int
    samples_after: int
    successes_after: int
    first_tokens: list[FirstToken]
    ci_before: list[float] = field(default_factory=list)
    ci_after: list[float] = field(default_factory=list)
    pooled_before: int = 0
    pooled_after: int = 0
    verified: bool = False
    delta_ci: list[float] = field(default_factory=list)
    delta_ci_level: float | None = None
    candidate: dict[str, Any] = field(default_factory=dict)
    answer: str = ""
    position: int = 0
    solution_index: int = 0
    search: dict[str, Any] = field(default_factory=dict)
    sampling_prob: float | None = None
    span_start: int | None = None
    span_end: int | None = None
    span_token_ids: list[int] | None = None
    continuations: list[Continuation] | None = None
    span_tokens: list[dict[str, Any]] | None = None
    kind: str = "pivotal_token"

    @property
    def is_span(self) -> bool:
        """True for a pivotal span (several tokens), False for a single pivotal token."""
        return self.span_token_ids is not None

    def identity(self) -> tuple[Any, ...]:
        if self.span_token_ids is not None:
            return self.pivot_context_ids, self.span_token_ids
        return self.pivot_context_ids, self.pivot_token_id

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PivotalToken:
        record = cls._from_dict(data, "first_tokens")
        if record.continuations is not None:
            record.continuations = [Continuation(**c) for c in record.continuations]
        return record


CRITICAL_RULES = ("first_zero_then_low", "last_zero", "none")


@dataclass(kw_only=True)
class CriticalToken(Record):
    """The critical token of one incorrect trajectory (Lin et al., arXiv 2411.19943), found by rollout sampling.

    ``response_ids`` is the trajectory (the response after the exact prompt
    ``prompt_ids``); ``response_tokens[i]`` is ``response_ids[i]`` decoded on
    its own (empty in records written before it was kept). ``scores[i]`` is the share of ``score_samples[i]``
    rollouts from ``prompt_ids + response_ids[:i + 1]`` (the prefix that
    includes token ``i``) that the oracle accepted, ``None`` where the search
    did not sample it; a terminal prefix (the response ended there:
    ``score_terminal[i]``) is judged once, exactly. Scores from fewer than
    ``search["rollouts"]`` samples are the search's probes.
    ``critical_position`` indexes ``response_ids``; ``rule``
    says how it was chosen: ``"first_zero_then_low"`` (the paper's rule: the
    first zero-score token after which no token scores above
    ``low_threshold``), ``"last_zero"`` (the paper's fallback: the latest
    zero-score candidate) or ``"none"`` (no token scored zero; the critical
    fields are then ``None``).

    Pass@k (the paper's Figure 2), for k = 1..len: ``pass_at_k_with`` from
    ``samples_with`` fresh rollouts that keep the critical token,
    ``pass_at_k_without`` from ``samples_without`` alternative tokens drawn
    from the model's next-token distribution without the critical token, one
    rollout each; ``alternatives`` are those tokens with their draw counts and
    successes.
    """

    model_id: str
    query: str
    answer: str
    response: str
    response_ids: list[int]
    prompt_ids: list[int]
    prompt_length: int
    critical_position: int | None
    critical_token: str | None
    critical_token_id: int | None
    critical_context: str
    rule: str
    score: float | None
    scores: list[float | None]
    score_samples: list[int]
    score_successes: list[int]
    score_terminal: list[bool]
    low_threshold: float
    mode: str
    rollouts: int
    task_type: str
    dataset_id: str
    dataset_item_id: str
    trajectory_index: int = 0
    p_initial: float | None = None
    pass_at_k_with: list[float] = field(default_factory=list)
    pass_at_k_without: list[float] = field(default_factory=list)
    samples_with: int = 0
    successes_with: int = 0
    samples_without: int = 0
    successes_without: int = 0
    alternatives: list[FirstToken] = field(default_factory=list)
    pass_at_k_rollouts: int = 0
    response_tokens: list[str] = field(default_factory=list)
    search: dict[str, Any] = field(default_factory=dict)
    kind: str = "critical_token"

    def identity(self) -> tuple[Any, ...]:
        return self.prompt_ids, self.response_ids, self.mode

    def context_ids(self) -> list[int]:
        """Prompt and response before the critical token: where a preference pair would branch."""
        if self.critical_position is None:
            raise ValueError("this trajectory has no critical token")
        return list(self.prompt_ids) + list(self.response_ids[: self.critical_position])

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CriticalToken:
        return cls._from_dict(data, "alternatives")
