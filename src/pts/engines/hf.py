"""A rollout engine on a Hugging Face causal LM with a hand-written batched decode loop.

How it spends compute:

* Each distinct prefix is prefilled once, alone (so its KV cache and next-token
  logits do not depend on what else is in the call); its cache rows are then
  repeated for its ``n`` samples.
* Prefills run in aligned blocks of ``prefill_block`` tokens whose keys and values
  are kept in an LRU cache across calls: the prompt and the shared head of a
  solution are computed once, not once per prefix. Block ``k`` of a prefix is
  always computed the same way from blocks ``0..k-1``, so a prefix's KV cache
  and logits are bit-identical whatever was cached before (history-independent).
* Rows from many prefixes decode together, one forward per step. Shorter caches
  are left-padded with masked columns and every row has its own position ids,
  so padding does not change what a row computes.
* Finished rows (EOS, ``max_new_tokens``, or the request's ``stop`` test) are
  dropped from the batch, and waiting rows join when enough slots are free
  (continuous batching), so the batch stays full until the work runs out.
  The batch can outlive a call (:class:`RunningBatch`): requests handed in
  later join it the same way, which is how the merged calls of concurrent
  queries keep it full (:mod:`pts.engines.coalesce`).
* Keys and values live in preallocated buffers that grow in blocks, so a step
  writes one column instead of copying the whole cache.
* Each row samples from its own ``torch.Generator``, seeded from the request's
  seed (else ``params.seed``), the prefix and the sample's index: a rollout does
  not depend on batch size, padding, or the other requests in the call.
"""

from __future__ import annotations

import hashlib
import inspect
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import count

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from pts.engines.base import GREEDY_BELOW, Rollout, RolloutRequest, SamplingParams, eos_token_ids, sample_by_steps


def cache_keyword(model) -> str:
    """The ``forward`` keyword that takes a KV cache: ``cache`` where the model has it (transformers 5.2x
    deprecates ``past_key_values`` and warns on every call), else ``past_key_values``."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


ROOM = 64  # cache columns allocated ahead; a full buffer grows by this much


@dataclass
class _Submission:
    """The rollouts of one handed-in list of requests, filled in as its rows finish."""

    handle: int
    results: list[list[Rollout | None]]
    remaining: int


@dataclass
class _Row:
    """One rollout in progress; its rollout goes to ``out.results[req][index]``."""

    out: _Submission
    req: int
    index: int
    prefix: tuple[int, ...]
    max_new: int
    gen: torch.Generator | None
    stop: Callable[[str], bool] | None = None
    exclude_first: int | None = None
    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    sampling_logprobs: list[float] = field(default_factory=list)
    done: bool = False


class _GrowingLayer(DynamicLayer):
    """A cache layer whose keys/values are views into buffers with spare columns, appended to in place."""

    def __init__(self, buf_k: torch.Tensor, buf_v: torch.Tensor, length: int):
        super().__init__()
        self.lazy_initialization(buf_k, buf_v)
        self.buf_k, self.buf_v, self.length = buf_k, buf_v, length
        self.keys, self.values = buf_k[:, :, :length], buf_v[:, :, :length]

    def update(self, key_states, value_states, *args, **kwargs):
        end = self.length + key_states.shape[-2]
        if end > self.buf_k.shape[-2]:
            self.buf_k = _with_room(self.keys, max(ROOM, key_states.shape[-2]))
            self.buf_v = _with_room(self.values, max(ROOM, key_states.shape[-2]))
        self.buf_k[:, :, self.length : end] = key_states
        self.buf_v[:, :, self.length : end] = value_states
        self.length = end
        self.keys, self.values = self.buf_k[:, :, :end], self.buf_v[:, :, :end]
        return self.keys, self.values


def _with_room(x: torch.Tensor, room: int) -> torch.Tensor:
    buf = x.new_empty(*x.shape[:-2], x.shape[-2] + room, x.shape[-1])
    buf[:, :, : x.shape[-2]] = x
    return buf


@dataclass
class _Segment:
    """Rows to place in a new batch: per-layer (keys, values) with batch dim ``len(rows)``, or 1 to share.

    ``pad[i]`` counts the leading columns that are padding for row ``i``.
    """

    rows: list[_Row]
    layers: list[tuple[torch.Tensor, torch.Tensor]]
    pad: torch.Tensor
    next_tok: torch.Tensor
    pos: torch.Tensor


@dataclass
class _Batch:
    """Rows decoding together and their KV cache.

    Row ``i`` owns cache columns ``pad[i]:`` and every row has at least one pad
    column: HF then always builds an attention mask, which sends one-token GQA
    attention to SDPA's fast packed path. ``next_tok[i]`` is the row's last
    sampled token, fed at position ``pos[i]`` in the next step. Finished rows
    linger (``done``) until the next compaction.
    """

    rows: list[_Row]
    cache: DynamicCache
    pad: torch.Tensor
    next_tok: torch.Tensor
    pos: torch.Tensor

    @property
    def alive(self) -> int:
        return sum(not r.done for r in self.rows)

    def live_segment(self) -> _Segment:
        """The unfinished rows, as a segment for :func:`_assemble`."""
        keep = [i for i, r in enumerate(self.rows) if not r.done]
        idx = torch.tensor(keep, device=self.pad.device)
        pad = self.pad[idx]
        lead = int(pad.min())
        layers = [(layer.keys[idx, :, lead:], layer.values[idx, :, lead:]) for layer in self.cache.layers]
        return _Segment([self.rows[i] for i in keep], layers, pad - lead, self.next_tok[idx], self.pos[idx])


def _assemble(segments: list[_Segment]) -> _Batch:
    """One batch from segments, right-aligned in a shared cache with one spare pad column, plus room to grow."""
    rows = [r for s in segments for r in s.rows]
    width = 1 + max(s.layers[0][0].shape[-2] for s in segments)
    room = max(1, min(ROOM, max(r.max_new - len(r.tokens) for r in rows)))
    layers = []
    for i in range(len(segments[0].layers)):
        bufs = []
        for which in (0, 1):
            like = segments[0].layers[i][which]
            buf = like.new_empty(len(rows), like.shape[1], width + room, like.shape[3])
            start = 0
            for s in segments:
                x = s.layers[i][which]
                lo = width - x.shape[-2]
                buf[start : start + len(s.rows), :, :lo] = 0  # masked, but must be finite: 0 * NaN is NaN
                buf[start : start + len(s.rows), :, lo:width] = x
                start += len(s.rows)
            bufs.append(buf)
        layers.append(_GrowingLayer(bufs[0], bufs[1], width))
    cache = DynamicCache()
    cache.layers = layers
    pad = torch.cat([s.pad + width - s.layers[0][0].shape[-2] for s in segments])
    return _Batch(rows, cache, pad, torch.cat([s.next_tok for s in segments]), torch.cat([s.pos for s in segments]))


class HFEngine:
    """Sample continuations of token-id prefixes with a Hugging Face causal LM.

    ``batch_size`` bounds the rows decoded at once (memory and step latency).
    A request's ``stop`` test runs on the decoded continuation after every token
    whose text holds a newline, every ``stop_every`` tokens, and at the last token
    (decoding every row at every step would cost up to ~10% on long rollouts).
    Finished rows are dropped once fewer than ``compact_below`` of the batch's
    rows are alive: dropping copies the cache, so 7/8 beat both dropping at
    once (1.0) and never dropping (0.0) in ``bench/engine_throughput.py``.

    ``prefill_block`` and ``prefix_cache_mb`` size the cross-call block cache of
    prefill keys/values (0 MiB turns it off). The cache is keyed by token ids
    alone: if the model's weights or forward hooks change between calls (training,
    steering), call ``engine.prefix_cache.clear()``.
    """

    excludes_first = True  # honours RolloutRequest.exclude_first

    def __init__(
        self,
        model,
        tokenizer,
        model_id: str,
        batch_size: int = 64,
        stop_every: int = 8,
        compact_below: float = 7 / 8,
        prefill_block: int = 32,
        prefix_cache_mb: float = 256,
    ):
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if prefill_block < 1:
            raise ValueError("prefill_block must be >= 1")
        self.prefill_block = prefill_block
        self.prefix_cache = BlockCache(int(prefix_cache_mb * 2**20))
        self.model = model
        self.cache_kw = cache_keyword(model)
        # Running totals, read by progress displays while a call is still under way.
        self.rollouts_done = 0
        self.tokens_done = 0
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.batch_size = batch_size
        self.stop_every = max(1, stop_every)
        self.device = next(model.parameters()).device
        self.eos_token_ids = frozenset(eos_ids(model, tokenizer))
        head = model.get_output_embeddings()
        self._newline = _newline_tokens(tokenizer, head.weight.shape[0] if head is not None else 0).to(self.device)
        self._buf: torch.Tensor | None = None  # float32 logits of bf16/fp16 models, reused across steps
        self.compact_below = compact_below
        # Longest prompt + response the model was trained for (None when its config does not say).
        self.context_length = getattr(model.config, "max_position_embeddings", None)

    @classmethod
    def from_loaded(cls, loaded, batch_size: int = 64, **kwargs) -> HFEngine:
        """Build an engine from a :class:`pts.models.LoadedModel`."""
        return cls(loaded.model, loaded.tokenizer, loaded.model_id, batch_size=batch_size, **kwargs)

    @torch.inference_mode()
    def next_token_logprobs(self, prefixes: Sequence[Sequence[int]]) -> torch.Tensor:
        """Log-softmax over the vocabulary of the token after each prefix: float32 [len(prefixes), vocab] on CPU."""
        rows = [self._prefill(tuple(int(t) for t in p))[1] for p in prefixes]
        return torch.log_softmax(torch.stack(rows), dim=-1).cpu()

    @torch.inference_mode()
    def next_token_distribution(
        self, prefixes: Sequence[Sequence[int]], params: SamplingParams
    ) -> list[dict[int, float]]:
        """The sampling distribution of the token after each prefix, ``{token_id: pi}`` over its support.

        Computed from the same prefill and the same processing (:func:`sampling_distribution`)
        that the first token of a rollout from the prefix is drawn with.
        """
        out = []
        for p in prefixes:
            logits = self._prefill(tuple(int(t) for t in p))[1][None, :].clone()
            if params.temperature < GREEDY_BELOW:
                out.append({int(logits[0].argmax()): 1.0})
                continue
            probs, idx = sampling_distribution(logits, params)
            probs = probs[0] / probs[0].sum()
            ids = torch.arange(probs.shape[0], device=probs.device) if idx is None else idx[0]
            keep = probs > 0
            out.append(dict(zip(ids[keep].tolist(), probs[keep].tolist())))
        return out

    @torch.inference_mode()
    def sample(self, requests: Sequence[RolloutRequest], params: SamplingParams) -> list[list[Rollout]]:
        """Return, for each request in order, exactly ``request.n`` rollouts.

        Sample ``j`` of a request with its own ``seed`` draws from a stream fixed by
        that seed, the prefix and ``j``. Requests without one share the stream of
        ``params.seed`` (random when None) per prefix: the k-th sample of a prefix
        in the call uses index k, so repeated prefixes get independent samples.
        """
        return sample_by_steps(self.running(params), requests)

    def running(self, params: SamplingParams) -> RunningBatch:
        """A batch that stays alive across submissions of requests (see :class:`RunningBatch`)."""
        return RunningBatch(self, params)

    def _prefill(self, prefix: tuple[int, ...]) -> tuple[DynamicCache, torch.Tensor]:
        """KV cache of ``prefix`` (batch of one) and the float32 logits of the token after it.

        Whole aligned blocks come from (or go to) the block cache; the tail, at
        least one token, is computed fresh for the logits.
        """
        size = self.prefill_block
        full = (len(prefix) - 1) // size
        blocks = []
        for k in range(full):
            block = self.prefix_cache.get(prefix[: (k + 1) * size])
            if block is None:
                break
            blocks.append(block)
        cache = DynamicCache()  # plain layers everywhere: sliding-window layers keep all columns and rely on the mask
        if blocks:
            for i in range(len(blocks[0])):
                cache.update(
                    torch.cat([b[i][0] for b in blocks], dim=-2), torch.cat([b[i][1] for b in blocks], dim=-2), i
                )
        ids = torch.tensor([prefix], device=self.device)
        for k in range(len(blocks), full):
            lo, hi = k * size, (k + 1) * size
            self.model(input_ids=ids[:, lo:hi], **{self.cache_kw: cache}, use_cache=True, logits_to_keep=1)
            block = [(layer.keys[:, :, lo:hi].clone(), layer.values[:, :, lo:hi].clone()) for layer in cache.layers]
            self.prefix_cache.put(prefix[:hi], block)
        out = self.model(input_ids=ids[:, full * size :], **{self.cache_kw: cache}, use_cache=True, logits_to_keep=1)
        return cache, out.logits[0, -1].float()

    def _admit(self, batch, pending, free, prefills, params) -> _Batch | None:
        """Move up to ``free`` waiting rows into the batch, sampling their first token from their prefix's logits."""
        rows = [pending.popleft() for _ in range(min(free, len(pending)))]
        needed = {r.prefix for r in rows} | ({pending[0].prefix} if pending else set())
        for p in [p for p in prefills if p not in needed]:
            del prefills[p]
        for p in dict.fromkeys(r.prefix for r in rows):
            if p not in prefills:
                prefills[p] = self._prefill(p)
        excluded = [-1 if r.exclude_first is None else r.exclude_first for r in rows]
        exclude = None if max(excluded) < 0 else torch.tensor(excluded, device=self.device)
        tok, lp, slp = sample_tokens_pi(
            torch.stack([prefills[r.prefix][1] for r in rows]), params, [r.gen for r in rows], exclude
        )
        self._record(rows, tok, lp, slp)
        keep = [i for i, r in enumerate(rows) if not r.done]
        live = batch is not None and batch.alive > 0
        if not keep:
            return batch if live else None
        segments = [batch.live_segment()] if live else []
        tok = tok[keep]
        rows = [rows[i] for i in keep]
        start = 0
        for p, n in _runs([r.prefix for r in rows]):
            # Rows of one prefix share its prefill cache: batch dim 1, broadcast on assembly.
            pos = torch.full((n,), len(p), device=self.device)
            layers = [(layer.keys, layer.values) for layer in prefills[p][0].layers]
            segments.append(
                _Segment(rows[start : start + n], layers, torch.zeros_like(pos), tok[start : start + n], pos)
            )
            start += n
        return _assemble(segments)

    def _step(self, batch: _Batch, params) -> _Batch | None:
        """One forward for all rows, then sample, record, and drop finished rows when enough have piled up."""
        width = batch.cache.get_seq_length()
        mask = (torch.arange(width + 1, device=self.device)[None, :] >= batch.pad[:, None]).long()
        out = self.model(
            input_ids=batch.next_tok[:, None],
            attention_mask=mask,
            position_ids=batch.pos[:, None],
            **{self.cache_kw: batch.cache},
            use_cache=True,
        )
        tok, lp, slp = sample_tokens_pi(self._float32(out.logits[:, -1]), params, [r.gen for r in batch.rows])
        self._record(batch.rows, tok, lp, slp)
        batch.next_tok, batch.pos = tok, batch.pos + 1
        alive = batch.alive
        if alive == 0:
            return None
        if alive < self.compact_below * len(batch.rows):
            return _assemble([batch.live_segment()])
        return batch

    def _float32(self, logits: torch.Tensor) -> torch.Tensor:
        """``logits`` as float32, converted into a reused buffer: fresh vocab-sized allocations page-fault every step."""
        if logits.dtype == torch.float32:
            return logits
        rows, vocab = logits.shape
        if self._buf is None or self._buf.shape[0] < rows or self._buf.shape[1] != vocab:
            self._buf = torch.empty(max(rows, self.batch_size), vocab, device=logits.device)
        return self._buf[:rows].copy_(logits)

    def _record(self, rows: list[_Row], tok: torch.Tensor, lp: torch.Tensor, slp: torch.Tensor) -> None:
        """Append each live row's new token; finish rows that ended and store their rollout."""
        for row, t, logprob, pi, nl in zip(rows, tok.tolist(), lp.tolist(), slp.tolist(), self._newline[tok].tolist()):
            if row.done:
                continue
            row.tokens.append(t)
            row.logprobs.append(logprob)
            row.sampling_logprobs.append(pi)
            n = len(row.tokens)
            reason = None
            if t in self.eos_token_ids:
                reason = "eos"
            elif row.stop is not None and (nl or n % self.stop_every == 0 or n >= row.max_new):
                if row.stop(self._decode(row.tokens)):
                    reason = "stop"
            if reason is None and n >= row.max_new:
                reason = "length"
            if reason is not None:
                row.done = True
                row.out.results[row.req][row.index] = Rollout(
                    row.tokens, self._decode(row.tokens), row.logprobs, reason, row.sampling_logprobs
                )
                row.out.remaining -= 1
                self.rollouts_done += 1
                self.tokens_done += n

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)


class RunningBatch:
    """Rows of many submissions of requests decoding together: a batch kept alive across submissions.

    :meth:`add` hands in lists of requests (rows wait in a queue), :meth:`step` does one forward: the
    prefill and first token of waiting rows when enough slots are free (or the batch is empty), else one
    decode step of the batch; it returns the submissions completed by it. Rows that join a running batch
    are placed as in one call (their own left padding and positions), and each row samples from its own
    generator, so what a submission gets back does not depend on when it was added or what else runs,
    in float32 (in bf16 a row's arithmetic depends on its batch). ``HFEngine.sample`` is one submission
    stepped until it is complete.
    """

    def __init__(self, engine: HFEngine, params: SamplingParams):
        self.engine = engine
        self.params = params
        self.greedy = params.temperature < GREEDY_BELOW
        self.pending: deque[_Row] = deque()
        self.batch: _Batch | None = None
        self.prefills: dict[tuple[int, ...], tuple[DynamicCache, torch.Tensor]] = {}
        self._handles = count()
        self._open: list[_Submission] = []

    @property
    def busy(self) -> bool:
        """Whether a submission is still open (its rows waiting, decoding, or its results not yet returned)."""
        return bool(self._open)

    @property
    def rows(self) -> int:
        """Rows decoding now (finished rows not yet dropped included)."""
        return 0 if self.batch is None else len(self.batch.rows)

    def add(self, submissions: Sequence[Sequence[RolloutRequest]]) -> list[int]:
        """Queue ``submissions`` (each a list of requests) as one call would take them all; returns their handles.

        Seeds as in :meth:`HFEngine.sample`, the submissions together counting as one call: requests without
        a seed continue ``params.seed``'s stream of their prefix across them.
        """
        base_seed = self.params.seed if self.params.seed is not None else int(torch.randint(2**62, (1,)).item())
        groups: dict[tuple[int, ...], list[_Row]] = {}
        drawn: dict[tuple[int, ...], int] = {}  # samples of each prefix so far from the base seed
        handles = []
        for requests in submissions:
            out = _Submission(next(self._handles), [[None] * r.n for r in requests], sum(r.n for r in requests))
            self._open.append(out)
            handles.append(out.handle)
            for i, r in enumerate(requests):
                prefix = tuple(int(t) for t in r.prefix_ids)
                if not prefix:
                    raise ValueError("a request's prefix_ids must not be empty")
                if r.seed is not None:  # the request's own stream: its company changes nothing
                    key, first = _digest(r.seed, prefix), 0
                else:  # duplicate prefixes continue the stream, so they get independent samples
                    key, first = _digest(base_seed, prefix), drawn.get(prefix, 0)
                    drawn[prefix] = first + r.n
                group = groups.setdefault(prefix, [])
                for j in range(r.n):
                    gen = None if self.greedy else _generator(key, first + j)
                    group.append(_Row(out, i, j, prefix, r.max_new_tokens, gen, r.stop, r.exclude_first))
        for group in groups.values():  # a prefix's rows are contiguous, so its prefill is kept only briefly
            for row in group:
                if row.max_new <= 0:
                    row.out.results[row.req][row.index] = Rollout([], "", [], "length")
                    row.out.remaining -= 1
                else:
                    self.pending.append(row)
        return handles

    @torch.inference_mode()
    def step(self) -> list[tuple[int, list[list[Rollout]]]]:
        """One forward (none when no row waits or decodes); returns ``(handle, results)`` of each submission now
        complete, in the order they were added, each once."""
        engine, batch, pending = self.engine, self.batch, self.pending
        alive = batch.alive if batch else 0
        free = engine.batch_size - alive
        # Joining copies the cache, so wait until a quarter of the slots are free.
        if pending and (free >= max(1, engine.batch_size // 4) or alive == 0):
            self.batch = engine._admit(batch, pending, free, self.prefills, self.params)
        elif batch is not None:
            self.batch = engine._step(batch, self.params)
        if not pending:
            self.prefills.clear()
        done = [s for s in self._open if s.remaining == 0]
        if done:
            self._open = [s for s in self._open if s.remaining > 0]
        return [(s.handle, s.results) for s in done]  # type: ignore[misc]


class BlockCache:
    """LRU map from a prefix (a whole number of prefill blocks) to its last block's per-layer (keys, values)."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = self.misses = 0
        self._entries: OrderedDict[tuple[int, ...], list[tuple[torch.Tensor, torch.Tensor]]] = OrderedDict()

    def get(self, key: tuple[int, ...]):
        block = self._entries.get(key)
        if block is None:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(key)
        return block

    def put(self, key: tuple[int, ...], block: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        size = sum(k.nbytes + v.nbytes for k, v in block)
        if size > self.max_bytes or key in self._entries:
            return
        self._entries[key] = block
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, old = self._entries.popitem(last=False)
            self.bytes -= sum(k.nbytes + v.nbytes for k, v in old)

    def clear(self) -> None:
        self._entries.clear()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._entries)


def _runs(items: list) -> list[tuple]:
    """Consecutive equal items as (item, count) pairs."""
    out: list[list] = []
    for x in items:
        if out and out[-1][0] == x:
            out[-1][1] += 1
        else:
            out.append([x, 1])
    return [tuple(o) for o in out]


def sample_tokens(logits: torch.Tensor, params: SamplingParams, gens: list) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick one token per row of float32 ``logits`` [rows, vocab] (overwritten); return it and its raw log-prob.

    Order: temperature, top-k, top-p, min-p (as in HF generate). Sampling is by
    inverse CDF with one uniform draw from each row's own generator in ``gens``
    (unused when greedy). The log-prob is under the unmodified logits (before
    temperature and truncation). Public because steered generation
    (:mod:`pts.steering.generate`) samples with it, so sampling options mean
    the same there. :func:`sample_tokens_pi` also returns the sampling log-probs.
    """
    tok, lp, _ = sample_tokens_pi(logits, params, gens)
    return tok, lp


def sampling_distribution(logits: torch.Tensor, params: SamplingParams) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The distribution sampling draws from, for float32 ``logits`` [rows, vocab] (not modified).

    Returns ``(probs, idx)``: unnormalized probabilities after temperature, top-k,
    top-p and min-p (zero outside the support), over the tokens ``idx[:, j]``
    (``idx`` None: over the vocabulary in order). Not for greedy decoding.
    """
    vocab = logits.shape[-1]
    k = params.top_k if 0 < params.top_k < vocab else vocab
    # Temperature does not change the order, so pick the top-k first and scale only those.
    if k < vocab:
        vals, idx = logits.topk(k, dim=-1)
    elif params.top_p < 1.0 or params.min_p > 0.0:
        vals, idx = logits.sort(dim=-1, descending=True)
    else:  # no truncation: sample in vocabulary order, no sort needed
        vals, idx = logits, None
    probs = torch.softmax(vals / params.temperature, dim=-1)
    if params.top_p < 1.0:  # keep the smallest head whose mass reaches top_p
        probs = probs.masked_fill(probs.cumsum(-1) - probs >= params.top_p, 0.0)
    if params.min_p > 0.0:
        probs = probs.masked_fill(probs < params.min_p * probs[:, :1], 0.0)
    return probs, idx


def sample_tokens_pi(
    logits: torch.Tensor, params: SamplingParams, gens: list, exclude: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`sample_tokens`, also returning each picked token's log-probability under the sampling distribution.

    ``exclude`` (one token id per row, -1 for none) removes a token from a row's
    draw after truncation, so the pick is from the sampling distribution
    conditioned on not being it; the returned sampling log-prob is still under
    the whole distribution. Greedy decoding picks the argmax (of the rest, with
    ``exclude``) with sampling log-prob 0 (-inf for a token other than the argmax).
    """
    rows = logits.shape[0]
    if params.temperature < GREEDY_BELOW:
        if exclude is not None:
            masked = logits.clone()
            hit = exclude >= 0
            masked[hit.nonzero()[:, 0], exclude[hit]] = float("-inf")
            tok = masked.argmax(dim=-1)
        else:
            tok = logits.argmax(dim=-1)
        spi = torch.where(tok == logits.argmax(dim=-1), 0.0, float("-inf")).to(logits)
    else:
        probs, idx = sampling_distribution(logits, params)
        total = probs.sum(-1)
        draw = probs
        if exclude is not None:
            ids = idx if idx is not None else torch.arange(probs.shape[-1], device=probs.device)[None, :]
            draw = probs.masked_fill(ids == exclude[:, None], 0.0)
        cdf = draw.cumsum(-1)
        u = torch.stack([torch.rand((), generator=g) for g in gens]).to(cdf) * cdf[:, -1]
        choice = (cdf < u[:, None]).sum(-1).clamp(max=probs.shape[-1] - 1)
        tok = choice if idx is None else idx.gather(1, choice[:, None])[:, 0]
        spi = (probs.gather(1, choice[:, None])[:, 0] / total).log()
        if exclude is not None and bool((cdf[:, -1] <= 0).any()):
            # The excluded token held all of the mass: take the likeliest other token (its pi is 0).
            empty = (cdf[:, -1] <= 0).nonzero()[:, 0]
            masked = logits[empty].clone()
            masked[torch.arange(len(empty)), exclude[empty]] = float("-inf")
            tok[empty] = masked.argmax(dim=-1)
            spi[empty] = float("-inf")
    picked = logits.gather(1, tok[:, None])[:, 0]
    top = logits.max(dim=-1).values
    # log-softmax of the picked token, in place: no second vocab-sized tensor per step
    lse = logits.sub_(top[:, None]).exp_().sum(-1).log_() + top
    assert spi.shape[0] == rows
    return tok, picked - lse, spi


def _digest(base_seed: int, prefix: tuple[int, ...]) -> bytes:
    return hashlib.blake2b(f"{base_seed}|{','.join(map(str, prefix))}".encode(), digest_size=16).digest()


def _generator(key: bytes, k: int) -> torch.Generator:
    """The generator of the ``k``-th sample (in this call) of the prefix whose digest is ``key``."""
    seed = hashlib.blake2b(key + k.to_bytes(8, "little"), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(seed, "little") & (2**63 - 1))


def eos_ids(model, tokenizer) -> set[int]:
    """Token ids that end a reply: the generation config's (else the model config's) EOS ids and the tokenizer's."""
    return eos_token_ids((getattr(model, "generation_config", None), getattr(model, "config", None)), tokenizer)


def _newline_tokens(tokenizer, size: int) -> torch.Tensor:
    """Bool per vocabulary id: may the token's text hold a newline (a good moment to run stop tests).

    Reads raw token strings: a literal newline, byte-level BPE's "Ċ", or SentencePiece's "<0x0A>".
    """
    flags = torch.zeros(max(size, len(tokenizer)), dtype=torch.bool)
    for token, i in tokenizer.get_vocab().items():
        if "\n" in token or "\u010a" in token or "<0x0A>" in token:
            flags[i] = True
    return flags


def create(model: str, *, device: str = "auto", dtype: str = "auto", batch_size: int = 64) -> HFEngine:
    """The ``hf`` entry of :data:`pts.engines.ENGINES`: load ``model`` (any pts model spec) and wrap it."""
    from pts.models import load_model

    return HFEngine.from_loaded(load_model(model, device=device, dtype=dtype), batch_size=batch_size)
