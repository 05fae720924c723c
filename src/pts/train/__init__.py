"""Training on pts data: DPO and cDPO (token-weighted DPO) on TRL, LoRA or full fine-tuning.

    from pts.train import TrainConfig, train
    train(TrainConfig(input_path="cdpo_pairs.jsonl", output_dir="cdpo-lora", loss="cdpo"))

Names are imported lazily, so ``import pts.train`` does not load torch or TRL.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TrainConfig": "pts.train.config",
    "TrainResult": "pts.train.runner",
    "train": "pts.train.runner",
    "PreTokenizedDPOTrainer": "pts.train.dpo",
    "CDPOConfig": "pts.train.cdpo",
    "CDPOTrainer": "pts.train.cdpo",
    "cdpo_loss": "pts.train.cdpo",
    "build_cdpo_rows": "pts.train.data",
    "load_adapter": "pts.train.adapter",
    "load_trained": "pts.train.adapter",
}

__all__ = [
    "CDPOConfig", "CDPOTrainer", "PreTokenizedDPOTrainer", "TrainConfig", "TrainResult", "build_cdpo_rows",
    "cdpo_loss", "load_adapter", "load_trained", "train",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'pts.train' has no attribute {name!r}")
