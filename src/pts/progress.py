"""The per-query progress bar every command shows on stderr (tqdm, imported when a bar is made)."""

from __future__ import annotations

import sys
from typing import Any


def progress_bar(total: int, enabled: bool, initial: int = 0) -> Any:
    """A tqdm bar over ``total`` queries starting at ``initial`` (already done); silent unless ``enabled``."""
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="queries", unit="query", disable=not enabled,
                file=sys.stderr, dynamic_ncols=True)
