"""The progress bar every command shows on stderr (tqdm, imported when a bar is made)."""

from __future__ import annotations

import sys
from typing import Any


def progress_bar(total: int, enabled: bool, initial: int = 0, *, desc: str = "queries", unit: str = "query") -> Any:
    """A tqdm bar over ``total`` items starting at ``initial`` (already done); silent unless ``enabled``."""
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=not enabled,
                file=sys.stderr, dynamic_ncols=True)
