"""What a steering adds, row by row and layer by layer: context steering (steering vectors) and control steering.

:func:`build_steering` checks the loaded vectors against the model (hidden
size, layer range) and returns a :data:`Steering`. During generation each row
keeps a :class:`RowSteer`; before every forward, ``steering.tensors(rows, ...)``
gives per layer what to add, which :class:`pts.steering.hooks.SteeringHooks`
adds to that layer's output.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pts.errors import PTSError
from pts.steering.layers import check_layers, decoder_layers, hidden_size, parse_layers
from pts.steering.matching import SuffixMatcher
from pts.steering.vectors import ControlVector, SteeringVector

if TYPE_CHECKING:
    import torch

    # What a steering adds at one layer: (to every position, to the last position), each [rows, hidden] or None.
    LayerDelta = tuple[torch.Tensor | None, torch.Tensor | None]

log = logging.getLogger(__name__)

DEFAULT_STEERING_STRENGTH = 2.0  # optillm's SteeringVectorManager.default_strength
DEFAULT_CONTROL_STRENGTH = 1.0  # llama.cpp's --control-vector scale

MatchMode = Literal["continuous", "once", "local"]
MATCH_MODES = ("continuous", "once", "local")
MATCH_ON = ("auto", "ids", "text")


@dataclass
class RowSteer:
    """Steering state of one generated row: its token history and the vector now active (an index, or None)."""

    enabled: bool
    history: list[int]
    active: int | None = None
    positions: int = 0
    used: list[int] = field(default_factory=list)

    def activate(self, index: int | None) -> None:
        self.active = index
        if index is not None and index not in self.used:
            self.used.append(index)


class ContextSteering:
    """Steering vectors applied where the generated context matches their pivot context (see :mod:`pts.steering`).

    ``vectors[k]`` is added at ``layers_of[k]`` as ``sign * scale * v / |v|``:
    sign -1 for negative pivots, scale ``strength`` (times ``|prob_delta|``
    clipped to [0.1, 2], as optillm does, when ``scale_by_delta``).
    ``contexts[k]`` are the token ids its pivot context is matched on.
    """

    def __init__(
        self,
        vectors: Sequence[SteeringVector],
        contexts: Sequence[Sequence[int]],
        layers_of: Sequence[int],
        strength: float,
        match: MatchMode = "continuous",
        scale_by_delta: bool = False,
    ):
        if match not in MATCH_MODES:
            raise PTSError(f"--match must be one of {', '.join(MATCH_MODES)}, got {match!r}")
        self.vectors = list(vectors)
        self.layers_of = [int(n) for n in layers_of]
        self.strength = float(strength)
        self.mode = match
        self.scale_by_delta = scale_by_delta
        self.matcher = SuffixMatcher(contexts)
        self.layers = sorted(set(self.layers_of))
        self._tables: dict[tuple, tuple] = {}

    def scale(self, k: int) -> float:
        v = self.vectors[k]
        s = self.strength
        if self.scale_by_delta:
            s *= min(max(abs(v.prob_delta), 0.1), 2.0)
        return s if v.is_positive or v.adds_toward_success else -s

    def start(self, prompt_ids: Sequence[int], enabled: bool) -> RowSteer:
        row = RowSteer(enabled, list(prompt_ids))
        if enabled:
            row.activate(self.matcher.match(row.history))
        return row

    def observe(self, row: RowSteer, token: int) -> None:
        row.history.append(int(token))
        if not row.enabled or self.mode == "once":
            return
        found = self.matcher.match(row.history)
        if self.mode == "local" or found is not None:  # local: a non-matching position clears the vector
            row.activate(found)

    def is_active(self, row: RowSteer) -> bool:
        return row.enabled and row.active is not None

    def _table(self, device, dtype):
        import torch

        key = (str(device), dtype)
        if key not in self._tables:
            vecs = torch.tensor([v.vector for v in self.vectors], dtype=torch.float32)
            unit = torch.nn.functional.normalize(vecs, dim=-1)
            scales = torch.tensor([self.scale(k) for k in range(len(self.vectors))], dtype=torch.float32)
            # row 0 is "no vector": rows without an active vector add exact zeros
            table = torch.cat([torch.zeros(1, vecs.shape[1]), unit * scales[:, None]]).to(device=device, dtype=dtype)
            layer_of = torch.tensor([-1, *self.layers_of], device=device)
            self._tables[key] = (table, layer_of)
        return self._tables[key]

    def tensors(self, rows: Sequence[RowSteer], device, dtype) -> dict[int, LayerDelta]:
        """Per steered layer: (added at every position, added at the last position), each [rows, hidden] or None."""
        import torch

        table, layer_of = self._table(device, dtype)
        idx = torch.tensor([r.active + 1 if self.is_active(r) else 0 for r in rows], device=device)
        return {n: (None, table[torch.where(layer_of[idx] == n, idx, 0)]) for n in self.layers}


class ControlSteering:
    """A control vector: ``strength * directions[n]`` added to the output of layer ``n`` at every position."""

    def __init__(self, control: ControlVector, strength: float, layers: Sequence[int] | None = None):
        self.control = control
        self.strength = float(strength)
        self.layers = sorted(layers if layers is not None else control.directions)
        self._tables: dict[tuple, dict] = {}

    def start(self, prompt_ids: Sequence[int], enabled: bool) -> RowSteer:
        return RowSteer(enabled, [], active=0 if enabled else None)

    def observe(self, row: RowSteer, token: int) -> None:
        pass

    def is_active(self, row: RowSteer) -> bool:
        return row.enabled

    def tensors(self, rows: Sequence[RowSteer], device, dtype) -> dict[int, LayerDelta]:
        """Per layer of the vector: (``strength * direction`` for steered rows, zeros for others; None)."""
        import torch

        key = (str(device), dtype)
        if key not in self._tables:
            self._tables[key] = {
                n: (self.strength * torch.tensor(self.control.directions[n], dtype=torch.float32)).to(
                    device=device, dtype=dtype
                )
                for n in self.layers
            }
        gate = torch.tensor([r.enabled for r in rows], device=device, dtype=dtype)[:, None]
        return {n: (gate * d[None, :], None) for n, d in self._tables[key].items()}


Steering = ContextSteering | ControlSteering


def build_steering(
    vectors: list[SteeringVector] | ControlVector,
    model: Any,
    tokenizer: Any,
    *,
    strength: float | None = None,
    layer: str | int | Sequence[int] | None = None,
    match: MatchMode = "continuous",
    match_on: str = "auto",
    scale_by_delta: bool = False,
    model_id: str | None = None,
) -> Steering:
    """Check vectors against the model (hidden size, layer range) and build the steering to generate with.

    Steering vectors are applied at their ``steering_layer``, or at ``layer``
    when given (a file with vectors at several layers keeps only that layer's);
    a control vector is applied at all its layers, or only at ``layer``
    (one or more). ``match_on``: ``ids`` matches on ``pivot_context_ids``
    (exact, pts records), ``text`` re-tokenizes ``pivot_context`` as optillm
    does, ``auto`` uses ids where a row has them. Raises PTSError on any mismatch.
    """
    size = hidden_size(model)
    wanted = (
        [layer]
        if isinstance(layer, int)
        else parse_layers(layer)
        if isinstance(layer, (str, type(None)))
        else list(layer)
    )
    if isinstance(vectors, ControlVector):
        if vectors.dim != size:
            raise PTSError(f"the control vector has {vectors.dim} dimensions but the model's hidden size is {size}")
        if wanted is not None:
            missing = [n for n in wanted if n not in vectors.directions]
            if missing:
                raise PTSError(
                    f"the control vector has no direction for layer {missing[0]} "
                    f"(it has layers {', '.join(map(str, vectors.directions))})"
                )
        use = wanted if wanted is not None else list(vectors.directions)
        check_layers(use, len(decoder_layers(model)), "control vector")
        return ControlSteering(vectors, DEFAULT_CONTROL_STRENGTH if strength is None else strength, use)

    dims = len(vectors[0].vector)
    if dims != size:
        raise PTSError(f"the steering vectors have {dims} dimensions but the model's hidden size is {size}")
    if wanted is not None and len(wanted) != 1:
        raise PTSError("--layer takes one layer for steering vectors")
    override = wanted[0] if wanted else None
    file_layers = sorted({v.layer for v in vectors if v.layer is not None})
    if override is not None and override in file_layers and len(file_layers) > 1:
        vectors = [v for v in vectors if v.layer == override]
    if override is None:
        unplaced = [v for v in vectors if v.layer is None]
        if unplaced:
            raise PTSError(f"steering vector on row {unplaced[0].line} has no steering_layer; pass --layer")
        if len(file_layers) > 1:
            log.warning(
                "steering vectors at layers %s: each is added at its own layer (pass --layer to pick one)", file_layers
            )
    layers_of = [override if override is not None else int(v.layer) for v in vectors]  # type: ignore[arg-type]
    check_layers(sorted(set(layers_of)), len(decoder_layers(model)), "steering")
    ids_of = [v.context_ids if match_on != "text" else None for v in vectors]
    if match_on == "ids" and any(c is None for c in ids_of):
        raise PTSError("--match-on ids needs pivot_context_ids in every row (pts records); use --match-on text")
    contexts = [
        ids if ids is not None else tokenizer.encode(v.pivot_context, add_special_tokens=False)
        for v, ids in zip(vectors, ids_of)
    ]
    others = sorted({v.model_id for v in vectors if v.model_id and model_id and v.model_id != model_id})
    if others:
        log.warning("steering vectors were made with %s, not %s", ", ".join(others), model_id)
    return ContextSteering(
        vectors,
        contexts,
        layers_of,
        DEFAULT_STEERING_STRENGTH if strength is None else strength,
        match=match,
        scale_by_delta=scale_by_delta,
    )  # type: ignore[arg-type]


def added_norm(steering: Steering, layer: int) -> float:
    """L2 norm of what the steering adds at ``layer`` (before any ``|prob_delta|`` scaling)."""
    if isinstance(steering, ControlSteering):
        return abs(steering.strength) * math.sqrt(sum(x * x for x in steering.control.directions[layer]))
    return abs(steering.strength)


def describe(steering: Steering, source: str) -> str:
    """One line saying what is added where, for reports; ``source`` names the vector file."""
    if isinstance(steering, ControlSteering):
        return (
            f"control vector {source}: layers {_ranges(steering.layers)}, strength {steering.strength:g} "
            f"(added at every position)"
        )
    pos = sum(v.is_positive for v in steering.vectors)
    return (
        f"{len(steering.vectors)} steering vectors from {source} ({pos} positive, {len(steering.vectors) - pos} "
        f"negative): layer {_ranges(steering.layers)}, strength {steering.strength:g}"
        f"{' x |prob_delta|' if steering.scale_by_delta else ''}, match {steering.mode}"
    )


def _ranges(layers: Sequence[int]) -> str:
    out, run = [], []
    for n in sorted(layers):
        if run and n == run[-1] + 1:
            run.append(n)
        else:
            if run:
                out.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
            run = [n]
    if run:
        out.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
    return ",".join(out)
