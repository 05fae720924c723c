"""What the steering and control-vector writers share: the pivots kept, the model and the layers to read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pts.errors import PTSError
from pts.export.records import PivotRecord, attach_token_ids, warn_model
from pts.formats.base import ExportRequest


@dataclass
class LayerInputs:
    """``pivots`` kept (token ids attached), the ``loaded`` model, the ``layers`` to read, the steering layer
    ``select`` (None for a control vector), and a ``note`` to print."""

    pivots: list[PivotRecord]
    loaded: Any
    layers: list[int]
    select: int | None
    note: str


def layer_inputs(request: ExportRequest, *, both_signs: bool, select_layer: bool) -> LayerInputs:
    """The pivots of ``request`` with ``|prob_delta| >= settings.min_prob_delta``, the model they are read with,
    and the layers (``settings.layer_nums``, default 60/75/90% of the depth; ``select_layer``: the steering layer
    added to them). ``both_signs``: the export contrasts positive with negative pivots, and layer 0 is refused
    (llama.cpp's rule). PTSError (one line) before any forward pass when the export cannot be made."""
    from pts.export.steering import default_layers
    from pts.steering.layers import check_layers, decoder_layers

    settings = request.settings
    kept = [p for p in request.pivots if abs(p.prob_delta) >= settings.min_prob_delta - 1e-9]
    if not kept:
        raise PTSError(f"no record has |prob_delta| >= {settings.min_prob_delta} (--min-prob-delta)")
    if both_signs:
        signs = {p.is_positive for p in kept}
        if len(signs) < 2:
            side = "positive" if True in signs else "negative"
            raise PTSError(f"a control vector contrasts positive and negative pivots, but every record is {side}")
    loaded = request.load_model(kept)
    warn_model(kept, loaded.model_id)
    num_layers = len(decoder_layers(loaded.model))
    layers = list(settings.layer_nums or default_layers(num_layers))
    select = None
    if select_layer:
        select = settings.select_layer if settings.select_layer is not None else layers[0]
        if select not in layers:
            layers.append(select)
    check_layers(layers, num_layers)
    if both_signs and 0 in layers:
        raise PTSError("llama.cpp rejects a control vector for layer 0 (direction.0); choose layers from 1 up")
    redone = attach_token_ids(kept, loaded.tokenizer)
    note = f"{redone} contexts were tokenized again (no usable token ids recorded)" if redone else ""
    return LayerInputs(kept, loaded, layers, select, note)
