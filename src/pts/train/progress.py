"""Progress output of the training phases (datasets' map/filter bars follow ``--progress``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def datasets_bars(on: bool) -> Iterator[None]:
    """Turn the datasets library's progress bars on or off inside the block, then restore them."""
    import datasets

    was_on = datasets.is_progress_bar_enabled()
    if on:
        datasets.enable_progress_bars()
    else:
        datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_on:
            datasets.enable_progress_bars()
        else:
            datasets.disable_progress_bars()
