"""The vector files: steering vectors (optillm's JSONL rows) and control vectors (repeng / llama.cpp GGUF).

:class:`ControlVector` is the one reader and writer of GGUF control vectors:
``pts export --format control-vector`` writes with :meth:`ControlVector.to_gguf`
and ``pts steer --control-vector`` reads with :meth:`ControlVector.from_gguf`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pts.errors import PTSError
from pts.store import atomic_write, read_jsonl

log = logging.getLogger(__name__)

ARCH = "controlvector"  # general.architecture of a control-vector GGUF


@dataclass
class SteeringVector:
    """One steering vector from an optillm-style JSONL row.

    ``layer`` is the row's ``steering_layer`` (None when absent); ``context_ids``
    are the exact ``pivot_context_ids`` of a pts record when the row has them.
    """

    vector: list[float]
    layer: int | None
    is_positive: bool = True
    adds_toward_success: bool = False  # the vector already points toward success: add it whatever the pivot's sign
    pivot_context: str = ""
    context_ids: list[int] | None = None
    pivot_token: str = ""
    prob_delta: float = 0.0
    reasoning_pattern: str = "unknown"
    cluster_id: int = -1
    model_id: str = ""
    line: int = 0


def _as_float_list(value: Any, where: str) -> list[float]:
    """A vector given as a list, a JSON string or a comma-separated string (optillm accepts all three)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            try:
                value = [float(x) for x in value.strip().strip("[]").split(",") if x.strip()]
            except ValueError:
                raise PTSError(f"{where}: the vector is not a list of numbers") from None
    if not isinstance(value, (list, tuple)) or not value:
        raise PTSError(f"{where}: the vector is not a non-empty list of numbers")
    try:
        out = [float(x) for x in value]
    except (TypeError, ValueError):
        raise PTSError(f"{where}: the vector is not a list of numbers") from None
    if not all(math.isfinite(x) for x in out):
        raise PTSError(f"{where}: the vector holds a NaN or infinite value")
    return out


def _as_int(value: Any, where: str, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise PTSError(f"{where}: {name} must be an integer, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise PTSError(f"{where}: {name} must be an integer, got {value!r}") from None
    if not number.is_integer():
        raise PTSError(f"{where}: {name} must be an integer, got {value!r}")
    return int(number)


def load_steering_vectors(
    path: str | Path, vector_field: str = "steering_vector", layer: int | None = None
) -> list[SteeringVector]:
    """Read steering vectors from a JSONL file in optillm's autothink shape (or the folder holding only it).

    ``vector_field`` names the field that holds the vector (``steering_vector``,
    or e.g. ``cluster_vector``); it may hold a list of floats, a JSON string, or
    an object mapping layer numbers to lists (then ``layer`` or the row's
    ``steering_layer`` picks one). A row without ``is_positive`` (files of the
    original pts tool) takes its sign from ``prob_delta``. Rows whose vector is
    null or all zeros are dropped with a warning (they have no direction). Raises
    PTSError on a missing or malformed file, a row without the vector, or rows
    of different sizes.
    """
    p = Path(path)
    if p.is_dir():  # the folder pts export writes for optillm
        files = sorted(f for f in p.iterdir() if f.suffix == ".jsonl" and not f.name.startswith("."))
        if len(files) != 1:
            raise PTSError(f"{p} holds {len(files)} .jsonl files; name the steering file itself")
        p = files[0]
    if not p.is_file():
        raise PTSError(f"steering vector file {p} does not exist" if not p.exists() else f"{p} is not a file")
    rows = read_jsonl(p)
    if not rows:
        raise PTSError(f"{p} holds no steering vectors")
    out: list[SteeringVector] = []
    dim = None
    empty = 0
    for n, row in enumerate(rows, 1):
        where = f"{p} row {n}"
        if vector_field not in row:
            raise PTSError(f"{where} has no '{vector_field}' field (fields: {', '.join(sorted(row))[:200]})")
        row_layer = _as_int(row.get("steering_layer"), where, "steering_layer")
        value = row[vector_field]
        if value is None:  # e.g. pts export's contrastive_vector when the export has one side only
            empty += 1
            continue
        if isinstance(value, dict):
            want = layer if layer is not None else row_layer
            by_layer = {_as_int(k, where, "a layer key"): v for k, v in value.items()}
            if want is None or want not in by_layer:
                raise PTSError(
                    f"{where}: '{vector_field}' has vectors for layers {sorted(by_layer)}; pick one with --layer"
                )
            value, row_layer = by_layer[want], want
        vec = _as_float_list(value, where)
        if dim is None:
            dim = len(vec)
        elif len(vec) != dim:
            raise PTSError(f"{where}: vector has {len(vec)} dimensions, earlier rows have {dim}")
        if not any(vec):
            empty += 1
            continue
        prob_delta = row.get("prob_delta")
        numeric = isinstance(prob_delta, (int, float)) and not isinstance(prob_delta, bool)
        prob_delta = float(prob_delta) if numeric else 0.0
        if "is_positive" in row:
            positive = row["is_positive"]
            if isinstance(positive, str):
                positive = positive.strip().lower() in ("true", "1", "yes")
            positive = bool(positive)
        else:
            positive = prob_delta >= 0
        ids = row.get("pivot_context_ids")
        if ids is not None and not (
            isinstance(ids, list) and all(isinstance(t, int) and not isinstance(t, bool) for t in ids)
        ):
            raise PTSError(f"{where}: pivot_context_ids must be a list of token ids")
        out.append(
            SteeringVector(
                vector=vec,
                layer=row_layer,
                is_positive=positive,
                adds_toward_success=row.get("adds_toward_success") is True,
                pivot_context=str(row.get("pivot_context") or ""),
                context_ids=ids or None,
                pivot_token=str(row.get("pivot_token") or ""),
                prob_delta=prob_delta,
                reasoning_pattern=str(row.get("reasoning_pattern") or "unknown"),
                cluster_id=_as_int(row.get("cluster_id"), where, "cluster_id")
                if row.get("cluster_id") is not None
                else -1,
                model_id=str(row.get("model_id") or ""),
                line=n,
            )
        )
    if empty:
        log.warning("%s: dropped %d rows whose '%s' is null or all zeros (no direction)", p, empty, vector_field)
    if not out:
        raise PTSError(f"{p}: every '{vector_field}' is null or all zeros")
    return out


@dataclass
class ControlVector:
    """A repeng / llama.cpp control vector: ``directions[n]`` is added to the output of decoder layer ``n``.

    As a file (:meth:`from_gguf`, :meth:`to_gguf`; repeng's ``import_gguf`` and
    ``export_gguf``, llama.cpp's ``--control-vector FILE``): a GGUF of
    architecture ``controlvector`` with the keys ``controlvector.model_hint``
    (the model type, e.g. ``llama``) and ``controlvector.layer_count``, and one
    1-D float32 tensor ``direction.<n>`` per layer. llama.cpp adds it at every
    position, scaled by ``--control-vector-scaled FILE S``, and rejects
    ``direction.0``.

    Directions may be given as lists or arrays; they are kept as lists of
    floats. PTSError when there are none, or they are not 1-D vectors of one size.
    """

    directions: dict[int, list[float]]
    model_hint: str = ""

    def __post_init__(self) -> None:
        if not self.directions:
            raise PTSError("a control vector needs at least one layer")
        directions = {}
        for n, vec in self.directions.items():
            array = np.asarray(vec, dtype=np.float64)
            if array.ndim != 1:
                raise PTSError("every control-vector direction must be a 1-D vector of the same size")
            directions[int(n)] = array.tolist()
        if len({len(v) for v in directions.values()}) > 1:
            raise PTSError("every control-vector direction must be a 1-D vector of the same size")
        self.directions = directions

    @property
    def dim(self) -> int:
        return len(next(iter(self.directions.values())))

    @classmethod
    def from_gguf(cls, path: str | os.PathLike) -> ControlVector:
        """Read a GGUF control vector (architecture ``controlvector``, tensors ``direction.<layer>``).

        Several tensors for one layer are summed, as llama.cpp does; other
        tensors are ignored with a warning. Raises PTSError on a missing file, a
        file that is not GGUF, another architecture, no direction tensors, a bad
        tensor name, a NaN or infinite value, or directions of different sizes.
        """
        p = Path(path)
        if not p.is_file():
            raise PTSError(f"control vector file {p} does not exist" if not p.exists() else f"{p} is not a file")
        gguf = _gguf()
        try:
            reader = gguf.GGUFReader(str(p))
        except Exception as e:  # noqa: BLE001 - on non-GGUF bytes the reader raises ValueError, struct.error...
            reason = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:120]}"
            raise PTSError(f"{p} is not a readable GGUF file ({reason})") from None
        arch_field = reader.get_field("general.architecture")
        arch = arch_field.contents() if arch_field is not None else None
        if arch != ARCH:
            raise PTSError(f"{p} is a GGUF file of architecture {arch!r}, not a control vector ('{ARCH}')")
        hint_field = reader.get_field(f"{ARCH}.model_hint")
        hint = hint_field.contents() if hint_field is not None else ""
        directions: dict[int, list[float]] = {}
        for tensor in reader.tensors:
            if not tensor.name.startswith("direction."):
                log.warning("%s: ignoring tensor %s (not direction.<layer>)", p, tensor.name)
                continue
            try:
                n = int(tensor.name.split(".", 1)[1])
            except ValueError:
                raise PTSError(f"{p}: tensor name {tensor.name!r} is not direction.<layer number>") from None
            if n < 0:
                raise PTSError(f"{p}: tensor {tensor.name} names a negative layer")
            vec = [float(x) for x in tensor.data.reshape(-1).tolist()]
            if not all(math.isfinite(x) for x in vec):
                raise PTSError(f"{p}: tensor {tensor.name} holds a NaN or infinite value")
            if n in directions:
                vec = [a + b for a, b in zip(directions[n], vec)]
            directions[n] = vec
        if not directions:
            raise PTSError(f"{p} has no direction.<layer> tensors")
        dims = {len(v) for v in directions.values()}
        if len(dims) > 1:
            raise PTSError(f"{p}: directions of different sizes {sorted(dims)}")
        if 0 in directions:
            log.warning("%s has direction.0: pts applies it to the output of layer 0, llama.cpp refuses such a file", p)
        return cls(dict(sorted(directions.items())), str(hint))

    def to_gguf(self, path: str | os.PathLike, extra: Mapping[str, str | int] | None = None) -> None:
        """Write the vector as a GGUF control vector at ``path``, atomically (nothing is left on an error).

        ``extra`` adds string or integer metadata under ``pts.<key>`` (llama.cpp
        ignores metadata it does not know). PTSError for a direction at layer 0,
        which llama.cpp refuses.
        """
        if 0 in self.directions:
            raise PTSError("llama.cpp rejects a control vector for layer 0; choose layers from 1 up")
        gguf = _gguf()
        target = Path(path)
        # gguf writes in several passes to a named file: write a scratch copy, then move it in whole
        with tempfile.TemporaryDirectory(dir=target.parent if str(target.parent) else ".") as tmp:
            scratch = Path(tmp) / "vector.gguf"
            writer = gguf.GGUFWriter(str(scratch), ARCH)
            writer.add_string(f"{ARCH}.model_hint", self.model_hint)
            writer.add_uint32(f"{ARCH}.layer_count", len(self.directions))
            for key, value in (extra or {}).items():
                if isinstance(value, int) and not isinstance(value, bool):
                    writer.add_uint32(f"pts.{key}", value)
                else:
                    writer.add_string(f"pts.{key}", str(value))
            for layer in sorted(self.directions):
                writer.add_tensor(f"direction.{layer}", np.ascontiguousarray(self.directions[layer], dtype=np.float32))
            writer.write_header_to_file()
            writer.write_kv_data_to_file()
            writer.write_tensors_to_file()
            writer.close()
            with atomic_write(target, "wb") as f:
                f.write(scratch.read_bytes())


def _gguf():
    try:
        import gguf
    except ImportError:
        raise PTSError("reading or writing GGUF control vectors needs the gguf package: pip install gguf") from None
    return gguf
