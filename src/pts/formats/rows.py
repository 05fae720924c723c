"""Values of a record made safe for the report's rows: text, finite numbers, ints, intervals.

``pts view`` shows files written by other tools too; a field of the wrong
type becomes None (or a one-line PTSError where the row cannot be shown
without it), never a broken page.
"""

from __future__ import annotations

import math
from typing import Any

from pts.errors import PTSError

# Characters of context shown before a pivot or a DPO pair in lists.
CONTEXT_TAIL = 160


def text(value: Any, where: str, key: str) -> str:
    """Text of a field; a conversation (list of messages) becomes its contents joined by newlines."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(m, dict) for m in value):
        return "\n".join(str(m.get("content", "")) for m in value)
    raise PTSError(f"{where}: {key} must be text or a list of messages")


def number(value: Any) -> float | None:
    """A finite number as a float, else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def int_or_none(value: Any) -> int | None:
    """An int (not a bool), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def ints(value: Any) -> list[int]:
    """A list's ints (anything else counts 0); [] for a non-list."""
    return [v if isinstance(v, int) else 0 for v in value] if isinstance(value, list) else []


def interval(value: Any) -> list[float] | None:
    """``[low, high]`` of two finite numbers, else None."""
    if isinstance(value, list) and len(value) == 2 and all(number(v) is not None for v in value):
        return [float(v) for v in value]
    return None
