"""Rollout engines: the protocol lives in :mod:`pts.engines.base`, implementations beside it.

Engines are registered by name (``--engine NAME``) in :data:`ENGINES` (a
:class:`pts.registry.Registry`) and imported only when created, so that importing
the protocol does not load torch. To add one: implement :class:`pts.engines.base.Engine`,
write a ``create(model, *, device, dtype, batch_size)`` factory beside it, and register
its import path with :func:`register_engine`, or from another package with an entry
point in the ``pts.engines`` group (see docs/architecture.md).
"""

from __future__ import annotations

from typing import Any

from pts.engines.base import Engine, Rollout, RolloutRequest, SamplingParams
from pts.registry import Registry

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

ENGINES: Registry = Registry(
    "engine",
    "pts.engines",
    {
        "hf": "pts.engines.hf:create",  # pts's batched HF engine (CPU, CUDA, MPS)
        "vllm": "pts.engines.vllm:create",  # vLLM (pts[vllm]) in this process; one per GPU
    },
)
"""Engine name -> its factory ``create(model, *, device, dtype, batch_size)`` (or the factory's
``"module:function"`` path, imported when the engine is first created)."""


def register_engine(name: str, factory: Any) -> None:
    """Make ``--engine name`` create engines with ``factory`` (the function, or ``"package.module:function"``)."""
    ENGINES.register(name, factory)


def check_engine(name: str) -> None:
    """PTSError naming the registered engines unless ``name`` is one; nothing is imported."""
    ENGINES.check(name, "--engine")


def create_engine(name: str, model: str, *, device: str = "auto", dtype: str = "auto", batch_size: int = 64) -> Engine:
    """Load ``model`` into the engine registered as ``name``; ``batch_size`` bounds the rows decoded at once."""
    factory = ENGINES.get(name, "--engine")
    return factory(model, device=device, dtype=dtype, batch_size=batch_size)


def __getattr__(name: str):
    if name == "HFEngine":
        from pts.engines.hf import HFEngine

        return HFEngine
    raise AttributeError(f"module 'pts.engines' has no attribute '{name}'")
