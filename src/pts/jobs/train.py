"""``pts train`` as a job: :class:`TrainConfig` and :func:`run`, which returns a :class:`TrainSummary`.

    from pts.jobs.train import TrainConfig, run
    summary = run(TrainConfig(input_path="pairs.jsonl", output_dir="out", loss="cdpo", max_steps=10))

DPO or cDPO (token-weighted DPO) with TRL, LoRA by default: preference file ->
TRL trainer (:mod:`pts.train`) -> model directory. The output directory is
written under a temporary name and renamed into place at the end, so an error
or Ctrl-C never leaves a half-written model. This module imports nothing heavy
at import time (the CLI reads the defaults from here).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from pts import options
from pts.errors import PTSError
from pts.options import DEFAULT_MODEL, option, override
from pts.store import read_jsonl

LORA_LEARNING_RATE = 4e-5  # the authors' cDPO LoRA setting (r=16, alpha=32)
FULL_LEARNING_RATE = 1e-6  # TRL's DPOConfig default, for full fine-tuning


HELP = "train a model with DPO or cDPO (token-weighted DPO) on pts preference data"
"""The command's one line in ``pts --help``."""


@options.config
class TrainConfig(options.ModelOptions, options.TrainingOptions, options.OverwriteOptions, options.ProgressOptions):
    """Every option of ``pts train``; the CLI flags are these field names with dashes.

    ``learning_rate`` None means 4e-5 with LoRA, 1e-6 for full fine-tuning.
    ``max_steps`` None means ``epochs`` decides. ``beta`` is DPO's, ``gamma``
    cDPO's (both scale the log-ratio margin).
    """

    input_path: str = option(help="JSONL file: DPO rows (text, or exact token ids), cDPO pairs, or scored trajectories")
    output_dir: str = option(
        help="directory to write (a LoRA adapter, or the whole model with --no-lora); written atomically"
    )
    loss: Literal["dpo", "cdpo"] = option(
        "dpo",
        "dpo: TRL's sigmoid DPO on `pts export --format dpo` rows; cdpo: "
        "token-weighted DPO (Lin et al. 2024) on pairs with per-token "
        "contrastive-estimation scores, or on scored trajectories",
    )
    model: str = override(DEFAULT_MODEL, help="base model: " + options.MODEL_HELP.removeprefix("model: "))
    lora: bool = option(True, "train a LoRA adapter (--no-lora: full fine-tuning against a frozen copy of the model)")
    learning_rate: float | None = override(
        None, help="learning rate (default: 4e-5 with LoRA, 1e-6 for full fine-tuning)"
    )
    train_batch_size: int = override(2, help="pairs per device per step", aliases=("--batch-size",))
    beta: float = option(0.1, "DPO beta (--loss dpo)", check="positive")
    gamma: float = option(0.1, "cDPO gamma, the scale of the weighted log-ratio margin (--loss cdpo)", check="positive")
    pairs_per_query: int = option(
        1,
        "cDPO on scored trajectories: pairs made per query, the i-th correct response "
        "with the i-th incorrect one, most frequent wrong answer first (1: the authors' "
        "selection)",
        check="count",
    )
    seed: int = option(42, "random seed (LoRA init, data order)")
    dtype: str = override("auto", help="auto (bfloat16 on a CUDA GPU, else float32), float32 or bfloat16")
    merge: bool = option(False, "also write the LoRA weights merged into the base model to OUTPUT_DIR/merged")
    overwrite: bool = override(False, help="replace --output-dir if it exists")

    @property
    def lr(self) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        return LORA_LEARNING_RATE if self.lora else FULL_LEARNING_RATE

    def validate(self) -> None:
        """Raise PTSError on any option out of range, before anything is loaded or written."""
        options.check(self)
        self.check_training()
        if self.merge and not self.lora:
            raise PTSError("--merge applies to LoRA training; full fine-tuning already writes the whole model")
        src = Path(self.input_path)
        if not src.is_file():
            raise PTSError(
                f"input file {src} does not exist" if not src.exists() else f"input path {src} is not a file"
            )
        out = Path(self.output_dir)
        parent = out.resolve().parent
        if out.exists() and not out.is_dir():
            raise PTSError(f"output path {out} exists and is not a directory")
        if out.is_dir() and any(out.iterdir()) and not self.overwrite:
            raise PTSError(f"output directory {out} already exists; pass --overwrite to replace it")
        if not parent.is_dir():
            raise PTSError(f"cannot write {out}: directory {parent} does not exist")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise PTSError(f"cannot write {out}: directory {parent} is not writable")


@dataclass
class TrainSummary:
    """What a training run produced. ``merged_dir`` is set with ``--merge``."""

    output_dir: str
    loss: str
    model_id: str
    rows: int
    exact_ids: bool
    steps: int
    train_loss: float
    seconds: float
    lora: bool
    merged_dir: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)

    def format(self) -> str:
        kind = "LoRA adapter" if self.lora else "model"
        tokens = "exact token ids" if self.exact_ids else "text, tokenized by TRL"
        first = (
            f"{self.loss} on {self.rows} pairs ({tokens}): {self.steps} steps, "
            f"train loss {self.train_loss:.4f}, {self.seconds:.0f} s"
        )
        lines = [first, f"{kind} written to {self.output_dir}"]
        if self.merged_dir:
            lines.append(f"merged model written to {self.merged_dir}")
        return "\n".join(lines)


def run(config: TrainConfig) -> TrainSummary:
    """Train with DPO or cDPO as ``config`` says and write the result to ``config.output_dir``.

    Raises :class:`PTSError` (one line) on bad input, before any output exists.
    """
    config.validate()
    from pts.train.data import cdpo_rows, check_vocab, preference_rows

    source = Path(config.input_path).name
    raw = read_jsonl(config.input_path)
    if not raw:
        raise PTSError(f"{config.input_path} has no rows")
    # Rows are checked before the model loads, so a malformed file fails in a second, not after a model load.
    if config.loss == "cdpo":
        rows, exact = cdpo_rows(raw, source=source, max_pairs_per_query=config.pairs_per_query), True
    else:
        data = preference_rows(raw, source=source)
        rows, exact = data.rows, data.exact

    import torch
    from datasets import Dataset

    from pts.adapters import TRAIN_INFO
    from pts.models import load_model, resolve_device
    from pts.train.progress import datasets_bars
    from pts.train.trainer import (
        base_reference,
        last_metrics,
        library_versions,
        make_trainer,
        replace_dir,
        save_trained,
        training_dtype,
    )

    device = resolve_device(config.device)
    if ":" in device:
        raise PTSError(f"--device {device}: pick the GPU with CUDA_VISIBLE_DEVICES and pass --device cuda")
    weights_dtype, bf16 = training_dtype(config.dtype, device)
    loaded = load_model(config.model, device=device, dtype=weights_dtype)
    model, tok = loaded.model, loaded.tokenizer
    if exact:
        check_vocab(rows, model.get_input_embeddings().num_embeddings, source)
    dataset = Dataset.from_list(rows)

    out = Path(config.output_dir)
    work = Path(tempfile.mkdtemp(prefix=f".tmp-{out.name}-", dir=out.resolve().parent))
    started = time.time()
    from pts.models import checkpointing_rename_quiet

    with checkpointing_rename_quiet(), datasets_bars(config.progress):
        try:
            args = _trainer_args(config, device, bf16, work / "trainer")
            trainer = make_trainer(
                config.loss,
                model,
                tok,
                dataset,
                args,
                beta=config.beta,
                gamma=config.gamma,
                peft_config=_peft_config(config),
            )
            result = trainer.train()
            steps = int(result.global_step)
            if steps == 0:
                raise PTSError("training ran no step (no row fits --max-length?)")
            staged = work / "output"
            metrics = last_metrics(trainer.state.log_history)
            base_spec, hf_base = base_reference(config.model, loaded.source)
            merged_dir = save_trained(trainer.model, tok, staged, lora=config.lora, merge=config.merge, hf_base=hf_base)
            info = {
                "loss": config.loss,
                "base_model": base_spec,
                "base_model_id": loaded.model_id,
                "lora": config.lora,
                "merged": merged_dir is not None,
                "exact_token_ids": exact,
                "rows": len(dataset),
                "steps": steps,
                "train_loss": float(result.training_loss),
                "config": asdict(config),
                "log_history": trainer.state.log_history,
                "versions": library_versions(),
                "input_path": str(Path(config.input_path).resolve()),
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"),
            }
            (staged / TRAIN_INFO).write_text(json.dumps(info, indent=2, default=str))
            replace_dir(staged, out, config.overwrite)
        finally:
            shutil.rmtree(work, ignore_errors=True)
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
    return TrainSummary(
        str(out),
        config.loss,
        loaded.model_id,
        len(dataset),
        exact,
        steps,
        float(result.training_loss),
        time.time() - started,
        config.lora,
        str(out / "merged") if merged_dir is not None else None,
        metrics,
    )


def _trainer_args(config: TrainConfig, device: str, bf16: bool, work: Path) -> dict[str, Any]:
    """The TRL training arguments (shared by DPO and cDPO) that the options set."""
    return {
        "output_dir": str(work),
        **config.trl_arguments(config.lr),
        "seed": config.seed,
        "data_seed": config.seed,
        "bf16": bf16,
        "fp16": False,
        "use_cpu": device == "cpu",
        "report_to": "none",
        "save_strategy": "no",
        "logging_steps": 10,
        "logging_first_step": True,
        "disable_tqdm": not config.progress,
        "dataloader_num_workers": 0,
        # TRL zeroes every dropout module, LoRA's included; keep them when a LoRA dropout was asked for.
        "disable_dropout": not (config.lora and config.lora_dropout > 0),
    }


def _peft_config(config: TrainConfig):
    """PEFT's LoraConfig of the options, or None for full fine-tuning (--no-lora)."""
    return config.peft_config() if config.lora else None


CONFIG = TrainConfig
"""The options of this command (the CLI makes its flags from it)."""
