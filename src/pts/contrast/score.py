"""Per-token contrastive-estimation scores of ``pts contrast``.

For each response token ``y_t``, from one forward pass of the positive and the
negative model over the trajectory,

    s_t = softmax_v((1 + beta) log p_pos(v | x, y_<t) - beta log p_neg(v | x, y_<t))[y_t]

(:func:`contrastive_scores`); :class:`ContrastiveScorer` runs the models,
:func:`load_scorer` builds one from two model specs and :func:`score_record` is
the row ``scores.jsonl`` holds.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any

from pts.contrast.trajectories import SCHEMA_VERSION, Trajectory
from pts.errors import PTSError
from pts.records import stable_id

# Logit rows (positions x batch) per scoring forward pass: bounds memory at about rows * vocab * 4 bytes.
SCORE_ROWS = 2048


def contrastive_scores(logp_pos, logp_neg, token_ids, beta: float = 1.0):
    """Contrastive-estimation score of each actual token.

    ``logp_pos`` and ``logp_neg`` are log-softmax next-token distributions
    ``[T, V]`` of the positive and negative model at the ``T`` positions that
    predict ``token_ids`` (length ``T``). Returns a float tensor ``[T]`` with
    ``s_t = softmax((1 + beta) * logp_pos[t] - beta * logp_neg[t])[token_ids[t]]``,
    each in (0, 1). ``beta = 0`` gives ``p_pos(token)``.
    """
    import torch

    lp_pos = torch.as_tensor(logp_pos, dtype=torch.float32)
    lp_neg = torch.as_tensor(logp_neg, dtype=torch.float32)
    ids = torch.as_tensor(token_ids, dtype=torch.long, device=lp_pos.device)
    if lp_pos.shape != lp_neg.shape or lp_pos.dim() != 2 or ids.shape != lp_pos.shape[:1]:
        raise ValueError(
            f"expected logp_pos, logp_neg [T, V] and token_ids [T], got {tuple(lp_pos.shape)}, "
            f"{tuple(lp_neg.shape)}, {tuple(ids.shape)}"
        )
    z = (1.0 + beta) * lp_pos - beta * lp_neg
    picked = z.gather(-1, ids[:, None])[:, 0]
    return (picked - torch.logsumexp(z, dim=-1)).exp()


class ContrastiveScorer:
    """Scores trajectories with a positive and a negative model.

    Build it with :meth:`from_adapters` (two adapters on one base model in
    memory, switched per pass) or :meth:`from_models` (two separate models).
    """

    def __init__(self, pos, neg, *, vocab_size: int, adapters: tuple[str, str] | None = None):
        self.pos, self.neg, self.adapters = pos, neg, adapters
        self.vocab_size = vocab_size
        self.device = next(pos.parameters()).device

    @classmethod
    def from_adapters(cls, base_model, positive: str, negative: str) -> ContrastiveScorer:
        """Both adapters on ``base_model`` (a plain model): one copy of the base weights."""
        from pts.adapters import attach_adapter

        model = attach_adapter(base_model, positive, "positive")
        model = attach_adapter(model, negative, "negative")
        model.eval().requires_grad_(False)
        return cls(model, model, vocab_size=_vocab_size(model), adapters=("positive", "negative"))

    @classmethod
    def from_models(cls, positive_model, negative_model) -> ContrastiveScorer:
        size_pos, size_neg = _vocab_size(positive_model), _vocab_size(negative_model)
        if size_pos != size_neg:
            raise PTSError(f"the positive and negative models have different vocabularies ({size_pos} vs {size_neg})")
        return cls(positive_model, negative_model, vocab_size=size_pos)

    def _model(self, which: int):
        model = self.pos if which == 0 else self.neg
        if self.adapters is not None:
            model.set_adapter(self.adapters[which])
        return model

    def _prompt_kv(self, which: int, prompt: Sequence[int]):
        """Keys/values of ``prompt[:-1]`` (batch of one) under model ``which``, or None for a one-token prompt."""
        import torch
        from transformers import DynamicCache

        from pts.engines.hf import cache_keyword

        if len(prompt) < 2:
            return None
        cache = DynamicCache()
        with torch.inference_mode():
            model = self._model(which)
            model(
                input_ids=torch.tensor([list(prompt[:-1])], device=self.device),
                **{cache_keyword(model): cache},
                use_cache=True,
                logits_to_keep=1,
            )
        return [(layer.keys, layer.values) for layer in cache.layers]

    def _full_logits(self, which: int, rows: Sequence[Trajectory]):
        """Logits at the response positions of whole left-padded sequences, and each row's response offset."""
        import torch

        seqs = [list(t.prompt_ids) + list(t.response_ids) for t in rows]
        width = max(len(s) for s in seqs)
        keep = max(len(t.response_ids) for t in rows) + 1
        ids = torch.tensor([[0] * (width - len(s)) + s for s in seqs], device=self.device)
        mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in seqs], device=self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            logits = self._model(which)(
                input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False, logits_to_keep=keep
            ).logits
        return logits, [keep - 1 - len(t.response_ids) for t in rows]

    def _segment_logits(self, which: int, kv, ids, mask, start: int):
        """Logits of every position of ``ids`` (right-padded rows) after the shared prompt keys/values ``kv``."""
        import torch
        from transformers import DynamicCache

        from pts.engines.hf import cache_keyword

        rows, width = ids.shape
        cache = None
        if kv is not None:
            cache = DynamicCache()  # plain layers: sliding-window layers keep every column and rely on the mask
            for i, (k, v) in enumerate(kv):
                cache.update(k.expand(rows, -1, -1, -1), v.expand(rows, -1, -1, -1), i)
            mask = torch.cat([mask.new_ones(rows, start), mask], dim=1)
        positions = torch.arange(start, start + width, device=self.device).expand(rows, -1)
        model = self._model(which)
        with torch.inference_mode():
            return model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=positions,
                **{cache_keyword(model): cache},
                use_cache=cache is not None,
            ).logits

    def score(
        self,
        trajectories: Sequence[Trajectory],
        beta: float = 1.0,
        batch_size: int = 8,
        progress: bool = False,
        share_prompts: bool = True,
    ) -> list[dict[str, Any]]:
        """For each trajectory: ``{"scores", "logp_pos", "logp_neg"}`` per response token (lists of floats).

        Trajectories of one prompt are scored together: the prompt (but its last
        token) is run once per model and its keys/values are shared by the
        group's rows, which carry the prompt's last token and the response,
        right-padded (padding comes after a row's tokens, so it changes nothing).
        Trajectories alone with their prompt (all of them with ``share_prompts``
        False) are batched whole, left-padded with per-row positions.
        """
        import torch

        for t in trajectories:
            bad = [i for i in (*t.prompt_ids, *t.response_ids) if not 0 <= i < self.vocab_size]
            if bad:
                raise PTSError(
                    f"trajectory {t.id}: token id {bad[0]} is outside the models' vocabulary "
                    f"({self.vocab_size}); were the trajectories made with another tokenizer?"
                )
            if not t.prompt_ids:
                raise PTSError(f"trajectory {t.id} has no prompt ids")
        out: list[dict[str, Any] | None] = [None] * len(trajectories)
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, t in enumerate(trajectories):
            if t.response_ids:
                groups.setdefault(tuple(t.prompt_ids), []).append(i)
            else:
                out[i] = {"scores": [], "logp_pos": [], "logp_neg": []}
        batches: list[tuple[bool, list[int]]] = []  # (shares a prompt, trajectory indices)

        def split(members: list[int], shared: bool) -> None:
            current: list[int] = []
            for i in members:
                keep = len(trajectories[i].response_ids) + 1
                if current and (len(current) >= batch_size or (len(current) + 1) * keep > SCORE_ROWS):
                    batches.append((shared, current))
                    current = []
                current.append(i)
            batches.append((shared, current))

        singles = [i for m in groups.values() if len(m) == 1 or not share_prompts for i in m]
        for members in groups.values():
            if len(members) > 1 and share_prompts:
                split(sorted(members, key=lambda i: len(trajectories[i].response_ids)), True)
        if singles:
            split(
                sorted(singles, key=lambda i: len(trajectories[i].prompt_ids) + len(trajectories[i].response_ids)),
                False,
            )
        from tqdm.auto import tqdm

        kv_prompt, kv = None, (None, None)  # the last prompt's keys/values per model: a group's batches are adjacent
        for shared, batch in tqdm(
            batches, desc="scoring", unit="batch", disable=not progress, file=sys.stderr, dynamic_ncols=True
        ):
            rows = [trajectories[i] for i in batch]
            if shared:
                prompt = tuple(rows[0].prompt_ids)
                if prompt != kv_prompt:
                    kv_prompt, kv = prompt, (None, None)  # drop the old keys/values before computing new ones
                    kv = (self._prompt_kv(0, prompt), self._prompt_kv(1, prompt))
                width = 1 + max(len(t.response_ids) for t in rows)
                seqs = [[prompt[-1], *t.response_ids] for t in rows]
                ids = torch.tensor([s + [0] * (width - len(s)) for s in seqs], device=self.device)
                mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs], device=self.device)
                logits = [self._segment_logits(w, kv[w], ids, mask, len(prompt) - 1) for w in (0, 1)]
                offsets = [0] * len(rows)
            else:
                (lp, offsets), (ln, _) = self._full_logits(0, rows), self._full_logits(1, rows)
                logits = [lp, ln]
            for j, (i, t) in enumerate(zip(batch, rows)):
                n, lo = len(t.response_ids), offsets[j]
                lp_pos = torch.log_softmax(logits[0][j, lo : lo + n].float(), dim=-1)
                lp_neg = torch.log_softmax(logits[1][j, lo : lo + n].float(), dim=-1)
                target = torch.tensor(t.response_ids, device=lp_pos.device)
                s = contrastive_scores(lp_pos, lp_neg, target, beta)
                out[i] = {
                    "scores": s.tolist(),
                    "logp_pos": lp_pos.gather(-1, target[:, None])[:, 0].tolist(),
                    "logp_neg": lp_neg.gather(-1, target[:, None])[:, 0].tolist(),
                }
        return out  # type: ignore[return-value]


def _vocab_size(model) -> int:
    head = model.get_output_embeddings()
    return int(head.weight.shape[0]) if head is not None else int(model.config.vocab_size)


def load_scorer(positive: str, negative: str, base=None, *, device: str = "auto", dtype: str = "auto"):
    """A scorer for the two model specs, sharing one base model when both are adapters on the same base.

    ``base`` is ``(model, tokenizer, spec)`` of a base model already in memory
    (reused when the adapters' base is ``spec``), or None. Returns ``(scorer,
    base)``: the scorer and the ``(model, tokenizer, spec)`` whose tokenizer
    decodes the scored tokens.
    """
    from pts.adapters import adapter_base, is_adapter_dir, load_model_or_adapter

    if is_adapter_dir(positive) and is_adapter_dir(negative):
        base_pos, base_neg = adapter_base(positive), adapter_base(negative)
        if base_pos == base_neg:
            if base is None or base[2] != base_pos:
                loaded = load_model_or_adapter(base_pos, device=device, dtype=dtype)
                base = (loaded.model, loaded.tokenizer, base_pos)
            return ContrastiveScorer.from_adapters(base[0], positive, negative), base
    pos = load_model_or_adapter(positive, device=device, dtype=dtype)
    neg = load_model_or_adapter(negative, device=device, dtype=dtype)
    return ContrastiveScorer.from_models(pos.model, neg.model), (pos.model, pos.tokenizer, positive)


def score_record(
    t: Trajectory, r: dict[str, Any], tok, *, beta: float, model: str, positive: str, negative: str
) -> dict[str, Any]:
    """The ``scores.jsonl`` row of trajectory ``t`` scored as ``r`` (one of :meth:`ContrastiveScorer.score`'s
    results); ``tok`` decodes the tokens (None: no ``tokens``), ``model`` stands in for an unknown ``model_id``."""
    scores = r["scores"]
    tokens = [tok.decode([i], skip_special_tokens=False) for i in t.response_ids] if tok is not None else None
    low = min(range(len(scores)), key=scores.__getitem__) if scores else None
    return {
        "kind": "contrastive_scores",
        "schema_version": SCHEMA_VERSION,
        "id": stable_id("contrast", t.id, positive, negative, beta),
        "trajectory_id": t.id,
        "query": t.query,
        "answer": t.answer,
        "correct": t.correct,
        "answer_key": t.answer_key,
        "dataset_id": t.dataset_id,
        "dataset_item_id": t.dataset_item_id,
        "task_type": t.task_type,
        "sample_index": t.sample_index,
        "prompt_ids": t.prompt_ids,
        "response_ids": t.response_ids,
        "response": t.response,
        "tokens": tokens,
        "scores": scores,
        "logp_pos": r["logp_pos"],
        "logp_neg": r["logp_neg"],
        "beta": beta,
        "min_score_position": low,
        "min_score_token": tokens[low] if tokens and low is not None else None,
        "min_score": scores[low] if low is not None else None,
        "model_id": t.model_id or model,
        "positive_model": positive,
        "negative_model": negative,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
