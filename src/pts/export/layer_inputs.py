"""What the steering and control-vector writers share: the pivots kept, the model and the layers to read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pts.errors import PTSError
from pts.export.records import PivotalTokenRow, attach_token_ids, warn_model
from pts.formats.base import ExportRequest


@dataclass
class LayerInputs:
    """``pivots`` kept (token ids attached), the ``loaded`` model, the ``layers`` to read, the steering layer
    ``select`` when the user chose one (None: chosen by measurement, or a control vector), and a ``note``."""

    pivots: list[PivotalTokenRow]
    loaded: Any
    layers: list[int]
    select: int | None
    note: str


def layer_inputs(request: ExportRequest, *, control_vector: bool) -> LayerInputs:
    """The pivots of ``request`` with ``|prob_delta| >= settings.min_prob_delta``, the model they are read with,
    and the layers to read (``settings.layer_nums``; by default every layer from 1 for steering, whose layer is
    then chosen by measurement, and 60/75/90% of the depth for a control vector). A control vector needs pivots
    with a measured counterpart, and layer 0 is refused (llama.cpp's rule). PTSError (one line) before any
    forward pass when the export cannot be made."""
    from pts.export.steering import default_layers
    from pts.steering.directions import decision_tokens
    from pts.steering.layers import check_layers, decoder_layers

    settings = request.settings
    kept = [p for p in request.pivots if abs(p.prob_delta) >= settings.min_prob_delta - 1e-9]
    if not kept:
        raise PTSError(f"no record has |prob_delta| >= {settings.min_prob_delta} (--min-prob-delta)")
    if control_vector and not any(decision_tokens(p).objective == "logit_difference" for p in kept):
        raise PTSError(
            "a control vector contrasts the success-side and failure-side tokens of pivots, and no record has a "
            "measured counterpart (first_tokens with 2 or more rollouts and a p(success) gap of 0.1; the original "
            "tool's records have none)"
        )
    loaded = request.load_model(kept)
    warn_model(kept, loaded.model_id)
    num_layers = len(decoder_layers(loaded.model))
    select = None
    if control_vector:
        layers = list(settings.layer_nums or default_layers(num_layers))
    else:
        layers = list(settings.layer_nums or range(1, num_layers))
        select = settings.select_layer
        if select is not None and select not in layers:
            layers.append(select)
    check_layers(layers, num_layers)
    if control_vector and 0 in layers:
        raise PTSError("llama.cpp rejects a control vector for layer 0 (direction.0); choose layers from 1 up")
    redone = attach_token_ids(kept, loaded.tokenizer)
    note = f"{redone} contexts were tokenized again (no usable token ids recorded)" if redone else ""
    return LayerInputs(kept, loaded, layers, select, note)
