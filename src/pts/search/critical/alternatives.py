"""Alternatives to the critical token: the sampler's next-token distribution without it, and draws from it."""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Sequence
from typing import Any, Protocol

from pts.engines.base import GREEDY_BELOW, SamplingParams


class NextTokenLogprobs(Protocol):
    """Log-probabilities of the next token after each prefix (full token ids): one row per prefix, over the vocabulary.

    :meth:`pts.engines.hf.HFEngine.next_token_logprobs` is one; tests pass a function.
    """

    def __call__(self, prefixes: Sequence[Sequence[int]]) -> Sequence[Sequence[float]]: ...


def next_token_source(engine: Any) -> NextTokenLogprobs | None:
    """The engine's next-token distribution, or None when it cannot give one."""
    fn = getattr(engine, "next_token_logprobs", None)
    return fn if callable(fn) else None


def alternative_distribution(
    logprobs: Sequence[float], exclude: int, params: SamplingParams
) -> tuple[list[int], list[float], str]:
    """The next-token distribution the sampler uses, without token ``exclude``, renormalised.

    Applies temperature, top-k, top-p and min-p in that order (as the HF engine
    samples), then drops ``exclude``. If nothing is left (the sampler would
    always pick ``exclude``), falls back to the untruncated distribution at the
    same temperature (1 when greedy). Returns ``(token_ids, probs, support)``
    with ``support`` ``"sampler"`` or ``"full"``.
    """
    row = logprobs.tolist() if hasattr(logprobs, "tolist") else list(logprobs)
    vocab = len(row)
    greedy = params.temperature < GREEDY_BELOW
    temp = 1.0 if greedy else params.temperature
    if greedy:
        ids = [max(range(vocab), key=row.__getitem__)]
    elif 0 < params.top_k < vocab:
        ids = heapq.nlargest(params.top_k, range(vocab), key=row.__getitem__)
    else:
        ids = sorted(range(vocab), key=row.__getitem__, reverse=True)
    probs = _softmax([row[i] / temp for i in ids])
    if not greedy and params.top_p < 1.0:
        keep, mass = 0, 0.0
        while keep < len(ids) and mass < params.top_p:
            mass += probs[keep]
            keep += 1
        ids, probs = ids[:keep], probs[:keep]
    if not greedy and params.min_p > 0.0:
        floor = params.min_p * max(probs)
        kept = [(i, p) for i, p in zip(ids, probs) if p >= floor]
        ids, probs = [i for i, _ in kept], [p for _, p in kept]
    kept = [(i, p) for i, p in zip(ids, probs) if i != exclude]
    support = "sampler"
    if not kept or sum(p for _, p in kept) <= 0.0:
        full = [i for i in range(vocab) if i != exclude and row[i] > -math.inf]
        kept = list(zip(full, _softmax([row[i] / temp for i in full])))
        support = "full"
    total = sum(p for _, p in kept)
    return [i for i, _ in kept], [p / total for _, p in kept], support


def sample_alternatives(
    logprobs: Sequence[float], exclude: int, n: int, params: SamplingParams, rng: random.Random
) -> tuple[list[int], str]:
    """``n`` next tokens drawn with replacement from :func:`alternative_distribution`; and its support."""
    ids, probs, support = alternative_distribution(logprobs, exclude, params)
    return rng.choices(ids, weights=probs, k=n), support


def _softmax(xs: Sequence[float]) -> list[float]:
    top = max(xs)
    ex = [math.exp(x - top) for x in xs]
    total = sum(ex)
    return [e / total for e in ex]
