"""The positive and negative models of ``pts contrast``: LoRA adapters fine-tuned on trajectories.

TRL's ``SFTTrainer`` trains on the exact token ids of the trajectories, with the
loss on the response tokens only (``completion_only_loss``); each adapter is
written atomically with a ``pts_train.json`` naming its base model.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pts import options
from pts.contrast.trajectories import Trajectory
from pts.errors import PTSError


@dataclass
class LoraSettings:
    """LoRA fine-tuning of one model (defaults: the authors' settings for the CE models, one epoch)."""

    r: int = options.checked(8, "count", flag="--lora-r")
    alpha: int = options.checked(16, "positive", flag="--lora-alpha")
    dropout: float = 0.1
    targets: tuple[str, ...] = ("gate_proj", "up_proj", "down_proj")
    learning_rate: float = options.checked(3e-4, "positive")
    epochs: float = options.checked(1.0, "positive")
    max_steps: int = -1
    batch_size: int = options.checked(4, "count", flag="--train-batch-size")
    gradient_accumulation_steps: int = options.checked(1, "count", flag="--grad-accum")
    warmup_steps: float = 0  # steps, or a ratio of all steps when below 1
    lr_scheduler: str = "cosine"
    max_length: int | None = None
    gradient_checkpointing: bool = False

    def validate(self) -> None:
        options.check(self)
        if not 0.0 <= self.dropout < 1.0:
            raise PTSError(f"--lora-dropout must be in [0, 1), got {self.dropout}")
        if not self.targets or any(not t for t in self.targets):
            raise PTSError("--lora-targets needs at least one module name (or all-linear)")
        if self.max_steps == 0 or self.max_steps < -1:
            raise PTSError(f"--max-steps must be at least 1 (or -1 for --epochs), got {self.max_steps}")
        if self.warmup_steps < 0 or (self.warmup_steps >= 1 and self.warmup_steps != int(self.warmup_steps)):
            raise PTSError(f"--warmup-steps must be a step count or a ratio in [0, 1), got {self.warmup_steps}")
        if self.max_length is not None and self.max_length < 2:
            raise PTSError(f"--max-length must be at least 2, got {self.max_length}")

    def peft_config(self):
        from peft import LoraConfig

        targets: Any = "all-linear" if self.targets == ("all-linear",) else list(self.targets)
        return LoraConfig(
            r=self.r,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=targets,
            bias="none",
            task_type="CAUSAL_LM",
        )


def train_lora(
    model,
    tokenizer,
    examples: Sequence[Trajectory],
    output_dir: str | os.PathLike,
    settings: LoraSettings,
    *,
    base_model: str,
    role: str,
    seed: int = 42,
    progress: bool = False,
):
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
    from pts.adapters import TRAIN_INFO
    from pts.train.progress import datasets_bars

    if not examples:
        raise PTSError(f"no {role} trajectories to train the {role} model on")
    rows = [
        {
            "input_ids": list(t.prompt_ids) + list(t.response_ids),
            "completion_mask": [0] * len(t.prompt_ids) + [1] * len(t.response_ids),
        }
        for t in examples
    ]
    target = Path(output_dir)
    work = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=target.parent))
    use_cache = getattr(model.config, "use_cache", None)
    start = time.perf_counter()
    try:
        from pts.models import checkpointing_rename_quiet

        with checkpointing_rename_quiet(), datasets_bars(progress):
            trainer, output = _fit(model, tokenizer, rows, settings, work, seed, progress)
        peft_model = trainer.model
        adapter_dir = work / "adapter"
        peft_model.save_pretrained(str(adapter_dir))
        tokenizer.save_pretrained(str(adapter_dir))
        stats = {
            "examples": len(rows),
            "steps": int(trainer.state.global_step),
            "train_loss": float(output.training_loss),
            "seconds": time.perf_counter() - start,
        }
        info = {
            "base_model": base_model,
            "method": "sft-lora",
            "role": role,
            "purpose": "contrastive estimation",
            "lora": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(settings).items()},
            "seed": seed,
            **stats,
        }
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
        output_dir=str(work / "trainer"),
        per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation_steps,
        learning_rate=settings.learning_rate,
        num_train_epochs=settings.epochs,
        max_steps=settings.max_steps,
        lr_scheduler_type=settings.lr_scheduler,
        warmup_steps=warmup,
        max_length=settings.max_length,
        completion_only_loss=True,
        gradient_checkpointing=settings.gradient_checkpointing,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        seed=seed,
        data_seed=seed,
        disable_tqdm=not progress,
        use_cpu=param.device.type == "cpu",
        dataloader_num_workers=0,
        # Mixed precision only where it is native; on CPU the model trains in the dtype it was loaded in.
        bf16=on_gpu and param.dtype == torch.bfloat16,
        fp16=on_gpu and param.dtype == torch.float16,
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=settings.peft_config(),
    )
    if not progress:
        trainer.remove_callback(PrinterCallback)
    return trainer, trainer.train()
