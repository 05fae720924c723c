"""A GGUF control vector (llama.cpp ``--control-vector``, repeng's format) from pivotal tokens.

Per layer, the direction is the mean difference of the residuals after the
success-side and after the failure-side token of each pivot (its measured
counterpart, :func:`pts.steering.directions.decision_tokens`), at the same
context, scaled to length 1 as repeng's directions are: scale 1 adds a unit
vector, a small fraction of the residual norm (the file records the median
residual norm per layer, so the card can say which fraction). The file itself
is written by :class:`pts.steering.vectors.ControlVector`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pts.errors import PTSError
from pts.export.records import PivotalTokenRow


def write_control_vector(
    loaded: Any, pivots: Sequence[PivotalTokenRow], layers: list[int], batch_size: int, output: str
) -> tuple[int, str]:
    """Write the control vector of ``pivots`` (token ids attached) at ``layers`` of the
    :class:`pts.models.LoadedModel` ``loaded`` to ``output``; returns (layer directions written, a summary line).
    PTSError when no pivot has a measured counterpart."""
    import numpy as np

    from pts.steering.directions import control_directions, decision_tokens, pair_residuals
    from pts.steering.vectors import ControlVector

    decisions = [decision_tokens(p) for p in pivots]
    pairs = sum(d.objective == "logit_difference" for d in decisions)
    if not pairs:
        raise PTSError(
            "a control vector contrasts the success-side and failure-side tokens of pivots, and no record has a "
            "measured counterpart (first_tokens with 2 or more rollouts and a p(success) gap of --min-prob-delta)"
        )
    success, failure = pair_residuals(
        loaded.model, [p.context_ids for p in pivots], decisions, layers, batch_size=batch_size
    )
    directions = control_directions(success, failure)
    hint = getattr(loaded.model.config, "model_type", "") or ""
    dtype = str(next(loaded.model.parameters()).dtype).removeprefix("torch.")
    residual = {layer: float(np.median(np.linalg.norm(failure[layer], axis=1))) for layer in layers}
    ControlVector(directions, hint).to_gguf(
        output,
        extra={
            "model_id": loaded.model_id,
            "method": "unit_mean_paired_difference",
            "pairs": pairs,
            "activation_dtype": dtype,
            "residual_norms": ",".join(f"{layer}:{residual[layer]:.4g}" for layer in sorted(residual)),
        },
    )
    norms = ", ".join(f"{layer}: {residual[layer]:.3g}" for layer in sorted(residual))
    details = (
        f"model_hint {hint}; {pairs} pivot/counterpart pairs; each direction has norm 1 (repeng's normalisation); "
        f"median residual norm per layer {norms}: scale S adds S/residual of it"
    )
    return len(directions), details
