"""Contrastive estimation of critical tokens (Lin et al., "Critical Tokens Matter", arXiv 2411.19943).

Three phases, each usable alone:

1. **Trajectories and training sets.** Sample ``num_trajectories`` responses
   per query and judge them with the task's oracle (or read them from a JSONL
   file). Positives are correct trajectories; negatives are incorrect ones whose
   final answer is among the most frequent wrong answers, selected as in the
   authors' released code: wrong answers in decreasing frequency, one
   trajectory each, until their cumulative share of the wrong responses
   reaches ``negative_top_p`` (0.5); after the most frequent one, answers seen
   only once are skipped; responses without an extractable answer, or cut off
   by the token budget (no final answer), are never negatives. Positives: ``positives_per_query`` correct trajectories per
   query (1 as in the authors' code; 0 takes all).
2. **A positive and a negative model**: LoRA adapters fine-tuned with TRL's
   ``SFTTrainer`` on the exact token ids of the trajectories, with the loss on
   the response tokens only (``completion_only_loss``).
3. **Per-token scores**: for each response token ``y_t``,

       s_t = softmax_v((1 + beta) log p_pos(v | x, y_<t) - beta log p_neg(v | x, y_<t))[y_t]

   from one forward pass of each model over the trajectory. A low ``s_t`` on an
   incorrect trajectory marks a token the negative model explains better than
   the positive one: a critical-token candidate. cDPO weights the rejected
   trajectory's tokens by ``1 - s_t`` (``pts train --loss cdpo``). The
   authors' code applies the softmax to ``2 * logits_pos - logits_neg``; that
   is the same number (log-softmax and logits differ by a per-position
   constant, which the softmax removes).
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from pts import options
from pts.errors import PTSError
from pts.records import stable_id
from pts.jobs.run import DEFAULT_MODEL
from pts.tasks.sources import DEFAULT_DATASET

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
TRAJECTORIES_FILE = "trajectories.jsonl"
POSITIVE_FILE = "positive.jsonl"
NEGATIVE_FILE = "negative.jsonl"
SCORES_FILE = "scores.jsonl"
POSITIVE_ADAPTER = "positive-adapter"
NEGATIVE_ADAPTER = "negative-adapter"
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
        raise ValueError(f"expected logp_pos, logp_neg [T, V] and token_ids [T], got {tuple(lp_pos.shape)}, "
                         f"{tuple(lp_neg.shape)}, {tuple(ids.shape)}")
    z = (1.0 + beta) * lp_pos - beta * lp_neg
    picked = z.gather(-1, ids[:, None])[:, 0]
    return (picked - torch.logsumexp(z, dim=-1)).exp()


@dataclass
class Trajectory:
    """One sampled response to a query, with the oracle's verdict and the final answer it read."""

    query: str
    answer: str
    prompt_ids: list[int]
    response_ids: list[int]
    response: str
    correct: bool
    answer_key: str | None
    dataset_id: str
    dataset_item_id: str
    task_type: str = ""
    oracle: str = ""
    sample_index: int = 0
    finish_reason: str = ""
    model_id: str = ""
    id: str = ""

    def __post_init__(self) -> None:
        if not self.id:
            self.id = stable_id("trajectory", self.dataset_id, self.dataset_item_id, self.prompt_ids,
                                self.response_ids)

    @property
    def group(self) -> tuple[str, str]:
        return self.dataset_id, self.dataset_item_id

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "trajectory", "schema_version": SCHEMA_VERSION, **asdict(self)}


def trajectories_from_eval(result) -> list[Trajectory]:
    """Trajectories from a :class:`pts.evaluate.EvalResult` (every sample of every query)."""
    out = []
    for q in result.queries:
        t = q.task
        for s in q.samples:
            out.append(Trajectory(t.query, t.answer, list(q.prompt_ids), list(s.response_ids), s.response,
                                  s.correct, s.extracted_answer, t.dataset_id, t.item_id, t.task_type,
                                  getattr(t.oracle, "name", ""), s.sample_index, s.finish_reason, result.model_id))
    return out


def select_training_sets(trajectories: Sequence[Trajectory], *, positives_per_query: int = 1,
                         negative_top_p: float = 0.5, seed: int = 42) -> tuple[list[Trajectory], list[Trajectory]]:
    """Positive and negative training trajectories, per query (see the module docstring for the rule).

    Which trajectory represents an answer is drawn with a seed derived from
    ``seed`` and the query, so the selection is reproducible. Returns
    ``(positives, negatives)`` in query order.
    """
    groups: dict[tuple[str, str], list[Trajectory]] = {}
    for t in trajectories:
        groups.setdefault(t.group, []).append(t)
    positives, negatives = [], []
    for key, items in groups.items():
        items = list(items)
        random.Random(stable_id(seed, "select", *key)).shuffle(items)
        correct = _distinct([t for t in items if t.correct])
        positives += correct if positives_per_query == 0 else correct[:positives_per_query]
        wrong: dict[str, list[Trajectory]] = {}
        for t in items:
            if not t.correct and t.answer_key and t.finish_reason != "length":
                wrong.setdefault(t.answer_key, []).append(t)
        total = sum(len(v) for v in wrong.values())
        need = math.ceil(negative_top_p * total - 1e-9)
        first = True
        for _, group in sorted(wrong.items(), key=lambda kv: -len(kv[1])):  # stable: ties keep shuffled order
            if need <= 0:
                break
            if first or len(group) > 1:
                negatives.append(group[0])
                need -= len(group)
                first = False
    return positives, negatives


def _distinct(items: list[Trajectory]) -> list[Trajectory]:
    seen, out = set(), []
    for t in items:
        if tuple(t.response_ids) not in seen:
            seen.add(tuple(t.response_ids))
            out.append(t)
    return out


@dataclass
class LoraSettings:
    """LoRA fine-tuning of one model (defaults: the authors' settings for the CE models, one epoch)."""

    r: int = 8
    alpha: int = 16
    dropout: float = 0.1
    targets: tuple[str, ...] = ("gate_proj", "up_proj", "down_proj")
    learning_rate: float = 3e-4
    epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 4
    gradient_accumulation_steps: int = 1
    warmup_steps: float = 0  # steps, or a ratio of all steps when below 1
    lr_scheduler: str = "cosine"
    max_length: int | None = None
    gradient_checkpointing: bool = False

    def validate(self) -> None:
        options.finite(self)
        if self.r < 1:
            raise PTSError(f"--lora-r must be at least 1, got {self.r}")
        if self.alpha <= 0:
            raise PTSError(f"--lora-alpha must be positive, got {self.alpha}")
        if not 0.0 <= self.dropout < 1.0:
            raise PTSError(f"--lora-dropout must be in [0, 1), got {self.dropout}")
        if not self.targets or any(not t for t in self.targets):
            raise PTSError("--lora-targets needs at least one module name (or all-linear)")
        if self.learning_rate <= 0:
            raise PTSError(f"--learning-rate must be positive, got {self.learning_rate}")
        if self.epochs <= 0:
            raise PTSError(f"--epochs must be positive, got {self.epochs}")
        if self.max_steps == 0 or self.max_steps < -1:
            raise PTSError(f"--max-steps must be at least 1 (or -1 for --epochs), got {self.max_steps}")
        options.at_least_one(self, "batch_size", "gradient_accumulation_steps")
        if self.warmup_steps < 0 or (self.warmup_steps >= 1 and self.warmup_steps != int(self.warmup_steps)):
            raise PTSError(f"--warmup-steps must be a step count or a ratio in [0, 1), got {self.warmup_steps}")
        if self.max_length is not None and self.max_length < 2:
            raise PTSError(f"--max-length must be at least 2, got {self.max_length}")

    def peft_config(self):
        from peft import LoraConfig

        targets: Any = "all-linear" if self.targets == ("all-linear",) else list(self.targets)
        return LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout, target_modules=targets,
                          bias="none", task_type="CAUSAL_LM")


def train_lora(model, tokenizer, examples: Sequence[Trajectory], output_dir: str | os.PathLike,
               settings: LoraSettings, *, base_model: str, role: str, seed: int = 42, progress: bool = False):
    """Fine-tune a LoRA adapter on ``examples`` (loss on response tokens only) and save it to ``output_dir``.

    ``model`` is a plain causal LM (left unchanged: the adapter is removed from
    it afterwards) and must be the model ``base_model`` (a pts model spec,
    recorded in the adapter's ``pts_train.json``) names. Training uses TRL's
    ``SFTTrainer`` on pre-tokenized rows (``input_ids`` = prompt + response ids,
    ``completion_mask`` on the response), so the model learns exactly the
    sampled tokens. The directory is written atomically. Returns
    ``(model, stats)``: the model without the adapter and
    ``{"examples", "steps", "train_loss", "seconds"}``.
    """
    from pts.train.adapter import TRAIN_INFO
    from pts.train.progress import datasets_bars

    if not examples:
        raise PTSError(f"no {role} trajectories to train the {role} model on")
    rows = [{"input_ids": list(t.prompt_ids) + list(t.response_ids),
             "completion_mask": [0] * len(t.prompt_ids) + [1] * len(t.response_ids)} for t in examples]
    target = Path(output_dir)
    work = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=target.parent))
    use_cache = getattr(model.config, "use_cache", None)
    start = time.perf_counter()
    try:
        with warnings.catch_warnings(), datasets_bars(progress):
            # transformers 5 renamed gradient_checkpointing; TRL still sets the old name on every config.
            warnings.filterwarnings("ignore", message=r".*gradient_checkpointing.*", category=FutureWarning)
            trainer, output = _fit(model, tokenizer, rows, settings, work, seed, progress)
        peft_model = trainer.model
        adapter_dir = work / "adapter"
        peft_model.save_pretrained(str(adapter_dir))
        tokenizer.save_pretrained(str(adapter_dir))
        stats = {"examples": len(rows), "steps": int(trainer.state.global_step),
                 "train_loss": float(output.training_loss), "seconds": time.perf_counter() - start}
        info = {"base_model": base_model, "method": "sft-lora", "role": role, "purpose": "contrastive estimation",
                "lora": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(settings).items()},
                "seed": seed, **stats}
        (adapter_dir / TRAIN_INFO).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        for f in (adapter_dir, *adapter_dir.iterdir()):
            f.chmod(0o755 if f.is_dir() else 0o644)  # mkdtemp's 0700 would survive the rename
        if target.exists():
            shutil.rmtree(target)
        os.replace(adapter_dir, target)
        model = peft_model.unload()
    except ValueError as e:
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "Target module" in text or "target_modules" in text:
            raise PTSError(f"--lora-targets: {text}") from None
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if use_cache is not None:
        model.config.use_cache = use_cache  # gradient checkpointing turns the cache off
    model.eval().requires_grad_(False)
    return model, stats


def _fit(model, tokenizer, rows, settings: LoraSettings, work: Path, seed: int, progress: bool):
    """Build TRL's SFTTrainer on pre-tokenized rows and train; returns (trainer, train output)."""
    import torch
    from datasets import Dataset
    from transformers.trainer_callback import PrinterCallback
    from trl import SFTConfig, SFTTrainer

    param = next(model.parameters())
    on_gpu = param.device.type == "cuda"
    warmup = int(settings.warmup_steps) if settings.warmup_steps >= 1 else settings.warmup_steps
    args = SFTConfig(
        output_dir=str(work / "trainer"), per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation_steps, learning_rate=settings.learning_rate,
        num_train_epochs=settings.epochs, max_steps=settings.max_steps, lr_scheduler_type=settings.lr_scheduler,
        warmup_steps=warmup, max_length=settings.max_length, completion_only_loss=True,
        gradient_checkpointing=settings.gradient_checkpointing, logging_steps=1, save_strategy="no",
        report_to="none", seed=seed, data_seed=seed, disable_tqdm=not progress,
        use_cpu=param.device.type == "cpu", dataloader_num_workers=0,
        # Mixed precision only where it is native; on CPU the model trains in the dtype it was loaded in.
        bf16=on_gpu and param.dtype == torch.bfloat16, fp16=on_gpu and param.dtype == torch.float16,
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows),
                         processing_class=tokenizer, peft_config=settings.peft_config())
    if not progress:
        trainer.remove_callback(PrinterCallback)
    return trainer, trainer.train()


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
        from pts.evaluate import attach_adapter

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
            model(input_ids=torch.tensor([list(prompt[:-1])], device=self.device),
                  **{cache_keyword(model): cache}, use_cache=True, logits_to_keep=1)
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
            logits = self._model(which)(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False,
                                        logits_to_keep=keep).logits
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
            return model(input_ids=ids, attention_mask=mask, position_ids=positions,
                         **{cache_keyword(model): cache}, use_cache=cache is not None).logits

    def score(self, trajectories: Sequence[Trajectory], beta: float = 1.0, batch_size: int = 8,
              progress: bool = False, share_prompts: bool = True) -> list[dict[str, Any]]:
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
                raise PTSError(f"trajectory {t.id}: token id {bad[0]} is outside the models' vocabulary "
                               f"({self.vocab_size}); were the trajectories made with another tokenizer?")
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
            split(sorted(singles, key=lambda i: len(trajectories[i].prompt_ids) + len(trajectories[i].response_ids)),
                  False)
        from tqdm.auto import tqdm

        kv_prompt, kv = None, (None, None)  # the last prompt's keys/values per model: a group's batches are adjacent
        for shared, batch in tqdm(batches, desc="scoring", unit="batch", disable=not progress, file=sys.stderr,
                                  dynamic_ncols=True):
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
                out[i] = {"scores": s.tolist(),
                          "logp_pos": lp_pos.gather(-1, target[:, None])[:, 0].tolist(),
                          "logp_neg": lp_neg.gather(-1, target[:, None])[:, 0].tolist()}
        return out  # type: ignore[return-value]


def _vocab_size(model) -> int:
    head = model.get_output_embeddings()
    return int(head.weight.shape[0]) if head is not None else int(model.config.vocab_size)


@dataclass
class ContrastConfig:
    """Every option of ``pts contrast``; the CLI flags are these names with dashes."""

    model: str = DEFAULT_MODEL
    dataset: str = DEFAULT_DATASET
    config: str | None = None
    split: str = "train"
    query_key: str | None = None
    answer_key: str | None = None
    oracle: str | None = None
    sample_size: int | None = None
    max_examples: int | None = None
    input_path: str | None = None
    positive_model: str | None = None
    negative_model: str | None = None
    output_dir: str = "contrast"
    num_trajectories: int = 16
    max_new_tokens: int = 512
    temperature: float = 0.6
    top_p: float = 0.95
    top_k: int = 20
    min_p: float = 0.0
    seed: int = 42
    system_prompt: str | None = None
    chat_template: bool = True
    early_stop: bool = True
    positives_per_query: int = 1
    negative_top_p: float = 0.5
    lora: LoraSettings = field(default_factory=LoraSettings)
    beta: float = 1.0
    score: Literal["all", "incorrect", "correct"] = "all"
    score_batch_size: int = 8
    engine: str = "hf"
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = 64
    overwrite: bool = False
    progress: bool = True

    def validate(self) -> None:
        """Raise PTSError on an option out of range, before anything is loaded or written."""
        options.finite(self)
        options.at_least_one(self, "num_trajectories", "max_new_tokens", "score_batch_size", "batch_size",
                             "sample_size", "max_examples")
        if self.positives_per_query < 0:
            raise PTSError(f"--positives-per-query must be >= 0 (0 takes all), got {self.positives_per_query}")
        if not 0.0 < self.negative_top_p <= 1.0:
            raise PTSError(f"--negative-top-p must be in (0, 1], got {self.negative_top_p}")
        if self.beta < 0:
            raise PTSError(f"--beta must be >= 0, got {self.beta}")
        if self.score not in ("all", "incorrect", "correct"):
            raise PTSError(f"--score must be all, incorrect or correct, got {self.score!r}")
        if self.temperature < 1e-5:
            raise PTSError("--temperature must be > 0: contrastive estimation needs varied trajectories")
        options.sampling(self)
        if self.input_path is not None and not Path(self.input_path).is_file():
            raise PTSError(f"--input-path {self.input_path} does not exist")
        for name in ("positive_model", "negative_model"):
            spec = getattr(self, name)
            if spec is not None and spec.startswith((".", "/", "~")) and not Path(spec).expanduser().exists():
                raise PTSError(f"--{name.replace('_', '-')} {spec} does not exist")
        self.lora.validate()

    def eval_settings(self):
        from pts.evaluate import EvalSettings

        return EvalSettings(num_samples=self.num_trajectories, max_new_tokens=self.max_new_tokens,
                            temperature=self.temperature, top_p=self.top_p, top_k=self.top_k, min_p=self.min_p,
                            seed=self.seed, system_prompt=self.system_prompt, chat_template=self.chat_template,
                            early_stop=self.early_stop)

    @property
    def trains(self) -> bool:
        return self.positive_model is None or self.negative_model is None


@dataclass
class ContrastSummary:
    """What one ``pts contrast`` produced."""

    output_dir: str
    trajectories: int = 0
    correct: int = 0
    queries: int = 0
    sampled: bool = False
    positives: int = 0
    negatives: int = 0
    training: dict[str, dict[str, Any]] = field(default_factory=dict)
    scored: int = 0
    scored_tokens: int = 0
    mean_score_correct: float | None = None
    mean_score_incorrect: float | None = None
    positive_model: str | None = None
    negative_model: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def format(self) -> str:
        how = "sampled" if self.sampled else "read"
        head = (f"trajectories: {self.trajectories} {how} for {self.queries} queries "
                f"({self.correct} correct, {self.trajectories - self.correct} incorrect)")
        lines = [head]
        if "trajectories" in self.files:
            lines[-1] += f" -> {self.files['trajectories']}"
        if "positive" in self.files:
            lines.append(f"training sets: {self.positives} positive, {self.negatives} negative -> "
                         f"{self.files['positive']}, {self.files['negative']}")
        for role in ("positive", "negative"):
            if role in self.training:
                t = self.training[role]
                lines.append(f"{role} model: LoRA on {t['examples']} trajectories, {t['steps']} steps, "
                             f"train loss {t['train_loss']:.3f} ({t['seconds']:.0f} s) -> {self.files[role + '_model']}")
            else:
                lines.append(f"{role} model: {getattr(self, role + '_model')}")
        means = []
        for label, v in (("correct", self.mean_score_correct), ("incorrect", self.mean_score_incorrect)):
            if v is not None:
                means.append(f"{v:.3f} on {label}")
        lines.append(f"scores: {self.scored} trajectories, {self.scored_tokens} tokens"
                     + (f"; mean s_t {', '.join(means)} trajectories" if means else "")
                     + f" -> {self.files.get('scores', '-')}")
        lines.append(f"time: {self.seconds:.1f} s")
        return "\n".join(lines)


def run_contrast(config: ContrastConfig, engine=None, tasks=None) -> ContrastSummary:
    """Run the phases of ``pts contrast`` that ``config`` asks for, writing into ``config.output_dir``.

    Trajectories come from ``config.input_path`` or are sampled (with ``engine``,
    else ``config.model``, on ``tasks``, else ``config.dataset``); adapters given
    as ``positive_model``/``negative_model`` are used as they are, missing ones are
    trained. Every file is written atomically; existing outputs are refused
    unless ``config.overwrite``. Bad input raises PTSError before heavy work.
    """

    config.validate()
    start = time.perf_counter()
    out = Path(config.output_dir)
    summary = ContrastSummary(str(out), positive_model=config.positive_model, negative_model=config.negative_model)
    planned = _planned_outputs(config, out)
    _prepare_output_dir(out, planned, config.overwrite)

    base = None  # (model, tokenizer, spec) of the base model, loaded once and shared by the phases
    if config.input_path is None:
        from pts.evaluate import evaluate, make_engine
        from pts.tasks.sources import load_tasks

        if tasks is None:
            tasks = load_tasks(config.dataset, config=config.config, split=config.split,
                               query_key=config.query_key, answer_key=config.answer_key,
                               sample_size=config.sample_size, max_examples=config.max_examples,
                               seed=config.seed, oracle=config.oracle)
        engine = engine or make_engine(config.model, engine=config.engine, device=config.device,
                                       dtype=config.dtype, batch_size=config.batch_size)
        log.info("sampling %d trajectories for each of %d queries", config.num_trajectories, len(tasks))
        result = evaluate(engine, tasks, config.eval_settings(), progress=config.progress)
        trajectories = trajectories_from_eval(result)
        summary.sampled = True
        if hasattr(engine, "model"):
            base = (engine.model, engine.tokenizer, config.model)
        _write_jsonl(out / TRAJECTORIES_FILE, [t.to_dict() for t in trajectories])
        summary.files["trajectories"] = str(out / TRAJECTORIES_FILE)
    else:
        if config.trains or not _has_ids(config.input_path):
            base = _load_base(config, base)
        trajectories = read_trajectories(config.input_path, base[1] if base else None, config)
    summary.trajectories = len(trajectories)
    summary.correct = sum(t.correct for t in trajectories)
    summary.queries = len({t.group for t in trajectories})
    log.info("%d trajectories (%d correct) for %d queries", summary.trajectories, summary.correct, summary.queries)

    positive, negative = config.positive_model, config.negative_model
    if config.trains:
        pos_set, neg_set = select_training_sets(trajectories, positives_per_query=config.positives_per_query,
                                                negative_top_p=config.negative_top_p, seed=config.seed)
        summary.positives, summary.negatives = len(pos_set), len(neg_set)
        hint = (f"; the trajectories are in {out / TRAJECTORIES_FILE}: rerun with --input-path on more of them"
                if summary.sampled else "")
        for role, chosen in (("positive", pos_set), ("negative", neg_set)):
            if getattr(config, role + "_model") is None and not chosen:
                what = "correct" if role == "positive" else "incorrect (with an extractable answer)"
                raise PTSError(f"no {what} trajectory to train the {role} model on: sample more "
                               f"(--num-trajectories), use more queries or an easier dataset{hint}")
        base = _load_base(config, base)
        model, tok, spec = base
        _write_jsonl(out / POSITIVE_FILE, _training_rows(pos_set, tok))
        _write_jsonl(out / NEGATIVE_FILE, _training_rows(neg_set, tok))
        summary.files.update(positive=str(out / POSITIVE_FILE), negative=str(out / NEGATIVE_FILE))
        for role, chosen in (("positive", pos_set), ("negative", neg_set)):
            if getattr(config, role + "_model") is not None:
                continue
            target = out / (POSITIVE_ADAPTER if role == "positive" else NEGATIVE_ADAPTER)
            _make_dir(out)
            log.info("training the %s model (LoRA) on %d trajectories", role, len(chosen))
            model, stats = train_lora(model, tok, chosen, target, config.lora, base_model=spec, role=role,
                                      seed=config.seed, progress=config.progress)
            summary.training[role] = stats
            summary.files[role + "_model"] = str(target)
            if role == "positive":
                positive = str(target)
            else:
                negative = str(target)
        base = (model, tok, spec)
    summary.positive_model, summary.negative_model = positive, negative

    chosen = [t for t in trajectories
              if config.score == "all" or t.correct == (config.score == "correct")]
    scorer, base = _scorer(config, positive, negative, base)
    log.info("scoring %d trajectories with beta %g", len(chosen), config.beta)
    tok = base[1] if base else None
    results = scorer.score(chosen, beta=config.beta, batch_size=config.score_batch_size, progress=config.progress)
    rows = [_score_row(t, r, tok, config, positive, negative) for t, r in zip(chosen, results)]
    _write_jsonl(out / SCORES_FILE, rows)
    summary.files["scores"] = str(out / SCORES_FILE)
    summary.scored = len(rows)
    summary.scored_tokens = sum(len(r["scores"]) for r in rows)
    for label, flag in (("mean_score_correct", True), ("mean_score_incorrect", False)):
        values = [s for r in rows if r["correct"] == flag for s in r["scores"]]
        setattr(summary, label, sum(values) / len(values) if values else None)
    summary.seconds = time.perf_counter() - start
    return summary


def _planned_outputs(config: ContrastConfig, out: Path) -> list[Path]:
    files = [out / SCORES_FILE]
    if config.input_path is None:
        files.append(out / TRAJECTORIES_FILE)
    if config.trains:
        files += [out / POSITIVE_FILE, out / NEGATIVE_FILE]
    if config.positive_model is None:
        files.append(out / POSITIVE_ADAPTER)
    if config.negative_model is None:
        files.append(out / NEGATIVE_ADAPTER)
    return files


def _prepare_output_dir(out: Path, planned: list[Path], overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise PTSError(f"--output-dir {out} is a file")
    parent = out.parent if str(out.parent) else Path(".")
    if not out.exists() and not parent.is_dir():
        raise PTSError(f"cannot create --output-dir {out}: directory {parent} does not exist")
    existing = [p for p in planned if p.exists()]
    if existing and not overwrite:
        raise PTSError(f"{existing[0]} already exists; pass --overwrite, or reuse it (--input-path for "
                       "trajectories, --positive-model/--negative-model for adapters)")
    where = out if out.exists() else parent
    if not os.access(where, os.W_OK | os.X_OK):
        raise PTSError(f"cannot write into --output-dir {out}: {where} is not writable")


def _make_dir(out: Path) -> None:
    """Create the output directory when the first output is about to be written (not before: a run that
    fails on bad input leaves nothing behind)."""
    try:
        out.mkdir(exist_ok=True)
    except OSError as e:
        raise PTSError(f"cannot create --output-dir {out}: {e.strerror}") from None


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    from pts.store import write_jsonl

    _make_dir(path.parent)
    write_jsonl(path, rows)


def _load_base(config: ContrastConfig, base):
    """(model, tokenizer, spec) of ``config.model``, loaded unless already there."""
    if base is not None:
        return base
    from pts.evaluate import load_model_or_adapter

    loaded = load_model_or_adapter(config.model, device=config.device, dtype=config.dtype)
    return loaded.model, loaded.tokenizer, config.model


def _scorer(config: ContrastConfig, positive: str, negative: str, base):
    """A scorer for the two models, sharing one base model when both are adapters on the same base."""
    from pts.evaluate import load_model_or_adapter
    from pts.train.adapter import adapter_base, is_adapter_dir

    if is_adapter_dir(positive) and is_adapter_dir(negative):
        base_pos, base_neg = adapter_base(positive), adapter_base(negative)
        if base_pos == base_neg:
            if base is None or base[2] != base_pos:
                loaded = load_model_or_adapter(base_pos, device=config.device, dtype=config.dtype)
                base = (loaded.model, loaded.tokenizer, base_pos)
            return ContrastiveScorer.from_adapters(base[0], positive, negative), base
    pos = load_model_or_adapter(positive, device=config.device, dtype=config.dtype)
    neg = load_model_or_adapter(negative, device=config.device, dtype=config.dtype)
    return ContrastiveScorer.from_models(pos.model, neg.model), (pos.model, pos.tokenizer, positive)


def _training_rows(items: Sequence[Trajectory], tok) -> list[dict[str, Any]]:
    """Training examples in TRL's prompt-completion shape, with the exact ids pts trains on."""
    rows = []
    for t in items:
        prompt = tok.decode(t.prompt_ids, skip_special_tokens=False)
        completion = tok.decode(t.response_ids, skip_special_tokens=False)
        rows.append({"prompt": prompt, "completion": completion, "prompt_ids": t.prompt_ids,
                     "completion_ids": t.response_ids, "query": t.query, "answer": t.answer,
                     "answer_key": t.answer_key, "correct": t.correct, "dataset_id": t.dataset_id,
                     "dataset_item_id": t.dataset_item_id, "trajectory_id": t.id})
    return rows


def _score_row(t: Trajectory, r: dict[str, Any], tok, config: ContrastConfig, positive: str,
               negative: str) -> dict[str, Any]:
    scores = r["scores"]
    tokens = [tok.decode([i], skip_special_tokens=False) for i in t.response_ids] if tok is not None else None
    low = min(range(len(scores)), key=scores.__getitem__) if scores else None
    return {
        "kind": "contrastive_scores", "schema_version": SCHEMA_VERSION,
        "id": stable_id("contrast", t.id, positive, negative, config.beta),
        "trajectory_id": t.id, "query": t.query, "answer": t.answer, "correct": t.correct,
        "answer_key": t.answer_key, "dataset_id": t.dataset_id, "dataset_item_id": t.dataset_item_id,
        "task_type": t.task_type, "sample_index": t.sample_index,
        "prompt_ids": t.prompt_ids, "response_ids": t.response_ids, "response": t.response, "tokens": tokens,
        "scores": scores, "logp_pos": r["logp_pos"], "logp_neg": r["logp_neg"], "beta": config.beta,
        "min_score_position": low, "min_score_token": tokens[low] if tokens and low is not None else None,
        "min_score": scores[low] if low is not None else None,
        "model_id": t.model_id or config.model, "positive_model": positive, "negative_model": negative,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _has_ids(path: str) -> bool:
    from pts.store import read_jsonl

    rows = read_jsonl(path)
    return bool(rows) and all(r.get("prompt_ids") and r.get("response_ids") is not None for r in rows)


TEXT_RESPONSE_KEYS = ("response", "completion", "output")


def read_trajectories(path: str, tokenizer, config: ContrastConfig) -> list[Trajectory]:
    """Trajectories from a JSONL file: ``pts contrast``/``pts eval`` output or rows ``{query, answer, response}``.

    A row needs the query (``query``/``question``), and the response as
    ``response_ids`` (with ``prompt_ids``: used exactly) or as text (tokenized
    here, EOS appended, prompt built from the query like ``pts run``). Rows
    without ``correct`` are judged by an oracle (``--oracle``, else chosen from
    the answer's shape as for datasets), which needs ``answer``.
    """
    from pts.evaluate import extracted_answer
    from pts.store import read_jsonl

    rows = read_jsonl(path)
    if not rows:
        raise PTSError(f"{path} has no trajectories")
    needs_task = any(not isinstance(r.get("correct"), bool) or not ("answer_key" in r or "extracted_answer" in r)
                     for r in rows)
    tasks = _tasks_for_rows(path, rows, config) if needs_task else {}
    dataset_id = Path(path).name
    out = []
    for n, r in enumerate(rows, 1):
        where = f"{path} line {n}"
        query = r.get("query", r.get("question"))
        if not isinstance(query, str):
            raise PTSError(f"{where} has no query")
        task = tasks.get(n - 1)
        prompt_ids, response_ids = r.get("prompt_ids"), r.get("response_ids")
        if response_ids is None:
            text = next((r[k] for k in TEXT_RESPONSE_KEYS if isinstance(r.get(k), str)), None)
            if text is None:
                raise PTSError(f"{where} has no response (response_ids, or text in {', '.join(TEXT_RESPONSE_KEYS)})")
            if tokenizer is None:
                raise PTSError(f"{where} gives the response as text; a tokenizer is needed")
            response_ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
            if tokenizer.eos_token_id is not None and (not response_ids or response_ids[-1] != tokenizer.eos_token_id):
                response_ids.append(tokenizer.eos_token_id)
        if prompt_ids is None:
            if tokenizer is None:
                raise PTSError(f"{where} has no prompt_ids; a tokenizer is needed to build the prompt")
            from pts.search.searcher import build_prompt_ids

            prompt_ids = build_prompt_ids(tokenizer, task.prompt if task else query, config.system_prompt,
                                          config.chat_template, task.raw_prompt if task else None)
        for name, ids in (("prompt_ids", prompt_ids), ("response_ids", response_ids)):
            if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
                raise PTSError(f"{where}: {name} must be a list of token ids")
        response = r.get("response")
        if not isinstance(response, str):
            response = tokenizer.decode(response_ids, skip_special_tokens=True) if tokenizer is not None else ""
        correct = r.get("correct")
        if not isinstance(correct, bool):
            if task is None:
                raise PTSError(f"{where} has no correct verdict and no answer to judge it with")
            correct = bool(task.judge(response))
        if "answer_key" in r or "extracted_answer" in r:  # pts contrast / pts eval rows
            answer_key = r.get("answer_key", r.get("extracted_answer"))
        else:
            answer_key = extracted_answer(task, response) if task else None
        item = r.get("dataset_item_id", task.item_id if task else None)
        out.append(Trajectory(
            query=query, answer=str(r.get("answer", "")), prompt_ids=list(prompt_ids),
            response_ids=list(response_ids), response=response, correct=correct, answer_key=answer_key,
            dataset_id=str(r.get("dataset_id") or dataset_id),
            dataset_item_id=str(item) if item is not None else stable_id(query),
            task_type=str(r.get("task_type") or (task.task_type if task else "")),
            oracle=str(r.get("oracle") or (getattr(task.oracle, "name", "") if task else "")),
            sample_index=int(r.get("sample_index", 0) or 0), finish_reason=str(r.get("finish_reason", "")),
            model_id=str(r.get("model_id", "")), id=str(r.get("trajectory_id") or r.get("id") or ""),
        ))
    return out


def _tasks_for_rows(path: str, rows: list[dict[str, Any]], config: ContrastConfig) -> dict[int, Any]:
    """Tasks (oracle, prompt, gold answer) of the file's rows, by row index; rows without an answer get none."""
    from pts.tasks.sources import load_tasks

    if not any("answer" in r or (config.answer_key and config.answer_key in r) for r in rows):
        return {}
    query_key = config.query_key or ("query" if "query" in rows[0] else None)
    tasks = load_tasks(path, query_key=query_key, answer_key=config.answer_key or "answer", oracle=config.oracle,
                       seed=config.seed)
    return {t.metadata.get("source_index"): t for t in tasks}
