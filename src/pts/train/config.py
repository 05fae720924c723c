"""Options of ``pts train`` (no heavy imports: the CLI reads the defaults from here)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pts import options
from pts.errors import PTSError

DEFAULT_MODEL = "smollm2-135m"  # = pts.models.DEFAULT_MODEL, which imports torch
LORA_LEARNING_RATE = 4e-5  # the authors' cDPO LoRA setting (r=16, alpha=32)
FULL_LEARNING_RATE = 1e-6  # TRL's DPOConfig default, for full fine-tuning


@dataclass
class TrainConfig:
    """Every option of ``pts train``; the CLI flags are these field names with dashes.

    ``learning_rate`` None means 4e-5 with LoRA, 1e-6 for full fine-tuning.
    ``max_steps`` None means ``epochs`` decides. ``beta`` is DPO's, ``gamma``
    cDPO's (both scale the log-ratio margin).
    """

    input_path: str = ""
    output_dir: str = ""
    loss: Literal["dpo", "cdpo"] = "dpo"
    model: str = DEFAULT_MODEL
    lora: bool = True
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    lora_targets: str = "all-linear"
    learning_rate: float | None = None
    epochs: float = 1.0
    max_steps: int | None = None
    batch_size: int = 2
    grad_accum: int = 1
    beta: float = 0.1
    gamma: float = 0.1
    pairs_per_query: int = 1
    max_length: int | None = 1024
    seed: int = 42
    device: str = "auto"
    dtype: str = "auto"
    merge: bool = False
    gradient_checkpointing: bool = False
    overwrite: bool = False
    progress: bool = True

    @property
    def lr(self) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        return LORA_LEARNING_RATE if self.lora else FULL_LEARNING_RATE

    def target_modules(self) -> str | list[str]:
        """PEFT ``target_modules``: ``"all-linear"`` or the comma-separated module names."""
        text = self.lora_targets.strip()
        if text == "all-linear":
            return text
        return [t.strip() for t in text.split(",") if t.strip()]

    def validate(self) -> None:
        """Raise PTSError on any option out of range, before anything is loaded or written."""
        options.finite(self)
        if self.loss not in ("dpo", "cdpo"):
            raise PTSError(f"--loss must be dpo or cdpo, got {self.loss!r}")
        if not self.input_path:
            raise PTSError("--input-path is required")
        if not self.output_dir:
            raise PTSError("--output-dir is required")
        options.at_least_one(self, "lora_r", "batch_size", "grad_accum", "pairs_per_query", "max_steps")
        if self.lora_alpha <= 0:
            raise PTSError(f"--lora-alpha must be positive, got {self.lora_alpha}")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise PTSError(f"--lora-dropout must be in [0, 1), got {self.lora_dropout}")
        if not self.target_modules():
            raise PTSError("--lora-targets is empty (use all-linear or names such as q_proj,v_proj)")
        for name in ("epochs", "beta", "gamma"):
            if not getattr(self, name) > 0:
                raise PTSError(f"--{name} must be positive, got {getattr(self, name)}")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise PTSError(f"--learning-rate must be positive, got {self.learning_rate}")
        if self.max_length is not None and self.max_length < 2:
            raise PTSError(f"--max-length must be at least 2, got {self.max_length}")
        if self.merge and not self.lora:
            raise PTSError("--merge applies to LoRA training; full fine-tuning already writes the whole model")
        src = Path(self.input_path)
        if not src.is_file():
            raise PTSError(f"input file {src} does not exist" if not src.exists() else f"input path {src} is not a file")
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
