"""TRL trainers of ``pts train`` and what they write, with every setting passed in (no options object).

:func:`make_trainer` builds the DPO or cDPO trainer, :func:`save_trained` and
:func:`replace_dir` write the output directory; :mod:`pts.jobs.train` strings
them together.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any

from pts.errors import PTSError


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


def base_reference(spec: str, source: str) -> tuple[str, str]:
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


def strip_quantization_config(directory: Path) -> None:
    """Drop quantization_config from a saved model's config.json."""
    # A GGUF-born config keeps quantization_config; vLLM and from_pretrained then expect GGUF weights.
    cfg_file = directory / "config.json"
    if cfg_file.is_file():
        cfg = json.loads(cfg_file.read_text())
        if cfg.pop("quantization_config", None) is not None:
            cfg_file.write_text(json.dumps(cfg, indent=2))


def make_trainer(
    loss: str, model, tokenizer, dataset, args: dict[str, Any], *, beta: float, gamma: float, peft_config=None
):
    """TRL's trainer for ``loss`` (``dpo``: :class:`PreTokenizedDPOTrainer`, ``cdpo``: :class:`CDPOTrainer`).

    ``args`` are the training arguments both share (``gradient_checkpointing``
    is renamed for transformers 5); ``beta`` is DPO's, ``gamma`` cDPO's. With
    ``peft_config`` None the whole model is trained against a frozen copy of it.
    Raises PTSError when TRL or PEFT reject the set-up.
    """
    from trl import DPOConfig

    from pts.train.cdpo import CDPOConfig, CDPOTrainer
    from pts.train.dpo import PreTokenizedDPOTrainer

    common = dict(args)
    # transformers 5.x renamed gradient_checkpointing (TRL's default: on) to activation_checkpointing.
    names = {f.name for f in dataclasses.fields(DPOConfig)}
    if "activation_checkpointing" in names:
        common["activation_checkpointing"] = common.pop("gradient_checkpointing")
    ref_model = None
    if peft_config is None:
        # A frozen copy: TRL would otherwise reload the reference from config._name_or_path, which a
        # GGUF-born model does not have.
        ref_model = copy.deepcopy(model).eval().requires_grad_(False)
        model.requires_grad_(True)
    try:
        if loss == "cdpo":
            trainer_class, loss_args = CDPOTrainer, CDPOConfig(gamma=gamma, **common)
        else:
            trainer_class, loss_args = PreTokenizedDPOTrainer, DPOConfig(beta=beta, **common)
        return trainer_class(
            model,
            ref_model=ref_model,
            args=loss_args,
            train_dataset=dataset,
            processing_class=tokenizer,
            peft_config=peft_config,
        )
    except ValueError as e:  # PEFT target modules not found, TRL option conflicts: the user's options
        raise PTSError(f"cannot set up {loss} training: {str(e).strip().splitlines()[0]}") from None


def save_trained(model, tokenizer, staged: Path, *, lora: bool, merge: bool, hf_base: str) -> Path | None:
    """Save the trained ``model`` into the new directory ``staged``; returns ``staged/merged`` with ``merge``.

    A LoRA model is saved as its adapter, with ``base_model_name_or_path`` set to
    ``hf_base`` (see :func:`base_reference`), and with ``merge`` also merged
    into the base weights under ``staged/merged``; a fully trained model as a
    plain model directory.
    """
    staged.mkdir()
    merged_dir = None
    if lora:
        for peft_cfg in model.peft_config.values():
            peft_cfg.base_model_name_or_path = hf_base
        model.save_pretrained(str(staged))
        tokenizer.save_pretrained(str(staged))
        if merge:
            merged_dir = staged / "merged"
            merged = model.merge_and_unload()
            merged.save_pretrained(str(merged_dir))
            tokenizer.save_pretrained(str(merged_dir))
            strip_quantization_config(merged_dir)
    else:
        model.save_pretrained(str(staged))
        tokenizer.save_pretrained(str(staged))
        strip_quantization_config(staged)
    return merged_dir


def replace_dir(staged: Path, out: Path, overwrite: bool) -> None:
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


def last_metrics(history: list[dict[str, Any]]) -> dict[str, float]:
    """The numbers TRL logged at the last logging step that has a loss."""
    steps = [h for h in history if "loss" in h]
    return {k: float(v) for k, v in (steps[-1] if steps else {}).items() if isinstance(v, (int, float))}


def library_versions() -> dict[str, str]:
    """Versions of the training libraries, for pts_train.json."""
    import peft
    import torch
    import transformers
    import trl

    return {
        "trl": trl.__version__,
        "peft": peft.__version__,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
    }
