"""Rollout engines: the protocol lives in :mod:`pts.engines.base`, implementations beside it.

``HFEngine`` is imported lazily so that importing the protocol does not load torch.
"""

from pts.engines.base import Engine, Rollout, RolloutRequest, SamplingParams

__all__ = ["Engine", "HFEngine", "Rollout", "RolloutRequest", "SamplingParams"]


def __getattr__(name: str):
    if name == "HFEngine":
        from pts.engines.hf import HFEngine

        return HFEngine
    raise AttributeError(f"module 'pts.engines' has no attribute '{name}'")
