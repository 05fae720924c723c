"""Range checks shared by the commands' option dataclasses: one message per kind of mistake.

Each check reads the named fields of ``config`` and raises :class:`PTSError`
naming the CLI flag (``--field-name``). ``None`` means "not set" and passes.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from typing import Any

from pts.errors import PTSError


def flag(name: str) -> str:
    """The CLI flag of a config field: ``max_new_tokens`` -> ``--max-new-tokens``."""
    return "--" + name.replace("_", "-")


def at_least_one(config: Any, *names: str) -> None:
    """Counts and sizes: each field, when set, is an integer >= 1."""
    for name in names:
        value = getattr(config, name)
        if value is not None and value < 1:
            raise PTSError(f"{flag(name)} must be at least 1, got {value}")


def unit_interval(config: Any, *names: str) -> None:
    """Probabilities and shares: each field, when set, lies in [0, 1]."""
    for name in names:
        value = getattr(config, name)
        if value is not None and not 0.0 <= value <= 1.0:
            raise PTSError(f"{flag(name)} must be between 0 and 1, got {value}")


def sampling(config: Any) -> None:
    """``temperature`` >= 0, ``top_p`` and ``min_p`` in [0, 1], ``top_k`` >= 0 (0 disables it)."""
    if config.temperature < 0:
        raise PTSError(f"--temperature must be >= 0, got {config.temperature}")
    unit_interval(config, "top_p", "min_p")
    if config.top_k < 0:
        raise PTSError(f"--top-k must be >= 0 (0 disables it), got {config.top_k}")


def finite_float(text: str) -> float:
    """argparse ``type`` for every float option: a number, never ``nan`` or ``inf``."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid float value: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def finite(config: Any) -> None:
    """Every float field of the dataclass ``config`` is a finite number (nan and inf pass no range check)."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise PTSError(f"{flag(f.name)} must be a finite number, got {value}")
