"""Every kind of file pts writes or reads, one module each, and a registry of them.

    from pts import formats
    fmt = formats.detect(row)            # the kind of one record, from its fields (None: no kind)
    fmt = formats.get("dpo")             # by name or another spelling ("pivotal-tokens", "gguf"...)
    formats.names(published=True)        # the kinds `pts push` writes a dataset card for

A kind (:class:`~pts.formats.base.Format`) knows how to recognise its records,
the shapes ``pts view`` tells apart within it, what each of its fields means,
and its dataset card's facts (:mod:`pts.hub.card` renders them):

======================  ==========================================  ===============================
name                    what                                        module
======================  ==========================================  ===============================
``pivotal``             pivotal tokens (pts run, original tool)     :mod:`pts.formats.pivotal`
``dpo``                 DPO pairs (plain or chat, original tool)    :mod:`pts.formats.dpo`
``steering``            steering vectors (optillm)                  :mod:`pts.formats.steering`
``critical``            critical tokens (pts critical)              :mod:`pts.formats.critical`
``control-vector``      GGUF control vector (llama.cpp)             :mod:`pts.formats.control_vector`
``contrast``            contrastive scores (pts contrast)           :mod:`pts.formats.contrast`
``trace``               search trace (pts run)                      :mod:`pts.formats.trace`
``thought-anchors``     sentences that matter (pts anchors)         :mod:`pts.formats.thought_anchors`
======================  ==========================================  ===============================

Importing this package is cheap: no torch, transformers or datasets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pts.errors import PTSError
from pts.formats.base import FileSummary, Format
from pts.registry import Registry

# Registration order is the order names() lists and detect() tries; no two kinds' fields overlap in any file pts
# or the original tool writes (a steering line, which has a pivotal token's fields too, is told apart by its vector).
# Formats of other packages (entry points in the ``pts.formats`` group, each naming a Format instance) come after.
FORMATS: Registry[Format] = Registry(
    "format",
    "pts.formats",
    {
        name: f"pts.formats.{module}:FORMAT"
        for name, module in (
            ("pivotal", "pivotal"),
            ("dpo", "dpo"),
            ("steering", "steering"),
            ("critical", "critical"),
            ("control-vector", "control_vector"),
            ("contrast", "contrast"),
            ("trace", "trace"),
            ("thought-anchors", "thought_anchors"),
            ("thought-anchors-viewer", "thought_anchors_viewer"),
        )
    },
)
"""Format name -> its :class:`Format` (or the ``"module:attribute"`` path of it, imported on first use)."""


def _spellings() -> dict[str, str]:
    """Every accepted spelling (name or alias, lower case) -> the format's name."""
    return {key: fmt.name for fmt in registered() for key in (fmt.name, *fmt.aliases)}


def register(fmt: Format) -> Format:
    """Add ``fmt`` to the registry under its name and aliases; ValueError if one is taken."""
    taken = _spellings()
    for key in (fmt.name, *fmt.aliases):
        if key in taken:
            raise ValueError(f"format name {key!r} is taken by {taken[key]!r}")
    FORMATS.register(fmt.name, fmt)
    return fmt


def names(*, published: bool = False) -> tuple[str, ...]:
    """Every format's name, in registry order; ``published``: only those ``pts push`` writes a card for."""
    return tuple(fmt.name for fmt in registered() if fmt.published or not published)


def registered() -> tuple[Format, ...]:
    """Every format, in registry order."""
    return tuple(fmt for _, fmt in FORMATS.items())


def get(name: str, *, published: bool = False) -> Format:
    """The format called ``name`` (its name or an alias, any case); PTSError listing the names if there is none.

    ``published``: only a format ``pts push`` writes a card for counts as known.
    """
    spelling = _spellings().get(name.strip().lower())
    fmt = FORMATS.get(spelling) if spelling else None
    if fmt is None or (published and not fmt.published):
        raise PTSError(f"unknown format {name!r}: expected one of {', '.join(names(published=published))}")
    return fmt


def detect(row_or_fields: Mapping[str, Any] | Iterable[str]) -> Format | None:
    """The format of a record, from its fields (a JSON record, or the names of its fields); None when no format
    has them."""
    fields = row_or_fields if isinstance(row_or_fields, Mapping) else set(row_or_fields)
    return next((fmt for fmt in registered() if fmt.matches(fields)), None)


def shapes() -> dict[str, str]:
    """Every shape ``pts view`` tells apart (key -> what it is), over all formats."""
    return {key: what for fmt in registered() for key, what in fmt.shapes.items()}


__all__ = ["FORMATS", "FileSummary", "Format", "detect", "get", "names", "register", "registered", "shapes"]
