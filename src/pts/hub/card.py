"""What a pts output file holds, and the dataset card that describes it on the Hub.

:func:`inspect_file` reads a file once (JSONL records or a GGUF control
vector), tells its format from its content (:func:`pts.formats.detect`) and
counts what a reader of the card wants to know; :func:`build_card` renders
that as a :class:`huggingface_hub.DatasetCard`: YAML metadata the Hub indexes
(license, tags, task and size categories, a ``configs`` entry naming the data
file), a description, the counts, how the data was made, a glossary of every
field in the file and usage snippets. What each format says on its card
(title, tags, description, counts, glossary, snippets) lives in its module of
:mod:`pts.formats`; this module only lays the card out.
"""

from __future__ import annotations

import os
import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pts import formats
from pts.aliases import hub_model_id
from pts.errors import PTSError
from pts.formats.base import NOT_DESCRIBED, OPAQUE_FIELDS, FileSummary, Format
from pts.formats.control_vector import is_gguf, read_gguf
from pts.store import read_jsonl

if TYPE_CHECKING:
    from huggingface_hub import DatasetCard

_SIZE_BOUNDS = [
    (10**3, "n<1K"),
    (10**4, "1K<n<10K"),
    (10**5, "10K<n<100K"),
    (10**6, "100K<n<1M"),
    (10**7, "1M<n<10M"),
    (10**8, "10M<n<100M"),
    (10**9, "100M<n<1B"),
    (10**10, "1B<n<10B"),
    (10**11, "10B<n<100B"),
    (10**12, "100B<n<1T"),
]

CITATION = [
    "Pivotal Token Search was introduced in the Phi-4 technical report:",
    "",
    "```bibtex",
    "@article{abdin2024phi4,",
    "  title   = {Phi-4 Technical Report},",
    "  author  = {Abdin, Marah and others},",
    "  journal = {arXiv preprint arXiv:2412.08905},",
    "  year    = {2024}",
    "}",
    "```",
]


def size_category(n: int) -> str:
    """The Hub's ``size_categories`` value for ``n`` rows (``n<1K``, ``1K<n<10K``, ..., ``n>1T``)."""
    for bound, label in _SIZE_BOUNDS:
        if n < bound:
            return label
    return "n>1T"


# --------------------------------------------------------------------------------------------------
# Reading a file


def detect_format(path: str | os.PathLike) -> str:
    """The format of the file at ``path``, from its content (see :func:`inspect_file`)."""
    return inspect_file(path).fmt


def inspect_file(path: str | os.PathLike, fmt: str | None = None) -> FileSummary:
    """Read ``path`` and summarise it; PTSError (one line) for a missing, empty or unreadable file.

    ``fmt`` is one of :func:`pts.formats.names` ``(published=True)`` or another
    spelling of it. The format comes from the content when ``fmt`` is None: a
    GGUF file is a control vector; JSONL records are recognised by their fields
    (:func:`pts.formats.detect` on the first record). Every record must have
    the fields of that format.
    """
    p = Path(path)
    if not p.exists():
        raise PTSError(f"input file {p} does not exist")
    if p.is_dir():
        raise PTSError(f"input path {p} is a directory, not a file")
    if p.stat().st_size == 0:
        raise PTSError(f"input file {p} is empty: nothing to push")
    forced = formats.get(fmt, published=True) if fmt is not None else None
    try:
        gguf = is_gguf(p)
    except OSError as e:
        raise PTSError(f"cannot read {p}: {e.strerror or e}") from None
    if gguf or (forced is not None and not forced.jsonl):
        if not gguf:
            raise PTSError(f"{p} is not a GGUF file, so it cannot be a control vector")
        if forced is not None and forced.jsonl:
            raise PTSError(f"{p} is a GGUF file, not {forced.name} records")
        return read_gguf(p)
    try:
        rows = read_jsonl(p)
    except UnicodeDecodeError:
        raise PTSError(f"{p} is neither JSON lines nor a GGUF file") from None
    except OSError as e:
        raise PTSError(f"cannot read {p}: {e.strerror or e}") from None
    if not rows:
        raise PTSError(f"input file {p} has no records: nothing to push")
    kept = forced or _detect(p, rows[0])
    for n, row in enumerate(rows, 1):
        missing = kept.missing(row)
        if missing:
            raise PTSError(f"{p} record {n} is not a {kept.name} record: it has no {', '.join(missing)}")
    return _summarise(p, kept, rows)


def _detect(path: Path, row: dict[str, Any]) -> Format:
    fmt = formats.detect(row)
    published = [f for f in formats.registered() if f.published and f.jsonl]
    if fmt is None:
        whats = [f.what for f in published]
        raise PTSError(
            f"cannot tell what {path} holds: its first record has none of the fields of "
            f"{', '.join(whats[:-1])} or {whats[-1]} (pass --format)"
        )
    if not fmt.published:
        raise PTSError(
            f"{path} holds {fmt.what}, which pts push has no dataset card for "
            f"(it publishes {', '.join(formats.names(published=True))})"
        )
    return fmt


def _fields(rows: list[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        for k in row:
            seen.setdefault(k, None)
    return list(seen)


def _nested(rows: list[dict[str, Any]], key: str) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        value = row.get(key)
        items = [value] if isinstance(value, dict) else value if isinstance(value, list) else []
        for item in items:
            if isinstance(item, dict):
                for k in item:
                    seen.setdefault(k, None)
    return list(seen)


def _first_value(rows: list[dict[str, Any]], key: str, sub: str | None = None) -> Any:
    for row in rows:
        value = row.get(key)
        if sub is not None:
            if isinstance(value, dict):
                value = value.get(sub)
            elif isinstance(value, list) and value and isinstance(value[0], dict):
                value = value[0].get(sub)
            else:
                value = None
        if value is not None:
            return value
    return None


def _sign(row: dict[str, Any], delta: Any) -> bool | None:
    if isinstance(row.get("is_positive"), bool):
        return row["is_positive"]
    if isinstance(delta, (int, float)) and delta != 0:
        return delta > 0
    return None


def _summarise(path: Path, fmt: Format, rows: list[dict[str, Any]]) -> FileSummary:
    """What every format's card counts (signs, questions, task types, datasets, models, deltas), then the
    format's own facts (:meth:`Format.summarise`)."""
    s = FileSummary(path=path, fmt=fmt.name, rows=len(rows), fields=_fields(rows))
    for key in s.fields:
        if key in OPAQUE_FIELDS:
            continue
        if any(isinstance(r.get(key), dict) for r in rows) or any(
            isinstance(r.get(key), list) and r[key] and isinstance(r[key][0], dict) for r in rows
        ):
            s.nested[key] = _nested(rows, key)
    s.samples = {k: _first_value(rows, k) for k in s.fields}
    for key, subs in s.nested.items():
        for sub in subs:
            s.samples[f"{key}.{sub}"] = _first_value(rows, key, sub)

    meta = [r.get("metadata") if isinstance(r.get("metadata"), dict) else {} for r in rows]

    def get(i: int, key: str) -> Any:
        return rows[i][key] if key in rows[i] else meta[i].get(key)

    signs = [_sign(rows[i] if "is_positive" in rows[i] else meta[i], get(i, "prob_delta")) for i in range(len(rows))]
    if any(v is not None for v in signs):
        s.positives = sum(v is True for v in signs)
        s.negatives = sum(v is False for v in signs)
    task_keys = set()
    for i in range(len(rows)):
        item = get(i, "dataset_item_id")
        query = get(i, "query") or get(i, "original_query")
        if item is not None:
            task_keys.add((get(i, "dataset_id"), str(item)))
        elif query:
            task_keys.add(("", query))
        for key, counter in (("task_type", s.task_types), ("dataset_id", s.datasets), ("model_id", s.models)):
            value = get(i, key)
            if value:
                counter[str(value)] += 1
    s.tasks = len(task_keys) if task_keys else None
    search = _first_value(rows, "search")
    s.search = search if isinstance(search, dict) else {}
    deltas = [abs(d) for i in range(len(rows)) if isinstance(d := get(i, "prob_delta"), (int, float))]
    if deltas:
        s.extra["mean_abs_delta"] = statistics.fmean(deltas)
        s.extra["min_abs_delta"] = min(deltas)
        s.extra["max_abs_delta"] = max(deltas)
    fmt.summarise(s, rows, meta)
    return s


# --------------------------------------------------------------------------------------------------
# The card


def _md(text: Any) -> str:
    """``text`` safe inside a markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _glossary_rows(fmt: Format, s: FileSummary) -> list[tuple[str, str, str]]:
    """(field, type, description) for every field of the file, each nested field after its parent."""
    out = []
    for name in s.fields:
        for full in (name, *(f"{name}.{sub}" for sub in s.nested.get(name, []))):
            out.append((full, fmt.field_type(s, full), fmt.describe(s, full) or NOT_DESCRIBED))
    return out


def _provenance(fmt: Format, s: FileSummary, model: str | None, command: str | None) -> list[str]:
    lines = []
    if model:
        lines.append(f"- Model: `{model}`")
        hub = hub_model_id(model)
        if hub != model:
            lines.append(f"  (pts's built-in alias for a quantized [`{hub}`](https://huggingface.co/{hub}))")
    if s.datasets:
        lines.append("- Source dataset(s): " + ", ".join(f"`{d}`" for d in s.datasets))
    if command:
        lines += ["- Command:", "", "```bash", command, "```"]
    else:
        guess = fmt.run_command(s)
        if guess:
            note = (
                "- Command: not recorded; the records carry these `pts run` options (dataset config, "
                "split and sample size are not recorded):"
            )
            lines += [note, "", "```bash", guess, "```"]
        else:
            lines.append("- Command: not recorded.")
    if s.search and fmt.shows_search:
        settings = ", ".join(f"`{k}={v}`" for k, v in s.search.items())
        lines += ["", f"Search settings: {settings}."]
    return lines


def build_card(
    path: str | os.PathLike,
    fmt: str | None = None,
    model: str | None = None,
    command: str | None = None,
    *,
    repo_id: str = "USER/NAME",
    license: str = "apache-2.0",
    path_in_repo: str | None = None,
    summary: FileSummary | None = None,
) -> DatasetCard:
    """The dataset card for the file at ``path`` as it will sit in ``repo_id``.

    ``fmt`` overrides format detection; ``model`` the model named in the
    records; ``command`` is the command that generated the file (for pivotal
    records without one, the ``pts run`` options recorded in them are shown).
    ``path_in_repo`` is the data file's name in the repo (default: its base
    name). ``summary`` saves a second read when the caller already has one.
    """
    from huggingface_hub import DatasetCard, DatasetCardData

    s = summary or inspect_file(path, fmt)
    fmt = formats.get(s.fmt)
    filename = path_in_repo or s.path.name
    model = model or s.model_id or s.extra.get("model_hint")
    title = fmt.title + (f" ({model})" if model else "")
    extra: dict[str, Any] = {"tags": ["pts", "pivotal-tokens", *fmt.tags]}
    if fmt.jsonl:
        extra["configs"] = [{"config_name": "default", "data_files": [{"split": "train", "path": filename}]}]
    else:
        extra["viewer"] = False  # the dataset viewer reads JSON lines, not GGUF
    data = DatasetCardData(
        license=license,
        pretty_name=title,
        task_categories=["text-generation"],
        size_categories=[size_category(s.rows)],
        **extra,
    )
    body = [
        f"# {title}",
        "",
        fmt.description(s, model),
        "",
        "## Contents",
        "",
        f"One file, `{filename}`" + (" (JSON lines)." if fmt.jsonl else "."),
        "",
        "| | |",
        "|---|---|",
    ]
    body += [f"| {_md(k)} | {_md(v)} |" for k, v in fmt.counts(s)]
    body += ["", "## How it was made", ""] + _provenance(fmt, s, model, command)
    body += ["", "## Fields", "", "| Field | Type | Description |", "|---|---|---|"]
    body += [f"| `{_md(n)}` | {_md(t)} | {_md(d)} |" for n, t, d in _glossary_rows(fmt, s)]
    body += ["", "## Usage", ""] + fmt.usage(s, repo_id, model, filename)
    body += ["", "## Citation", "", *CITATION, ""]
    content = f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body)
    return DatasetCard(content)
