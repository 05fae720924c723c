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
from dataclasses import asdict
from pathlib import Path

from pts import options
from pts.contrast.trajectories import Trajectory
from pts.errors import PTSError


@options.config(group="training")
class LoraSettings(options.TrainingOptions):
    """LoRA fine-tuning of the positive and negative models: pts's training options with the authors' settings
    for the CE models as defaults (one epoch), and a learning-rate schedule."""

    lora_r: int = options.override(8, help="LoRA rank")
    lora_alpha: int = options.override(16, help="LoRA alpha (scale alpha/r)")
    lora_dropout: float = options.override(0.1, help="LoRA dropout")
    lora_targets: str = options.override(
        "gate_proj,up_proj,down_proj",
        help="modules LoRA adapts: all-linear, or comma-separated names such as q_proj,v_proj",
    )
    learning_rate: float | None = options.override(3e-4, help="learning rate")
    train_batch_size: int = options.override(4, help="trajectories per training step and device")
    max_length: int | None = options.override(
        None, help="truncate training sequences to this many tokens (default: no truncation)"
    )
    warmup_steps: float = options.option(
        0.0, "linear warmup: steps, or a ratio of all steps when below 1", check="nonneg"
    )
    lr_scheduler: str = options.option("cosine", "learning-rate schedule (a transformers SchedulerType)")

    def validate(self) -> None:
        """Raise PTSError, naming the flag, on a setting out of range."""
        options.check(self)
        self.check_training()
        if self.warmup_steps >= 1 and self.warmup_steps != int(self.warmup_steps):
            raise PTSError(f"--warmup-steps must be a step count or a ratio in [0, 1), got {self.warmup_steps}")


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
        **settings.trl_arguments(),
        lr_scheduler_type=settings.lr_scheduler,
        warmup_steps=warmup,
        completion_only_loss=True,
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
