"""Training on pts data with TRL: DPO on exact token ids, cDPO (token-weighted DPO), LoRA or full fine-tuning.

:mod:`~pts.train.data` turns preference files into trainer rows, :mod:`~pts.train.dpo`
and :mod:`~pts.train.cdpo` are the trainers, :mod:`~pts.train.trainer` sets them up
and writes their output. ``pts train`` itself is the job :mod:`pts.jobs.train`:

    from pts.jobs.train import TrainConfig, run
    run(TrainConfig(input_path="cdpo_pairs.jsonl", output_dir="cdpo-lora", loss="cdpo"))

Names are imported lazily, so ``import pts.train`` does not load torch or TRL.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "PreTokenizedDPOTrainer": "pts.train.dpo",
    "CDPOConfig": "pts.train.cdpo",
    "CDPOTrainer": "pts.train.cdpo",
    "cdpo_loss": "pts.train.cdpo",
    "build_cdpo_rows": "pts.train.data",
    "load_adapter": "pts.adapters",
    "load_trained": "pts.adapters",
}

__all__ = [
    "CDPOConfig",
    "CDPOTrainer",
    "PreTokenizedDPOTrainer",
    "build_cdpo_rows",
    "cdpo_loss",
    "load_adapter",
    "load_trained",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'pts.train' has no attribute {name!r}")
