"""The rollout engine protocol: token ids in, token ids + text + log-probs out.

Everything about speed lives behind this protocol (prefix sharing, batching,
stopping early); the search above it only sees :class:`Rollout` objects.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

GREEDY_BELOW = 1e-5  # temperatures below this mean argmax decoding, in every engine


@dataclass(frozen=True)
class SamplingParams:
    """How continuations are sampled. Defaults follow the original PTS tool."""

    temperature: float = 0.6
    top_p: float = 0.95
    top_k: int = 20
    min_p: float = 0.0
    seed: int | None = None


@dataclass(frozen=True)
class RolloutRequest:
    """``n`` continuations of ``prefix_ids`` (prompt + response so far), each at most ``max_new_tokens`` long.

    ``stop`` is an optional early-stop test on the decoded text of the continuation
    alone (not the prefix): when it returns True the rollout ends with
    ``finish_reason == "stop"``. Engines may check it only every few tokens.
    ``seed``, when given, replaces ``SamplingParams.seed`` for this request, so
    requests merged into one call keep their own randomness.
    """

    prefix_ids: tuple[int, ...]
    n: int
    max_new_tokens: int
    stop: Callable[[str], bool] | None = field(default=None, compare=False)
    seed: int | None = None


@dataclass
class Rollout:
    """One sampled continuation.

    ``token_ids`` are the generated tokens only (the end-of-sequence token is kept
    when the model emitted it); ``text`` is their decoding without special tokens;
    ``logprobs[i]`` is log p(token_ids[i] | context) under the model's unmodified
    next-token distribution (log-softmax of the raw logits, before temperature or
    truncation); ``finish_reason`` is ``"eos"`` (model ended it), ``"stop"`` (the
    request's stop test fired) or ``"length"`` (hit ``max_new_tokens``).
    """

    token_ids: list[int]
    text: str
    logprobs: list[float]
    finish_reason: Literal["eos", "stop", "length"]


@runtime_checkable
class Engine(Protocol):
    """A sampler of continuations for many prefixes at once."""

    model_id: str
    tokenizer: object
    eos_token_ids: frozenset[int]

    def sample(self, requests: Sequence[RolloutRequest], params: SamplingParams) -> list[list[Rollout]]:
        """Return, for each request in order, exactly ``request.n`` rollouts."""
        ...


def eos_token_ids(configs, tokenizer) -> set[int]:
    """Token ids that end a reply: the first config's EOS ids that has any (a generation config before the model
    config, as transformers' ``generate`` reads them), plus the tokenizer's. ``configs`` may yield None."""
    ids: set[int] = set()
    for config in configs:
        eos = getattr(config, "eos_token_id", None)
        if eos is not None:
            ids.update([eos] if isinstance(eos, int) else eos)
            break
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids
