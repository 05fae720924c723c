"""What a dataset source is given and what it is: :class:`LoadRequest`, :class:`SourceKind`,
and the rows a request keeps (:func:`select_rows`)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from pts.errors import PTSError
from pts.tasks.task import Task

__all__ = ["LoadRequest", "SourceKind", "select_rows"]


@dataclass(frozen=True)
class LoadRequest:
    """The options of one ``load_tasks`` call, passed to a source kind."""

    spec: str
    config: str | None
    split: str
    query_key: str | None
    answer_key: str | None
    sample_size: int | None
    max_examples: int | None
    seed: int
    oracle: str | None


@dataclass(frozen=True)
class SourceKind:
    """One way of reading a dataset spec: ``accepts(spec)`` picks it, ``load(request)`` reads it."""

    name: str
    accepts: Callable[[str], bool]
    load: Callable[[LoadRequest], list[Task]]


def select_rows(n: int, request: LoadRequest) -> list[int]:
    """Indices of the ``n`` source rows to keep: a seeded sample, then the first ``max_examples``."""
    indices = list(range(n))
    if request.sample_size is not None and request.sample_size < n:
        indices = random.Random(request.seed).sample(indices, request.sample_size)
    if request.max_examples is not None:
        indices = indices[: request.max_examples]
    if not indices:
        raise PTSError(
            f"no examples left from {request.spec!r} after sampling "
            f"(sample_size={request.sample_size}, max_examples={request.max_examples})"
        )
    return indices
