"""Layer numbers: parsing them from the command line, finding the model's decoder blocks, range checks.

Layer ``n`` is the decoder block ``model.model.layers[n]`` (0-based); see
:mod:`pts.steering` for how this matches repeng, llama.cpp and optillm.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pts.errors import PTSError


def parse_layers(values: str | int | Sequence[str] | None, flag: str = "--layer") -> list[int] | None:
    """Layer numbers from ``"15"``, ``15``, ``"3,5,7"``, ``"3 5 7"`` or inclusive ranges ``"10-14"``.

    ``values`` may also be several command-line arguments (``["3,", "5 7"]``).
    None and a blank string stay None (no layer chosen); duplicates are dropped,
    order kept. Raises PTSError naming ``flag`` on anything that is not layer
    numbers (negative numbers included) or names no layer.
    """
    if values is None or (isinstance(values, str) and not values.strip()):
        return None
    text = str(values) if isinstance(values, (str, int)) else " ".join(map(str, values))
    layers: list[int] = []
    try:
        for part in text.replace(",", " ").split():
            lo, sep, hi = part.partition("-")
            layers += list(range(int(lo), int(hi) + 1)) if sep else [int(part)]
    except ValueError:
        raise PTSError(f"{flag} must be layer numbers like 15, 3,5,7 or 10-14; got {values!r}") from None
    if not layers:
        raise PTSError(f"{flag} names no layer: {values!r}")
    return list(dict.fromkeys(layers))


def decoder_layers(model: Any) -> Sequence[Any]:
    """The model's decoder blocks, in order (the modules whose outputs are the residual stream)."""
    for path in (
        "model.layers",
        "model.language_model.layers",
        "model.decoder.layers",
        "transformer.h",
        "gpt_neox.layers",
        "layers",
    ):
        obj = model
        for attr in path.split("."):
            obj = getattr(obj, attr, None)
            if obj is None:
                break
        if obj is not None and hasattr(obj, "__len__") and len(obj) > 0:
            return obj
    raise PTSError(f"cannot find the decoder layers of {type(model).__name__}")


def hidden_size(model: Any) -> int:
    """Width of the residual stream: what a steering vector's length must be."""
    return int(model.get_input_embeddings().weight.shape[1])


def check_layers(layers: Sequence[int], num_layers: int, what: str = "") -> None:
    """Raise PTSError unless every layer is one of the model's ``0..num_layers - 1``; ``what`` starts the message."""
    bad = [n for n in layers if not 0 <= n < num_layers]
    if bad:
        raise PTSError(
            f"{what + ' ' if what else ''}layer {bad[0]} is out of range: the model has {num_layers} "
            f"layers (0..{num_layers - 1})"
        )
