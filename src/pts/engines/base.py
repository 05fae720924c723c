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
    ``exclude_first``, when given, is a token the first sampled token must not be:
    the first token is drawn from the sampling distribution (after temperature and
    truncation) conditioned on not being it, i.e. renormalized over the other
    tokens; later tokens are sampled as usual. Rollouts from a context whose first
    token is not t are then drawn directly (the "alternative" stratum of t).
    """

    prefix_ids: tuple[int, ...]
    n: int
    max_new_tokens: int
    stop: Callable[[str], bool] | None = field(default=None, compare=False)
    seed: int | None = None
    exclude_first: int | None = None


@dataclass
class Rollout:
    """One sampled continuation.

    ``token_ids`` are the generated tokens only (the end-of-sequence token is kept
    when the model emitted it); ``text`` is their decoding without special tokens;
    ``logprobs[i]`` is log p(token_ids[i] | context) under the model's unmodified
    next-token distribution (log-softmax of the raw logits, before temperature or
    truncation); ``finish_reason`` is ``"eos"`` (model ended it), ``"stop"`` (the
    request's stop test fired) or ``"length"`` (hit ``max_new_tokens``).
    ``sampling_logprobs[i]``, when the engine knows it, is log pi(token_ids[i] | context):
    the log-probability under the distribution the token was actually drawn from
    (after temperature, top-k, top-p and min-p; 0.0 for greedy decoding). For the
    first token of a request with ``exclude_first`` it is still pi under the full
    sampling distribution, not the renormalized one. None when the engine cannot
    say (the search then does without the bounds that need it).
    """

    token_ids: list[int]
    text: str
    logprobs: list[float]
    finish_reason: Literal["eos", "stop", "length"]
    sampling_logprobs: list[float] | None = None


@runtime_checkable
class Engine(Protocol):
    """A sampler of continuations for many prefixes at once."""

    model_id: str
    tokenizer: object
    eos_token_ids: frozenset[int]

    def sample(self, requests: Sequence[RolloutRequest], params: SamplingParams) -> list[list[Rollout]]:
        """Return, for each request in order, exactly ``request.n`` rollouts."""
        ...


@runtime_checkable
class NextTokenDistribution(Protocol):
    """An engine that can also say, without sampling, what its sampler would pick next (optional).

    ``next_token_distribution(prefixes, params)`` returns, for each prefix, the
    sampling distribution of the next token as ``{token_id: pi}`` over its whole
    support (the tokens left after temperature, top-k, top-p and min-p; their
    probabilities sum to 1). The search uses it where every next token ends the
    response, to know p(success) exactly without rollouts.
    """

    def next_token_distribution(
        self, prefixes: Sequence[Sequence[int]], params: SamplingParams
    ) -> list[dict[int, float]]: ...


@runtime_checkable
class ContinuousBatching(Protocol):
    """An engine that can keep one batch decoding across calls (optional; :class:`pts.engines.HFEngine` can).

    ``running(params)`` returns a running batch ``run`` with ``run.add(submissions)`` (each submission a list
    of requests; returns one handle per submission), ``run.step()`` (one forward: rows waiting join the batch
    or the batch decodes one token; returns ``(handle, results)`` for each submission it completed, results
    as :meth:`Engine.sample` gives them) and ``run.busy`` (a submission is still open). What a submission gets
    must not depend on when it was added or what else runs (up to the dtype's rounding): requests then join a
    running batch as its rows finish (:class:`pts.engines.coalesce.CoalescingEngine` does that).
    """

    def running(self, params: SamplingParams) -> object: ...


def sample_by_steps(running, requests: Sequence[RolloutRequest]) -> list[list[Rollout]]:
    """An engine's ``sample`` in terms of its running batch (:class:`ContinuousBatching`): one submission of
    ``requests``, stepped until it is complete; returns its rollouts, per request in order."""
    running.add([requests])
    done: list = []
    while not done:
        done = running.step()
    return done[0][1]


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
