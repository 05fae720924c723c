"""The progress bar every command shows on stderr (tqdm, imported when a bar is made)."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any


def progress_bar(total: int, enabled: bool, initial: int = 0, *, desc: str = "queries", unit: str = "query") -> Any:
    """A tqdm bar over ``total`` items starting at ``initial`` (already done); silent unless ``enabled``."""
    from tqdm.auto import tqdm

    return tqdm(
        total=total, initial=initial, desc=desc, unit=unit, disable=not enabled, file=sys.stderr, dynamic_ncols=True
    )


class Ticker:
    """Refreshes ``bar``'s postfix every ``every`` seconds while units run: rollouts so far, tokens/s, and
    ``status()`` (what has been found).

    Finished units alone move a bar too rarely (a query can take minutes). ``counters()`` gives the rollouts
    and tokens the engines have finished so far (this process's, or every Ray worker's), or None where the
    engines do not count them as they go; then ``finished()``, the same counted from finished units, is shown.
    """

    def __init__(
        self,
        bar: Any,
        counters: Callable[[], tuple[int, int] | None],
        finished: Callable[[], tuple[int, int]],
        status: Callable[[], str],
        every: float = 1.0,
    ) -> None:
        self.bar, self.counters, self.finished, self.status = bar, counters, finished, status
        self.start = time.perf_counter()
        self.base = counters()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), name="pts-progress", daemon=True)
        self._thread.start()

    def _run(self, every: float) -> None:
        while not self._stop.wait(every):
            self._refresh()

    def _refresh(self) -> None:
        now = self.counters() if self.base is not None else None
        if now is not None and self.base is not None:
            rollouts, tokens = now[0] - self.base[0], now[1] - self.base[1]
        else:
            rollouts, tokens = self.finished()
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        self.bar.set_postfix_str(f"{rollouts} rollouts, {tokens / elapsed:.0f} tok/s, {self.status()}")

    def stop(self) -> None:
        """Stop refreshing, after a last refresh with the final counts."""
        self._stop.set()
        self._thread.join()
        self._refresh()
