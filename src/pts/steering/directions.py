"""Directions that change a pivot's decision, and the control vector, computed from a model and pivotal tokens.

A pivot is a decision between two next tokens at one context: the
**success-side** token (the pivot when it raises p(success), else a measured
counterpart that succeeds more often) and the **failure-side** token (the other
one). Both come from the record's ``first_tokens``, the first tokens its
rollouts actually took (:func:`decision_tokens`); a pivot without a measured
counterpart keeps one side.

Steering vectors (:func:`decision_gradients`): the gradient, with respect to
the output of decoder layer ``L`` at the position that predicts the pivot, of
``log p(success token) - log p(failure token)`` (the difference of their
logits: the softmax's normaliser cancels), or of the one side's log-probability
when only one is known. optillm adds ``s * v / |v|`` at that position with ``s``
at most 3, so what counts is the gain per unit of added norm, and the gradient
is the direction with the largest first-order gain: its norm is that gain
(:func:`layer_gains`). Contrastive activation addition (the difference of the
residuals after the two tokens) was measured against it and moved the
decision far less per unit norm (docs/exporting.md).

Control vectors (:func:`control_directions`): contrastive activation addition
over the same pairs, the residual at the success-side token minus the
residual at the failure-side token at the same context, averaged, then
normalised per layer to unit length as repeng's ``read_representations``
does (its directions are unit PCA components). Scale 1 is then a unit vector per layer, a small
fraction of the residual norm (docs/exporting.md gives the measured range).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pts.errors import PTSError
from pts.export.dpo import first_token_alternatives, pick_counterpart
from pts.export.records import PivotalTokenRow
from pts.steering.layers import check_layers, decoder_layers

OPTILLM_MAX_STRENGTH = 3.0  # optillm's clamp on pattern strength x |prob_delta|


@dataclass
class Decision:
    """The two tokens a pivot decides between at its context; either may be None (not measured)."""

    success_id: int | None
    failure_id: int | None
    success_token: str = ""
    failure_token: str = ""

    @property
    def objective(self) -> str:
        """What the direction raises: ``logit_difference``, ``success_logprob`` or ``minus_failure_logprob``."""
        if self.success_id is not None and self.failure_id is not None:
            return "logit_difference"
        return "success_logprob" if self.success_id is not None else "minus_failure_logprob"


def decision_tokens(pivot: PivotalTokenRow, min_samples: int = 2, min_delta: float = 0.1) -> Decision:
    """The success-side and failure-side tokens of ``pivot`` at its context.

    The pivot is one side (success when ``is_positive``); the other is the
    counterpart the DPO export would pair it with: among the record's
    ``first_tokens`` with at least ``min_samples`` rollouts, one whose p(success)
    differs from the pivot's by at least ``min_delta`` on the other side, the
    model's most frequent choice first (:func:`pts.export.dpo.pick_counterpart`).
    """
    other = pick_counterpart(
        pivot.is_positive, pivot.prob_after, first_token_alternatives(pivot, min_samples), min_delta
    )
    mine = (pivot.pivot_token_id, pivot.pivot_token)
    theirs = (other.token_id, other.token) if other is not None else (None, "")
    (s_id, s_tok), (f_id, f_tok) = (mine, theirs) if pivot.is_positive else (theirs, mine)
    return Decision(s_id, f_id, s_tok, f_tok)


def _objective(logp: Any, rows: Any, decisions: Sequence[Decision]) -> Any:
    """Sum over rows of each row's objective, from next-token log-probabilities ``logp`` [rows, vocab]."""
    total = logp.new_zeros(())
    for j, d in enumerate(decisions):
        if d.success_id is not None:
            total = total + logp[j, d.success_id]
        if d.failure_id is not None:
            total = total - logp[j, d.failure_id]
    return total


def _batches(sequences: Sequence[Sequence[int]], batch_size: int):
    """Right-padded batches (rows, ids, attention mask, position ids, index of each row's last token)."""
    import torch

    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        width = max(len(sequences[i]) for i in rows)
        ids = torch.zeros((len(rows), width), dtype=torch.long)
        attn = torch.zeros((len(rows), width), dtype=torch.long)
        for j, i in enumerate(rows):
            if not len(sequences[i]):
                raise PTSError("a pivot has an empty context")
            ids[j, : len(sequences[i])] = torch.tensor(list(sequences[i]), dtype=torch.long)
            attn[j, : len(sequences[i])] = 1
        last = attn.sum(-1) - 1
        yield rows, ids, attn, (attn.cumsum(-1) - 1).clamp(min=0), last


def decision_gradients(
    model: Any,
    sequences: Sequence[Sequence[int]],
    decisions: Sequence[Decision],
    layers: Sequence[int],
    *,
    batch_size: int = 8,
) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """Gradients of each decision's objective at the last position of its context, per layer, and the residuals.

    ``sequences[i]`` is the context of ``decisions[i]`` (token ids, ending with
    the token before the pivot). Returns ``(grads, residuals)``: ``grads[L]`` is
    a float32 array [n, hidden], the gradient of row i's objective (see
    :class:`Decision`) with respect to the output of decoder layer ``L`` at the
    context's last position; ``residuals[L]`` that output itself. Computed in
    the model's own dtype, batched with right padding, an attention mask and
    position ids (a row's gradient depends only on that row). The model's
    weights are not changed and need not require gradients.
    """
    import torch

    blocks = decoder_layers(model)
    check_layers(layers, len(blocks))
    if len(sequences) != len(decisions):
        raise ValueError("one decision per sequence")
    device = next(model.parameters()).device
    lowest = min(layers)
    grads = {layer: np.zeros((len(sequences), 0), np.float32) for layer in layers}
    residuals = {layer: np.zeros((len(sequences), 0), np.float32) for layer in layers}
    out_g: dict[int, list] = {layer: [None] * len(sequences) for layer in layers}
    out_r: dict[int, list] = {layer: [None] * len(sequences) for layer in layers}
    kept: dict[int, Any] = {}

    def hook(layer: int):
        def capture(_module, _inputs, output):
            hidden = output[0] if isinstance(output, tuple) else output
            if layer == lowest:  # the graph starts here: the weights need no gradient
                hidden = hidden.detach().requires_grad_(True)
            hidden.retain_grad()
            kept[layer] = hidden
            return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

        return capture

    handles = [blocks[layer].register_forward_hook(hook(layer)) for layer in layers]
    try:
        with torch.enable_grad():
            for rows, ids, attn, positions, last in _batches(sequences, batch_size):
                kept.clear()
                logits = model(
                    input_ids=ids.to(device),
                    attention_mask=attn.to(device),
                    position_ids=positions.to(device),
                    use_cache=False,
                ).logits
                at = torch.arange(len(rows), device=logits.device)
                logp = torch.log_softmax(logits[at, last.to(logits.device)].float(), -1)
                _objective(logp, rows, [decisions[i] for i in rows]).backward()
                for layer in layers:
                    h = kept[layer]
                    g = h.grad[at, last.to(h.device)].float().cpu().numpy()
                    r = h.detach()[at, last.to(h.device)].float().cpu().numpy()
                    for j, i in enumerate(rows):
                        out_g[layer][i], out_r[layer][i] = g[j], r[j]
    finally:
        for h in handles:
            h.remove()
    for layer in layers:
        grads[layer] = np.stack(out_g[layer]).astype(np.float32)
        residuals[layer] = np.stack(out_r[layer]).astype(np.float32)
    return grads, residuals


def layer_gains(grads: dict[int, np.ndarray]) -> dict[int, float]:
    """Median over rows of the gradient's norm at each layer: the objective's first-order gain per unit added there."""
    return {layer: float(np.median(np.linalg.norm(g, axis=1))) for layer, g in grads.items()}


def choose_layer(grads: dict[int, np.ndarray]) -> int:
    """The layer where a unit vector along each row's gradient moves its decision the most (median over rows)."""
    gains = layer_gains(grads)
    return max(sorted(gains), key=lambda layer: gains[layer])


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Each row divided by its L2 norm (rows of zeros stay zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def optillm_strength(pattern_strength: float, prob_delta: float) -> float:
    """The norm optillm 0.4.0 adds: the pattern's strength clamped to [0.1, 2] times |prob_delta| clamped to
    [0.1, 2], the product clamped to [0, 3] (``SteeringHook.__call__`` and ``_apply_steering_vector``)."""
    return min(max(min(max(pattern_strength, 0.1), 2.0) * min(max(abs(prob_delta), 0.1), 2.0), 0.0), 3.0)


def pair_residuals(
    model: Any,
    contexts: Sequence[Sequence[int]],
    decisions: Sequence[Decision],
    layers: Sequence[int],
    *,
    batch_size: int = 8,
) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """Residuals at the success-side and at the failure-side token appended to each context, per layer.

    Only decisions with both sides count; returns ``(success, failure)``, each
    ``{layer: float32 array [pairs, hidden]}`` in the order of those decisions.
    """
    from pts.export.steering import context_activations

    both = [(c, d) for c, d in zip(contexts, decisions) if d.success_id is not None and d.failure_id is not None]
    if not both:
        raise PTSError("a control vector needs pivots with a measured counterpart (first_tokens), and none has one")
    success, _ = context_activations(model, [[*c, d.success_id] for c, d in both], layers, batch_size=batch_size)
    failure, _ = context_activations(model, [[*c, d.failure_id] for c, d in both], layers, batch_size=batch_size)
    return success, failure


def control_directions(success: dict[int, np.ndarray], failure: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    """Per layer, the mean of the paired differences (success minus failure) scaled to unit length, as repeng's
    directions are (it points toward success by construction: no sign to pick)."""
    out = {}
    for layer in success:
        diff = success[layer] - failure[layer]
        direction = diff.mean(axis=0)
        norm = float(np.linalg.norm(direction))
        if norm == 0:
            raise PTSError(f"layer {layer}: the success and failure residuals do not differ")
        out[layer] = (direction / norm).astype(np.float32)
    return out
