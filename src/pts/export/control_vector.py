"""A GGUF control vector for llama.cpp (``--control-vector FILE``), as repeng writes it.

The file has architecture ``controlvector``, the keys
``controlvector.model_hint`` (the model type, e.g. ``llama``) and
``controlvector.layer_count``, and one 1-D float32 tensor ``direction.<L>`` per
layer. llama.cpp adds ``direction.<L>`` to the output of decoder block ``L``
(0-based) at every position, scaled by ``--control-vector-scaled FILE S``;
it rejects ``direction.0``. repeng's ``ControlVector.import_gguf`` reads the
same file.

The direction of each layer is the contrastive direction of the pivots: the
mean activation before positive pivots minus the mean before negative ones
(at the position that predicts the pivot token, see :mod:`pts.export.steering`).
It is not normalised: strength 1 moves the average negative-pivot state to the
average positive one at that layer, and llama.cpp adds it at every layer
listed, so the effects add up along the residual stream.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from pts.errors import PTSError
from pts.store import atomic_write

ARCH = "controlvector"


def write_control_vector(path: str | os.PathLike, directions: Mapping[int, np.ndarray], model_hint: str,
                         extra: Mapping[str, str | int] | None = None) -> None:
    """Write ``directions`` (layer -> vector) as a GGUF control vector at ``path``, atomically.

    ``extra`` adds string or integer metadata under ``pts.<key>`` (llama.cpp
    ignores metadata it does not know).
    """
    import gguf

    if not directions:
        raise PTSError("a control vector needs at least one layer")
    if 0 in directions:
        raise PTSError("llama.cpp rejects a control vector for layer 0; choose layers from 1 up")
    sizes = {np.asarray(v).shape for v in directions.values()}
    if len(sizes) != 1 or len(next(iter(sizes))) != 1:
        raise PTSError("every control-vector direction must be a 1-D vector of the same size")
    target = Path(path)
    with tempfile.TemporaryDirectory(dir=target.parent if str(target.parent) else ".") as tmp:
        scratch = Path(tmp) / "vector.gguf"
        writer = gguf.GGUFWriter(str(scratch), ARCH)
        writer.add_string(f"{ARCH}.model_hint", model_hint)
        writer.add_uint32(f"{ARCH}.layer_count", len(directions))
        for key, value in (extra or {}).items():
            if isinstance(value, int) and not isinstance(value, bool):
                writer.add_uint32(f"pts.{key}", value)
            else:
                writer.add_string(f"pts.{key}", str(value))
        for layer in sorted(directions):
            writer.add_tensor(f"direction.{layer}", np.ascontiguousarray(directions[layer], dtype=np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        with atomic_write(target, "wb") as f:
            f.write(scratch.read_bytes())


def read_control_vector(path: str | os.PathLike) -> tuple[str, dict[int, np.ndarray]]:
    """``(model_hint, {layer: direction})`` of a GGUF control vector; PTSError when it is not one."""
    import gguf

    try:
        reader = gguf.GGUFReader(str(path))
    except (OSError, ValueError) as e:
        raise PTSError(f"{path} is not a GGUF file ({e})") from None
    arch = _string(reader, "general.architecture")
    if arch != ARCH:
        raise PTSError(f"{path} is a GGUF file of architecture {arch!r}, not a control vector")
    hint = _string(reader, f"{ARCH}.model_hint") or ""
    directions = {}
    for tensor in reader.tensors:
        prefix, _, layer = tensor.name.partition(".")
        if prefix == "direction" and layer.isdigit():
            directions[int(layer)] = np.array(tensor.data, dtype=np.float32)
    return hint, directions


def _string(reader, key: str) -> str | None:
    field = reader.get_field(key)
    if field is None or not len(field.parts):
        return None
    return bytes(field.parts[-1]).decode("utf-8", errors="replace")
