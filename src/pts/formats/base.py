"""What every file format says about itself, and what one file of it holds.

A :class:`Format` is one kind of file pts writes or reads: how to recognise
its records from their fields, the shapes ``pts view`` tells apart within it
and the row the report shows for a record, a glossary of its fields, the facts
of its dataset card on the Hub (title, tags, description, counts, usage
snippets), and how ``pts export`` writes it (:meth:`Format.write`, given an
:class:`ExportRequest`). Each format subclasses it in its own module of
:mod:`pts.formats`. A :class:`FileSummary` is what one file of a format
holds, as :func:`pts.hub.inspect_file` counts it; the card hooks read it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pts.export.records import PivotalTokenRow

PTS_URL = "https://github.com/codelion/pts"
PHI4_URL = "https://arxiv.org/abs/2412.08905"
CDPO_URL = "https://arxiv.org/abs/2411.19943"
OPTILLM_URL = "https://github.com/codelion/optillm"
PTS_LINK = f"[pts]({PTS_URL})"
PHI4_LINK = f"[Phi-4 technical report]({PHI4_URL})"

# Fields whose values are objects keyed by data (layer numbers), not by field names: never expanded field by field.
OPAQUE_FIELDS = frozenset({"layer_activations", "layer_gains", "steering_vectors"})

NOT_DESCRIBED = "Not described by pts (written by another tool)."


@dataclass
class FileSummary:
    """What one file holds: its format, size and the counts shown on the card.

    ``fmt`` is the name of its :class:`Format`. ``rows`` is the number of
    records (for a control vector, of layer directions). ``positives``/``negatives``
    count pivots by the sign of their effect; ``tasks`` the distinct questions
    they come from. ``extra`` holds format-specific facts (clusters, layers,
    vector size, GGUF metadata...), filled by :meth:`Format.summarise`.
    """

    path: Path
    fmt: str
    rows: int
    fields: list[str] = field(default_factory=list)
    nested: dict[str, list[str]] = field(default_factory=dict)
    samples: dict[str, Any] = field(default_factory=dict)
    positives: int | None = None
    negatives: int | None = None
    tasks: int | None = None
    task_types: Counter = field(default_factory=Counter)
    datasets: Counter = field(default_factory=Counter)
    models: Counter = field(default_factory=Counter)
    search: dict[str, Any] = field(default_factory=dict)
    original_tool: bool = False
    conversational: bool = False
    tokenized: bool = False  # DPO rows carry prompt_ids/chosen_ids/rejected_ids
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def model_id(self) -> str | None:
        """The model most records name, if any."""
        return self.models.most_common(1)[0][0] if self.models else None


@dataclass
class ExportRequest:
    """What ``pts export`` gives a format's :meth:`Format.write`.

    ``pivots``: the records read from the input file (by :meth:`Format.read`); ``output``: the path to
    write (checked; nothing may be written there unless the whole export
    succeeds); ``settings``: an instance of the format's
    :attr:`Format.settings_type`, filled from ``pts export``'s options of the
    same names. The callables load what a writer may need, only when it asks:
    ``load_model(pivots)`` the model (``--model``, else the one the records
    name) as a :class:`pts.models.LoadedModel`, ``load_tokenizer()`` its
    tokenizer without the weights when possible, ``load_engine(pivots)`` a
    rollout engine on it and ``load_tasks(pivots)`` the dataset's tasks (for
    the oracle).
    """

    pivots: list[PivotalTokenRow] | list[Any]  # what the format's Format.read gave: pivots, or its own records
    output: str
    settings: Any
    load_model: Callable[[Sequence[PivotalTokenRow]], Any]
    load_tokenizer: Callable[[Sequence[PivotalTokenRow]], Any]
    load_engine: Callable[[Sequence[PivotalTokenRow]], Any]
    load_tasks: Callable[[Sequence[PivotalTokenRow]], list[Any]]


@dataclass
class Written:
    """What a writer wrote: ``rows`` (in the format's :attr:`Format.noun`) and ``details``, lines to print."""

    rows: int
    details: str = ""


# JSON's value kinds by their Python type; bool before int, since a bool is an int.
_TYPE_NAMES = ((type(None), "null"), (bool, "bool"), (int, "int"), (float, "float"), (str, "string"), (dict, "object"))


def type_name(value: Any) -> str:
    """How a field's value reads in a glossary: ``string``, ``float``, ``list[int] (4096)``, ``object``..."""
    name = next((name for kind, name in _TYPE_NAMES if isinstance(value, kind)), None)
    if name is not None:
        return name
    if isinstance(value, list):
        if not value:
            return "list"
        inner = type_name(value[0])
        if inner in ("float", "int") and len(value) > 8:
            return f"list[{inner}] ({len(value)})"
        if inner == "object":
            return "list[object]"
        return f"list[{inner}]"
    return type(value).__name__


def load_snippet(repo_id: str) -> list[str]:
    """The opening lines of every card's Python load snippet (the code block is left open)."""
    return ["```python", "from datasets import load_dataset", "", f'dataset = load_dataset("{repo_id}", split="train")']


def record_fields(kind: str | None = None, id_text: str = "Stable id of the record.") -> dict[str, str]:
    """The glossary of the fields every pts record has (:class:`pts.records.Record`): ``kind`` is the record kind
    the format's lines have (None: several), ``id_text`` what its id is made from."""
    return {
        "timestamp": "When the record was written (local time, ISO 8601).",
        "id": id_text,
        "kind": f"Record kind (`{kind}`)." if kind else "Record kind.",
        "schema_version": "Version of the pts record schema.",
    }


def by_model(model: str | None) -> str:
    """`` of `model``` for a card's opening sentence, or nothing when the model is not known."""
    return f" of `{model}`" if model else ""


class Format:
    """One kind of record file. Subclasses set the class attributes and override the hooks they need.

    Recognition: a record is of this format when it has every field of
    :attr:`keys`, or carries the format's :attr:`record_kind` (:meth:`matches`);
    :meth:`missing` names what a record lacks.
    :attr:`shapes` are the variants ``pts view`` reports (key -> what it is),
    :meth:`shape` picks one for a record.

    Card: a format with a :attr:`title` is published by ``pts push``; its card
    shows :meth:`description`, :meth:`counts`, a glossary (:attr:`fields`,
    :meth:`describe`) and :meth:`usage`.

    Report: a format with a :attr:`view_list` adds :meth:`view_row` of each record
    to that list of ``pts view``'s page.

    Export: a format that overrides :meth:`write` is a ``pts export --format``
    choice, written to :attr:`default_output` unless told otherwise.
    """

    name: str = ""
    aliases: tuple[str, ...] = ()  # other spellings accepted for ``name`` (lower case)
    what: str = ""  # what a file of it holds, in messages: "pivotal tokens"
    shapes: Mapping[str, str] = {}  # the variants pts view reports: key -> what, e.g. "pivotal tokens (pts run)"
    keys: tuple[str, ...] = ()  # fields every record of the format has
    record_kind: str | None = None  # the ``kind`` pts writes on the format's records (a row with it matches)
    fields: Mapping[str, str] = {}  # glossary: field name ("a.b" when nested) -> what it means
    jsonl: bool = True  # JSON lines (else a binary file the dataset viewer cannot read)
    # Hub card
    title: str | None = None
    tags: tuple[str, ...] = ()
    noun: str = "rows"  # what one record is, counted on the card: "pivotal tokens"
    sign_label: str = "Positive / negative"
    unit: str = "rows"  # what pts push counts in its commit message and report
    counted: tuple[tuple[str, str], ...] = ()  # Contents rows "N of <rows>": (key of FileSummary.extra, label)
    # pts view
    view_list: str | None = None  # the page's list of such rows: "pairs", "critical" or "contrast"
    # pts export
    default_output: str = ""  # the file pts export writes when no --output-path is given
    makes_folder: bool = False  # the export goes into a folder of its own, made when the file is written
    settings_type: type | str | None = None  # the writer's settings dataclass (or its "module:attribute" path)

    @property
    def shows_search(self) -> bool:
        """Whether the card lists the records' search settings: those of a format whose records carry them."""
        return "search" in self.fields

    @property
    def published(self) -> bool:
        """Whether ``pts push`` writes a dataset card for this format."""
        return self.title is not None

    # ---- recognition

    def missing(self, row: Mapping[str, Any] | Iterable[str]) -> list[str]:
        """The fields of :attr:`keys` that ``row`` lacks (it may be a row or a set of field names)."""
        return [k for k in self.keys if k not in row]

    def matches(self, row: Mapping[str, Any] | Iterable[str]) -> bool:
        """Whether a record with these fields (a row, or its field names) is of this format."""
        if self.record_kind is not None and isinstance(row, Mapping) and row.get("kind") == self.record_kind:
            return True
        return bool(self.keys) and not self.missing(row)

    def shape(self, row: Mapping[str, Any]) -> str:
        """Which of :attr:`shapes` the record ``row`` (of this format) has."""
        return next(iter(self.shapes))

    # ---- card hooks

    def summarise(self, s: FileSummary, rows: list[dict[str, Any]], meta: list[dict[str, Any]]) -> None:
        """Add this format's own facts about ``rows`` to ``s`` (``meta``: each row's ``metadata`` object or {})."""

    def describe(self, s: FileSummary, name: str) -> str | None:
        """The glossary text of field ``name`` (``a.b`` for a nested one) in the file ``s``; None if unknown.

        The fields every pts record has (``id``, ``kind``...) are described here for a format with a
        :attr:`record_kind`; its :attr:`fields` may still say more of one (what its ``id`` is made from)."""
        if name in self.fields or self.record_kind is None:
            return self.fields.get(name)
        return record_fields(self.record_kind).get(name)

    def field_type(self, s: FileSummary, name: str) -> str:
        """The glossary's type of field ``name``, from its first value in the file."""
        return type_name(s.samples.get(name))

    def description(self, s: FileSummary, model: str | None) -> str:
        """The card's opening paragraph."""
        return ""

    def counts(self, s: FileSummary) -> list[tuple[str, str]]:
        """The rows of the card's Contents table: the format's count, signs, questions, deltas, then
        :meth:`extra_counts`, then task types, datasets and models."""
        rows = [(self.noun.capitalize(), str(s.rows))]
        if s.positives is not None:
            rows.append((self.sign_label, f"{s.positives} / {s.negatives}"))
        if s.tasks is not None:
            rows.append(("Questions (tasks)", str(s.tasks)))
        if "mean_abs_delta" in s.extra:
            low, high = s.extra["min_abs_delta"], s.extra["max_abs_delta"]
            rows.append(("abs(prob_delta): mean (min-max)", f"{s.extra['mean_abs_delta']:.3f} ({low:.3f}-{high:.3f})"))
        rows += self.extra_counts(s)
        for label, counter in (("Task types", s.task_types), ("Source datasets", s.datasets), ("Models", s.models)):
            if counter:
                rows.append((label, ", ".join(f"`{k}` ({v})" for k, v in counter.most_common(10))))
        return rows

    def extra_counts(self, s: FileSummary) -> list[tuple[str, str]]:
        """This format's own rows of the Contents table (from ``s.extra``): by default one ``N of <rows>`` row for
        each of :attr:`counted` that the file's summary has."""
        return [(label, f"{s.extra[key]} of {s.rows}") for key, label in self.counted if key in s.extra]

    def run_command(self, s: FileSummary) -> str | None:
        """The command that made the file, when its records say enough to rebuild it."""
        return None

    def usage(self, s: FileSummary, repo_id: str, model: str | None, filename: str) -> list[str]:
        """The card's Usage section (markdown lines) for the file ``filename`` in ``repo_id``."""
        return ["### Load", "", *load_snippet(repo_id), "```"]

    # ---- pts view

    def view_row(self, record: Mapping[str, Any], where: str, query: Callable[[Any], int]) -> dict[str, Any]:
        """The report's row for ``record`` (``where``: "FILE record N", for errors; ``query(text)``: the index of
        a query in the report's list of queries)."""
        return {"q": query(record.get("query", ""))}

    # ---- pts export

    @property
    def writes(self) -> bool:
        """Whether ``pts export --format NAME`` writes this format (it overrides :meth:`write`)."""
        return type(self).write is not Format.write

    def output_file(self, output: str, input_path: str) -> str:
        """The file ``pts export`` writes for ``--output-path output`` (``output`` itself unless the format
        writes into a folder); PTSError (one line) when that place would not do its job. Creates nothing."""
        return output

    def read(self, path: str) -> list[Any]:
        """The records ``pts export`` hands :meth:`write` (``ExportRequest.pivots``), read from the input file
        ``path``: pivotal tokens, pts's or the original tool's (a format that exports other records overrides
        it); PTSError (one line) on a missing file or one without such records."""
        from pts.export.records import read_pivots

        return read_pivots(path)

    def check_output(self, output: str) -> None:
        """PTSError (one line) unless :meth:`write` can write ``output`` (default: a whole file); creates nothing."""
        from pts.store import check_output_path

        check_output_path(output)

    def write(self, request: ExportRequest) -> Written:
        """Write ``request.pivots`` as a file of this format at ``request.output``; PTSError (one line) if it cannot."""
        raise NotImplementedError(f"pts export does not write {self.what or self.name}")
