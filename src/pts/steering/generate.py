"""Sampling replies with steering: a batched decode loop with the steering hooks installed.

Why not :class:`pts.engines.hf.HFEngine`'s loop: running there would change
every steered result, and the engine would need steering inside its hot path.
Each row's generator here is seeded with its request's seed alone (the
engine's with a digest of seed, prefix and sample index); the early-stop test
runs after every token (the engine's every 8 tokens or at a newline); the
hooks need every row's steering state before every forward (the engine admits
and drops rows inside its own loop, in an order the caller does not see); and
context steering adds at the last prompt position only, while the engine
prefills in blocks of 32 tokens cached by token ids alone, so a steered row
would add at the end of every block and share its prefill with its unsteered
twin. Sampling itself is the engine's (:func:`pts.engines.hf.sample_tokens`),
so temperature, top-k, top-p and min-p mean the same in both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pts.engines.base import SamplingParams
from pts.steering.apply import ControlSteering, RowSteer, Steering
from pts.steering.hooks import SteeringHooks


@dataclass(frozen=True)
class GenerationRequest:
    """One row to generate: the prompt, the seed of its sampling stream, whether it is steered.

    Two requests with the same prompt and seed draw the same random numbers, so a
    steered row and its unsteered twin differ only where steering changed the
    model's distribution. ``stop`` is an early-stop test on the decoded reply.
    """

    prompt_ids: tuple[int, ...]
    seed: int
    steer: bool = True
    stop: Callable[[str], bool] | None = field(default=None, compare=False)


@dataclass
class Generation:
    """A generated reply: its token ids (EOS kept when emitted), text, why it ended, and where it was steered.

    ``steered_positions`` counts the positions (last prompt position included)
    whose layer output had a vector added; ``vectors`` are the indices of the
    steering vectors that were active at some point, in order.
    """

    token_ids: list[int]
    text: str
    finish_reason: str
    steered_positions: int = 0
    vectors: list[int] = field(default_factory=list)


def generate(
    model: Any,
    tokenizer: Any,
    requests: Sequence[GenerationRequest],
    steering: Steering | None = None,
    *,
    max_new_tokens: int,
    params: SamplingParams,
    batch_size: int = 64,
    on_done: Callable[[int], None] | None = None,
    hooks: SteeringHooks | None = None,
) -> list[Generation]:
    """Sample one reply per request, with ``steering`` added on rows whose ``steer`` is True.

    Rows decode together in batches of ``batch_size`` (left-padded, per-row
    positions); each distinct (prompt, steer) pair is prefilled once and its
    cache shared by its rows; finished rows leave the batch. Each row samples
    from its own generator seeded with its request's seed (temperature, top-k,
    top-p, min-p by :func:`pts.engines.hf.sample_tokens`). ``on_done(k)`` is
    called as rows finish. Returns the generations in request order.
    """
    import torch

    layers = steering.layers if steering is not None else []
    own = hooks is None
    hooks = hooks or SteeringHooks(model, layers)
    results: list[Generation | None] = [None] * len(requests)
    # keep rows of one prompt together so they share a prefill; otherwise request order
    groups: dict[tuple, list[int]] = {}
    for i, r in enumerate(requests):
        groups.setdefault((tuple(r.prompt_ids), r.steer), []).append(i)
    order = [i for g in groups.values() for i in g]
    try:
        if own:
            hooks.__enter__()
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                chunk = order[start : start + batch_size]
                for i, gen in zip(
                    chunk,
                    _generate_batch(
                        model, tokenizer, [requests[i] for i in chunk], steering, hooks, max_new_tokens, params
                    ),
                ):
                    results[i] = gen
                if on_done:
                    on_done(len(chunk))
    finally:
        if own:
            hooks.__exit__()
            hooks.set({})
    return results  # type: ignore[return-value]


@dataclass
class _Live:
    req: GenerationRequest
    gen: Any
    steer: RowSteer
    tokens: list[int] = field(default_factory=list)
    done: Generation | None = None


def _generate_batch(
    model,
    tokenizer,
    requests: Sequence[GenerationRequest],
    steering: Steering | None,
    hooks: SteeringHooks,
    max_new_tokens: int,
    params: SamplingParams,
) -> list[Generation]:
    import torch
    from transformers import DynamicCache

    from pts.engines.base import GREEDY_BELOW
    from pts.engines.hf import cache_keyword, eos_ids, sample_tokens

    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    eos = frozenset(eos_ids(model, tokenizer))
    greedy = params.temperature < GREEDY_BELOW

    def start_row(r: GenerationRequest) -> RowSteer:
        if steering is None:
            return RowSteer(False, [])
        return steering.start(r.prompt_ids, r.steer)

    rows = [
        _Live(r, None if greedy else torch.Generator().manual_seed(int(r.seed) & (2**63 - 1)), start_row(r))
        for r in requests
    ]
    for r in requests:
        if not r.prompt_ids:
            raise ValueError("a prompt must have at least one token")

    # Prefill each distinct (prompt, steer) once, left-padded, then give every row its copy.
    first_row: dict[tuple, _Live] = {}
    for r in rows:
        first_row.setdefault((r.req.prompt_ids, r.req.steer), r)
    keys = list(first_row)
    key_index = {k: j for j, k in enumerate(keys)}
    width = max(len(k[0]) for k in keys)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.full((len(keys), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(keys), width), dtype=torch.long)
    for j, (prompt, _) in enumerate(keys):
        ids[j, width - len(prompt) :] = torch.tensor(prompt)
        mask[j, width - len(prompt) :] = 1
    ids, mask = ids.to(device), mask.to(device)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    if steering is not None:
        hooks.set(steering.tensors([first_row[k].steer for k in keys], device, dtype))
    cache = DynamicCache()
    cache_kw = cache_keyword(model)
    out = model(
        input_ids=ids, attention_mask=mask, position_ids=pos, **{cache_kw: cache}, use_cache=True, logits_to_keep=1
    )
    index = torch.tensor([key_index[(r.req.prompt_ids, r.req.steer)] for r in rows], device=device)
    if len(keys) != len(rows) or index.tolist() != list(range(len(rows))):
        cache.batch_select_indices(index)
    logits = out.logits[:, -1].float()[index]
    mask, next_pos = mask[index], pos[index, -1] + 1
    if steering is not None:
        for r in rows:
            if steering.is_active(r.steer):
                r.steer.positions += len(r.req.prompt_ids) if isinstance(steering, ControlSteering) else 1

    live = rows
    while True:
        tok, _ = sample_tokens(logits, params, [r.gen for r in live])
        for r, t in zip(live, tok.tolist()):
            _append(r, t, eos, max_new_tokens, tokenizer, steering)
        keep = [i for i, r in enumerate(live) if r.done is None]
        if not keep:
            break
        if len(keep) < len(live):
            sel = torch.tensor(keep, device=device)
            cache.batch_select_indices(sel)
            live, tok, mask, next_pos = [live[i] for i in keep], tok[sel], mask[sel], next_pos[sel]
        mask = torch.cat([mask, mask.new_ones(len(live), 1)], dim=1)
        if steering is not None:
            hooks.set(steering.tensors([r.steer for r in live], device, dtype))
            for r in live:
                r.steer.positions += steering.is_active(r.steer)
        out = model(
            input_ids=tok[:, None],
            attention_mask=mask,
            position_ids=next_pos[:, None],
            **{cache_kw: cache},
            use_cache=True,
        )
        logits = out.logits[:, -1].float()
        next_pos = next_pos + 1
    hooks.set({})
    return [r.done for r in rows]  # type: ignore[misc]


def _append(row: _Live, token: int, eos: frozenset[int], max_new_tokens: int, tokenizer, steering) -> None:
    row.tokens.append(token)
    reason = None
    text = None
    if token in eos:
        reason = "eos"
    elif row.req.stop is not None:
        text = tokenizer.decode(row.tokens, skip_special_tokens=True)
        if row.req.stop(text):
            reason = "stop"
    if reason is None and len(row.tokens) >= max_new_tokens:
        reason = "length"
    if reason is None:
        if steering is not None:
            steering.observe(row.steer, token)
        return
    if text is None:
        text = tokenizer.decode(row.tokens, skip_special_tokens=True)
    row.done = Generation(list(row.tokens), text, reason, row.steer.positions, list(row.steer.used))
