"""Rollout engines: the protocol lives in :mod:`pts.engines.base`, implementations beside it.

Engines are registered by name (``--engine NAME``) in :data:`ENGINES` and
imported only when created, so that importing the protocol does not load torch.
To add one: implement :class:`pts.engines.base.Engine` in a module here, write a
``create(model, *, device, dtype, batch_size)`` factory beside it, and register
its import path (see docs/architecture.md).
"""

from __future__ import annotations

import importlib

from pts.engines.base import Engine, Rollout, RolloutRequest, SamplingParams
from pts.errors import PTSError

__all__ = [
    "ENGINES",
    "Engine",
    "HFEngine",
    "Rollout",
    "RolloutRequest",
    "SamplingParams",
    "check_engine",
    "create_engine",
    "register_engine",
]

ENGINES: dict[str, str] = {
    "hf": "pts.engines.hf:create",  # pts's batched HF engine (CPU, CUDA, MPS)
    "vllm": "pts.engines.vllm:create",  # vLLM (pts[vllm]); one per GPU
}
"""Engine name -> ``module:function`` of its factory."""


def register_engine(name: str, factory: str) -> None:
    """Make ``--engine name`` create engines with ``factory`` (``"package.module:function"``)."""
    ENGINES[name] = factory


def check_engine(name: str) -> None:
    """PTSError naming the registered engines unless ``name`` is one; nothing is imported."""
    if name not in ENGINES:
        raise PTSError(f"unknown --engine {name!r}; available: {', '.join(ENGINES)}")


def create_engine(name: str, model: str, *, device: str = "auto", dtype: str = "auto", batch_size: int = 64) -> Engine:
    """Load ``model`` into the engine registered as ``name``; ``batch_size`` bounds the rows decoded at once."""
    check_engine(name)
    module, _, function = ENGINES[name].partition(":")
    factory = getattr(importlib.import_module(module), function)
    return factory(model, device=device, dtype=dtype, batch_size=batch_size)


def __getattr__(name: str):
    if name == "HFEngine":
        from pts.engines.hf import HFEngine

        return HFEngine
    raise AttributeError(f"module 'pts.engines' has no attribute '{name}'")
