"""A GGUF control vector (llama.cpp ``--control-vector``, repeng's format) from pivotal tokens.

A control vector's direction at each layer is the mean activation before
positive pivots minus the mean before negative ones (at the position that
predicts the pivot token, see :mod:`pts.export.steering`). It is not
normalised: strength 1 moves the average negative-pivot state to the
average positive one at that layer, and llama.cpp adds it at every layer
listed, so the effects add up along the residual stream. The file itself is
written by :class:`pts.steering.vectors.ControlVector`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pts.export.records import PivotRecord


def write_control_vector(
    loaded: Any, pivots: Sequence[PivotRecord], layers: list[int], batch_size: int, output: str
) -> tuple[int, str]:
    """Write the control vector of ``pivots`` (both signs present, token ids attached) at ``layers`` of the
    :class:`pts.models.LoadedModel` ``loaded`` to ``output``; returns (layer directions written, a summary line)."""
    import numpy as np

    from pts.export.steering import context_activations, contrast
    from pts.steering.vectors import ControlVector

    acts, _ = context_activations(loaded.model, [p.context_ids for p in pivots], layers, batch_size=batch_size)
    positive = np.array([p.is_positive for p in pivots], dtype=bool)
    directions = {layer: contrast(acts[layer], positive) for layer in layers}
    hint = getattr(loaded.model.config, "model_type", "") or ""
    ControlVector(directions, hint).to_gguf(
        output,
        extra={
            "model_id": loaded.model_id,
            "method": "mean_difference",
            "positive_pivots": int(positive.sum()),
            "negative_pivots": int((~positive).sum()),
        },
    )
    norms = ", ".join(f"{layer}: {np.linalg.norm(directions[layer]):.3g}" for layer in sorted(directions))
    details = f"model_hint {hint}; {positive.sum()} positive vs {(~positive).sum()} negative pivots; norms {norms}"
    return len(directions), details
