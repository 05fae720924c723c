"""One shape for every extension point: a lazy, ordered registry of named things, open to other packages.

    ENGINES = Registry("engine", "pts.engines", {"hf": "pts.engines.hf:create"})
    factory = ENGINES.get("hf")     # imports pts.engines.hf on first use, then keeps the object

An entry is an object, or the ``"package.module:attribute"`` path of one,
imported the first time it is asked for, so that listing the names never loads
torch or an inference library. A package outside pts adds entries through
Python entry points in the registry's ``group`` (``pts.engines``,
``pts.oracles``, ``pts.sources``, ``pts.formats``); in its ``pyproject.toml``::

    [project.entry-points."pts.engines"]
    mine = "my_package.engine:create"

Installed packages' entry points are read the first time a registry is used;
a name pts registers itself is never replaced by one.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from importlib import metadata
from typing import Any, Generic, TypeVar

from pts.errors import PTSError

T = TypeVar("T")

__all__ = ["Registry", "resolve"]


def resolve(path: str) -> Any:
    """The object at ``"package.module:attribute"`` (the attribute may be dotted); PTSError if it cannot be imported."""
    module, sep, attribute = path.partition(":")
    if not sep or not module or not attribute:
        raise PTSError(f"{path!r} is not a 'package.module:attribute' path")
    try:
        target: Any = importlib.import_module(module)
    except ImportError as e:
        raise PTSError(f"cannot import {module} (for {path}): {e}") from None
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise PTSError(f"{module} has no {attribute} (for {path})") from None
    return target


class Registry(Generic[T]):
    """Named entries of one kind (``what``: "engine", "oracle"...), in order, with the entry points of ``group``.

    ``plugins_first``: entries from entry points (and :meth:`register` with ``first=True``) come before the
    built-in ones in :meth:`names`, for registries tried in order (dataset sources: a plugin's spec is tried
    before the catch-all Hub name).
    """

    def __init__(self, what: str, group: str, builtins: Mapping[str, T | str], *, plugins_first: bool = False):
        self.what = what
        self.group = group
        self.plugins_first = plugins_first
        self._entries: dict[str, T | str] = dict(builtins)
        self._discovered = False

    def register(self, name: str, target: T | str, *, first: bool = False) -> None:
        """Add (or replace) ``name``: an object or its ``"module:attribute"`` path; ``first``: try it before the
        others in order."""
        self._entries.pop(name, None)
        if first:
            self._entries = {name: target, **self._entries}
        else:
            self._entries[name] = target

    def unregister(self, name: str) -> None:
        """Remove ``name`` if present."""
        self._entries.pop(name, None)

    def _discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        found = {ep.name: ep.value for ep in metadata.entry_points(group=self.group) if ep.name not in self._entries}
        if self.plugins_first:
            self._entries = {**found, **self._entries}
        else:
            self._entries.update(found)

    def names(self) -> tuple[str, ...]:
        """Every registered name, in order (nothing is imported)."""
        self._discover()
        return tuple(self._entries)

    def __contains__(self, name: object) -> bool:
        self._discover()
        return name in self._entries

    def check(self, name: str, flag: str | None = None) -> None:
        """PTSError naming the registered entries unless ``name`` is one (``flag``: how the message names it)."""
        if name not in self:
            what = flag or self.what
            raise PTSError(f"unknown {what} {name!r}; available: {', '.join(self.names())}")

    def get(self, name: str, flag: str | None = None) -> T:
        """The entry ``name``, imported on first use; PTSError naming the registered ones for an unknown name."""
        self.check(name, flag)
        target = self._entries[name]
        if isinstance(target, str):
            target = resolve(target)
            self._entries[name] = target
        return target  # type: ignore[return-value]

    def items(self) -> Iterator[tuple[str, T]]:
        """Every ``(name, entry)``, in order, each imported."""
        for name in self.names():
            yield name, self.get(name)

    def snapshot(self) -> dict[str, T | str]:
        """The entries as they are now, for :meth:`restore` (tests that register and clean up)."""
        self._discover()
        return dict(self._entries)

    def restore(self, entries: Mapping[str, T | str]) -> None:
        """Put back what :meth:`snapshot` returned."""
        self._entries = dict(entries)
