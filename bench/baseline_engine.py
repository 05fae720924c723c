"""The original PTS tool's way of sampling, as an :class:`Engine`: the baseline of ``bench/end_to_end.py``.

The original tool (github.com/codelion/pts, ``pts/core.py``,
``PivotalTokenSearcher.estimate_success_probability``) estimates p(success | prefix) by

* decoding the prefix to text and tokenizing that text again (``tokenizer(prompt + prefix)``),
* calling HF ``model.generate`` on that one prefix with ``do_sample=True``,
  ``num_return_sequences=batch_size`` (5) and the search's temperature/top-p/top-k/min-p,
  repeating the call until it has ``num_samples`` completions,
* generating up to ``max_new_tokens`` (a sequence ends only at EOS: no early stop when
  the answer is written),
* one prefix per call: prefixes are never batched together.

:class:`OriginalStyleEngine` does exactly that per request and ignores
``RolloutRequest.stop``, while still returning the :class:`Rollout` contract (continuation
token ids, their text, raw-logit log-probs recorded during ``generate``, finish reason), so the
pts search runs on it unchanged. It exists to measure pts against; do not use it for real
runs.

Two deliberate departures from the original code, both in the baseline's favour or neutral:
the re-encoded text already holds the chat template's special tokens, so it is tokenized with
``add_special_tokens=False`` (a tokenizer that adds BOS would otherwise get two); and the
original's habit of prepending the prompt a second time to prefixes that already contain it
(``prompt + decode(prompt_ids + prefix)`` in ``subdivide_sequence``) is not reproduced.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from pts.engines.base import GREEDY_BELOW, Rollout, RolloutRequest, SamplingParams
from pts.engines.hf import eos_ids  # the same end-of-sequence ids as the HF engine


class OriginalStyleEngine:
    """Samples like the original PTS tool: text prefixes re-encoded, HF ``generate``, 5 sequences per call.

    ``model``/``tokenizer`` are a Hugging Face causal LM and its tokenizer; ``batch_size``
    is the original's ``--batch-size`` (``num_return_sequences`` per ``generate`` call, 5).
    Each request is seeded with ``torch.manual_seed(request.seed)`` before its calls, so a
    request's rollouts repeat run to run. Requests without a seed draw from one stream
    seeded once per call with ``params.seed`` (unseeded when that is None too).
    ``calls`` counts ``generate`` calls.
    """

    def __init__(self, model, tokenizer, model_id: str, batch_size: int = 5) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.model = model
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.batch_size = batch_size
        self.device = next(model.parameters()).device
        self.eos_token_ids = frozenset(eos_ids(model, tokenizer))
        self.calls = 0
        pad = tokenizer.pad_token_id
        self.pad_token_id = pad if pad is not None else min(self.eos_token_ids)  # the original: pad = eos

    @classmethod
    def from_loaded(cls, loaded, batch_size: int = 5) -> OriginalStyleEngine:
        """Build the engine from a :class:`pts.models.LoadedModel`."""
        return cls(loaded.model, loaded.tokenizer, loaded.model_id, batch_size=batch_size)

    def reencode(self, prefix_ids: Sequence[int]) -> list[int]:
        """The prefix as the original tool feeds it: decoded to text (special tokens kept), tokenized again."""
        text = self.tokenizer.decode(list(prefix_ids), skip_special_tokens=False)
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    @torch.inference_mode()
    def sample(self, requests: Sequence[RolloutRequest], params: SamplingParams) -> list[list[Rollout]]:
        """Return, for each request in order, exactly ``request.n`` rollouts, one request at a time."""
        if params.seed is not None:
            torch.manual_seed(params.seed)
        out: list[list[Rollout]] = []
        for req in requests:
            if not req.prefix_ids:
                raise ValueError("a request's prefix_ids must not be empty")
            if req.seed is not None:
                torch.manual_seed(req.seed)
            out.append(self._sample_one(req, params))
        return out

    def _sample_one(self, req: RolloutRequest, params: SamplingParams) -> list[Rollout]:
        if req.n <= 0:
            return []
        if req.max_new_tokens <= 0:
            return [Rollout([], "", [], "length") for _ in range(req.n)]
        ids = torch.tensor([self.reencode(req.prefix_ids)], device=self.device)
        greedy = params.temperature < GREEDY_BELOW
        rollouts: list[Rollout] = []
        while len(rollouts) < req.n:
            # generate refuses several return sequences without sampling; greedy rows are all the same anyway
            k = 1 if greedy else min(self.batch_size, req.n - len(rollouts))
            rollouts += self._generate(ids, k, req.max_new_tokens, params, greedy)
        if greedy:
            rollouts = [
                Rollout(list(r.token_ids), r.text, list(r.logprobs), r.finish_reason)
                for r in rollouts[:1]
                for _ in range(req.n)
            ]
        return rollouts[: req.n]

    def _generate(self, ids: torch.Tensor, k: int, max_new: int, params: SamplingParams, greedy: bool) -> list[Rollout]:
        kwargs = {}
        if not greedy:
            kwargs = {"temperature": params.temperature, "top_p": params.top_p, "top_k": params.top_k}
            if params.min_p > 0:
                kwargs["min_p"] = params.min_p
        picker = _PickedLogprobs()
        self.calls += 1
        seqs = self.model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            do_sample=not greedy,
            num_return_sequences=k,
            max_new_tokens=max_new,
            eos_token_id=sorted(self.eos_token_ids),
            pad_token_id=self.pad_token_id,
            logits_processor=LogitsProcessorList([picker]),
            **kwargs,
        )
        new = seqs[:, ids.shape[1] :]
        picked = picker.finish(new).tolist()
        rows: list[Rollout] = []
        for seq, lps in zip(new.tolist(), picked):
            end = next((j + 1 for j, t in enumerate(seq) if t in self.eos_token_ids), None)
            reason = "eos" if end is not None else "length"
            end = end if end is not None else len(seq)
            tokens = seq[:end]
            rows.append(Rollout(tokens, self.tokenizer.decode(tokens, skip_special_tokens=True), lps[:end], reason))
        return rows


class _PickedLogprobs(LogitsProcessor):
    """Records log p(sampled token) under the raw logits, one step at a time, and changes nothing.

    ``generate`` runs user processors before its temperature/top-k/top-p warpers, so this one
    sees the model's float32 logits (the generation config of the models pts loads adds no
    processor ahead of it). The token sampled from a step's logits is only known at the next
    call (the last column of ``input_ids``), so one step's log-softmax is kept at a time, unlike
    ``output_logits=True``, which holds every step's logits until the end (hundreds of MB for
    5 x 512 steps over a 49k vocabulary: more memory than the original tool used).
    """

    def __init__(self) -> None:
        self.prev: torch.Tensor | None = None
        self.picked: list[torch.Tensor] = []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.prev is not None:
            self.picked.append(self.prev.gather(1, input_ids[:, -1:])[:, 0])
        self.prev = torch.log_softmax(scores.float(), dim=-1)
        return scores

    def finish(self, new_tokens: torch.Tensor) -> torch.Tensor:
        """[rows, steps] log-probs of ``new_tokens`` (the generated columns of the output sequences)."""
        if self.prev is not None:
            self.picked.append(self.prev.gather(1, new_tokens[:, -1:].to(self.prev.device))[:, 0])
            self.prev = None
        if len(self.picked) != new_tokens.shape[1]:
            raise RuntimeError(f"recorded {len(self.picked)} log-probs for {new_tokens.shape[1]} generated tokens")
        if not self.picked:
            return torch.zeros(new_tokens.shape[0], 0)
        return torch.stack(self.picked, dim=1).cpu()
