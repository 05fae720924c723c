"""``pts train`` as a library call: preference file -> TRL trainer -> model directory.

    from pts.train import TrainConfig, train
    result = train(TrainConfig(input_path="pairs.jsonl", output_dir="out", loss="cdpo", max_steps=10))

The output directory is written under a temporary name and renamed into place
at the end, so an error or Ctrl-C never leaves a half-written model.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pts.errors import PTSError
from pts.store import read_jsonl
from pts.train.adapter import TRAIN_INFO
from pts.train.config import TrainConfig

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
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
        first = (f"{self.loss} on {self.rows} pairs ({tokens}): {self.steps} steps, "
                 f"train loss {self.train_loss:.4f}, {self.seconds:.0f} s")
        lines = [first, f"{kind} written to {self.output_dir}"]
        if self.merged_dir:
            lines.append(f"merged model written to {self.merged_dir}")
        return "\n".join(lines)


def training_dtype(dtype: str, device: str) -> tuple[str, bool]:
    """(weights dtype for ``load_model``, bf16 autocast on/off) for training.

    ``auto`` is bfloat16 on a CUDA GPU that supports it, float32 elsewhere (CPU
    bf16 is emulated on most CPUs and its gradients are coarse). float16
    training without a loss scaler diverges, so it is refused.
    """
    import torch

    if dtype == "auto":
        if device.startswith("cuda") and torch.cuda.is_bf16_supported():
            return "bfloat16", True
        return "float32", False
    if dtype in ("float32", "fp32"):
        return "float32", False
    if dtype in ("bfloat16", "bf16"):
        return "bfloat16", True
    if dtype in ("float16", "fp16"):
        raise PTSError("--dtype float16 is not supported for training; use bfloat16 or float32")
    raise PTSError(f"unknown dtype '{dtype}' (use auto, float32 or bfloat16)")


def _base_reference(spec: str, source: str) -> tuple[str, str]:
    """(pts spec to reload the base with, a Hugging Face location for PEFT's base_model_name_or_path)."""
    from pts.models import gguf_cache_dir, resolve_alias

    local = Path(spec).expanduser()
    pts_spec = spec if resolve_alias(spec) is not None or not local.exists() else str(local.resolve())
    src = Path(source)
    if src.is_dir():
        return pts_spec, str(src.resolve())
    if src.suffix == ".gguf":
        cached = gguf_cache_dir(src)
        return pts_spec, str(cached) if (cached / "config.json").is_file() else pts_spec
    return pts_spec, spec


def _strip_quantization_config(directory: Path) -> None:
    # A GGUF-born config keeps quantization_config; vLLM and from_pretrained then expect GGUF weights.
    cfg_file = directory / "config.json"
    if cfg_file.is_file():
        cfg = json.loads(cfg_file.read_text())
        if cfg.pop("quantization_config", None) is not None:
            cfg_file.write_text(json.dumps(cfg, indent=2))


def train(config: TrainConfig) -> TrainResult:
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

    from pts.models import load_model, resolve_device
    from pts.train.progress import datasets_bars

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
    with warnings.catch_warnings(), datasets_bars(config.progress):
        # transformers 5 renamed gradient checkpointing; TRL 1.16 still reads the old name on every step.
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        try:
            trainer = _make_trainer(config, model, tok, dataset, device, bf16, work / "trainer")
            result = trainer.train()
            steps = int(result.global_step)
            if steps == 0:
                raise PTSError("training ran no step (no row fits --max-length?)")
            staged = work / "output"
            metrics = _last_metrics(trainer.state.log_history)
            merged_dir = _save(config, trainer, tok, loaded, staged)
            info = {
                "loss": config.loss, "base_model": _base_reference(config.model, loaded.source)[0],
                "base_model_id": loaded.model_id, "lora": config.lora, "merged": merged_dir is not None,
                "exact_token_ids": exact, "rows": len(dataset), "steps": steps,
                "train_loss": float(result.training_loss), "config": asdict(config),
                "log_history": trainer.state.log_history, "versions": _versions(),
                "input_path": str(Path(config.input_path).resolve()), "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"),
            }
            (staged / TRAIN_INFO).write_text(json.dumps(info, indent=2, default=str))
            _replace_dir(staged, out, config.overwrite)
        finally:
            shutil.rmtree(work, ignore_errors=True)
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
    return TrainResult(str(out), config.loss, loaded.model_id, len(dataset), exact, steps,
                       float(result.training_loss), time.time() - started, config.lora,
                       str(out / "merged") if merged_dir is not None else None, metrics)


def _make_trainer(config: TrainConfig, model, tok, dataset, device: str, bf16: bool, work: Path):
    from peft import LoraConfig
    from trl import DPOConfig

    from pts.train.cdpo import CDPOConfig, CDPOTrainer
    from pts.train.dpo import PreTokenizedDPOTrainer

    common: dict[str, Any] = {
        "output_dir": str(work), "per_device_train_batch_size": config.batch_size,
        "gradient_accumulation_steps": config.grad_accum, "learning_rate": config.lr,
        "num_train_epochs": config.epochs, "max_steps": config.max_steps or -1, "max_length": config.max_length,
        "seed": config.seed, "data_seed": config.seed, "bf16": bf16, "fp16": False, "use_cpu": device == "cpu",
        "report_to": "none", "save_strategy": "no", "logging_steps": 10, "logging_first_step": True,
        "disable_tqdm": not config.progress, "dataloader_num_workers": 0,
        # TRL zeroes every dropout module, LoRA's included; keep them when a LoRA dropout was asked for.
        "disable_dropout": not (config.lora and config.lora_dropout > 0),
    }
    # transformers 5.x renamed gradient_checkpointing (TRL's default: on) to activation_checkpointing.
    names = {f.name for f in dataclasses.fields(DPOConfig)}
    common["activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"] = \
        config.gradient_checkpointing
    peft_config = None
    ref_model = None
    if config.lora:
        peft_config = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                                 target_modules=config.target_modules(), bias="none", task_type="CAUSAL_LM")
    else:
        # A frozen copy: TRL would otherwise reload the reference from config._name_or_path, which a
        # GGUF-born model does not have.
        ref_model = copy.deepcopy(model).eval().requires_grad_(False)
        model.requires_grad_(True)
    try:
        if config.loss == "cdpo":
            args = CDPOConfig(gamma=config.gamma, **common)
            return CDPOTrainer(model, ref_model=ref_model, args=args, train_dataset=dataset,
                               processing_class=tok, peft_config=peft_config)
        args = DPOConfig(beta=config.beta, **common)
        return PreTokenizedDPOTrainer(model, ref_model=ref_model, args=args, train_dataset=dataset,
                                      processing_class=tok, peft_config=peft_config)
    except ValueError as e:  # PEFT target modules not found, TRL option conflicts: the user's options
        raise PTSError(f"cannot set up {config.loss} training: {str(e).strip().splitlines()[0]}") from None


def _save(config: TrainConfig, trainer, tok, loaded, staged: Path) -> Path | None:
    staged.mkdir()
    model = trainer.model
    merged_dir = None
    if config.lora:
        _, hf_base = _base_reference(config.model, loaded.source)
        for peft_cfg in model.peft_config.values():
            peft_cfg.base_model_name_or_path = hf_base
        model.save_pretrained(str(staged))
        tok.save_pretrained(str(staged))
        if config.merge:
            merged_dir = staged / "merged"
            merged = model.merge_and_unload()
            merged.save_pretrained(str(merged_dir))
            tok.save_pretrained(str(merged_dir))
            _strip_quantization_config(merged_dir)
    else:
        model.save_pretrained(str(staged))
        tok.save_pretrained(str(staged))
        _strip_quantization_config(staged)
    return merged_dir


def _replace_dir(staged: Path, out: Path, overwrite: bool) -> None:
    """Move ``staged`` to ``out``; an existing ``out`` (allowed only with overwrite) is swapped out, then deleted."""
    old = None
    if out.exists():
        if any(out.iterdir()) and not overwrite:
            raise PTSError(f"output directory {out} appeared during training; pass --overwrite to replace it")
        old = out.with_name(f".old-{out.name}-{os.getpid()}")
        os.rename(out, old)
    umask = os.umask(0)
    os.umask(umask)
    for p in (staged, *staged.rglob("*")):  # some writers create 0600 files; the output is readable like any model
        p.chmod((0o777 if p.is_dir() else 0o666) & ~umask)
    os.rename(staged, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _last_metrics(history: list[dict[str, Any]]) -> dict[str, float]:
    steps = [h for h in history if "loss" in h]
    return {k: float(v) for k, v in (steps[-1] if steps else {}).items() if isinstance(v, (int, float))}


def _versions() -> dict[str, str]:
    import peft
    import torch
    import transformers
    import trl

    return {"trl": trl.__version__, "peft": peft.__version__, "transformers": transformers.__version__,
            "torch": torch.__version__}
