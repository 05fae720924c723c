"""The Hub-or-directory source: a Hugging Face Hub name (``owner/name``) or a local dataset directory,
both read with ``datasets.load_dataset``."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

from pts.errors import PTSError, first_line
from pts.tasks.sources.request import LoadRequest
from pts.tasks.sources.rows import Rows, rows_to_tasks
from pts.tasks.task import Task

__all__ = ["is_hub_or_dir_spec", "load_hub_or_dir"]

_HUB_NAME_RE = re.compile(r"^[A-Za-z0-9][\w.-]*(?:/[\w.-]+)?$")


def is_hub_or_dir_spec(spec: str) -> bool:
    """True for a local directory or anything shaped like a Hub name."""
    return Path(spec).expanduser().is_dir() or bool(_HUB_NAME_RE.match(spec))


@contextlib.contextmanager
def _quiet_datasets() -> Iterator[None]:
    """Hide datasets' progress bars for the duration of a load."""
    import datasets

    was_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled:
            datasets.enable_progress_bars()


def load_hub_or_dir(request: LoadRequest) -> list[Task]:
    """Tasks from a split of a Hub dataset or a local dataset directory."""
    is_dir = Path(request.spec).expanduser().is_dir()
    location = str(Path(request.spec).expanduser()) if is_dir else request.spec
    try:
        import datasets

        with _quiet_datasets():
            table = datasets.load_dataset(location, request.config, split=request.split)
    except Exception as e:  # no network, unknown name, bad split or config, unreadable files
        where = (
            f"dataset directory {request.spec!r}" if is_dir else f"dataset {request.spec!r} from the Hugging Face Hub"
        )
        raise PTSError(f"could not load {where}: {first_line(e)}") from None
    name = Path(location).name if is_dir else request.spec
    query = {"config": request.config, "split": request.split}
    dataset_id = request.spec + "?" + "&".join(f"{k}={v}" for k, v in query.items() if v is not None)
    return rows_to_tasks(Rows(name, list(table.column_names), table), request, dataset_id=dataset_id)
