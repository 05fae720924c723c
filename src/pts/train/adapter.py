"""Load what ``pts train`` writes: a LoRA adapter directory on top of its base model.

``pts.models.load_model`` loads every output of ``pts train``: merged and fully
fine-tuned outputs are plain Hugging Face directories, and an adapter directory
(``adapter_config.json`` + ``pts_train.json`` naming the base model spec) is
loaded on its base and merged. The functions live in :mod:`pts.models`; they are
re-exported here for the training code.
"""

from __future__ import annotations

from pts.models import (
    TRAIN_INFO,
    adapter_base,
    is_adapter_dir,
    load_adapter,
    load_model,
)

__all__ = ["TRAIN_INFO", "adapter_base", "is_adapter_dir", "load_adapter", "load_trained"]


def load_trained(spec: str, device: str = "auto", dtype: str = "auto"):
    """Same as :func:`pts.models.load_model` (which handles adapter directories); kept for callers of this module."""
    return load_model(spec, device=device, dtype=dtype)
