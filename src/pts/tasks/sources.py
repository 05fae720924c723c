"""Dataset sources: turn a dataset spec into a list of tasks.

A spec is one of three kinds, tried in order (see ``SOURCE_KINDS``):

- ``rg:<task>?opt=value&...``: a reasoning-gym task generated offline;
- a local ``.jsonl`` / ``.json`` / ``.csv`` / ``.parquet`` file;
- a Hugging Face Hub name (``owner/name``) or a local dataset directory, both
  read with ``datasets.load_dataset``.

Rows of files and Hub datasets become tasks with auto-detected query/answer
fields and an oracle chosen from the answer's shape (or named by the caller).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import logging
import random
import re
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pts import options
from pts.errors import PTSError, first_line
from pts.tasks.oracles import (
    ExactMatchOracle,
    MathOracle,
    MultipleChoiceOracle,
    ReasoningGymOracle,
    YesNoOracle,
    check_rg_task,
    choice_gold,
    extract_boxed,
    get_oracle,
    math_gold_text,
)
from pts.tasks.code import CodeOracle
from pts.tasks.code_data import HUMANEVAL, code_shape, code_task, read_humaneval, row_language
from pts.tasks.task import Oracle, Task

__all__ = ["DEFAULT_DATASET", "QUERY_KEYS", "ANSWER_KEYS", "ID_KEYS", "SOURCE_KINDS", "load_tasks", "load_tasks_from", "register_source"]

logger = logging.getLogger(__name__)

# Six easy one-digit sums: what the embedded model solves often but not always. Six keeps the default
# `pts run` (about half of them in range, every candidate verified) to a few minutes on a 2-core CPU;
# docs/benchmarks.md has the command for a larger run.
DEFAULT_DATASET = options.DEFAULT_DATASET

QUERY_KEYS = ("question", "query", "instruction", "problem", "prompt")
ANSWER_KEYS = ("answer", "output", "solution", "response", "canonical_solution")
ID_KEYS = ("id", "idx", "task_id", "unique_id")

RG_DEFAULT_SIZE = 50

# Oracles without state are shared by all rows.
_MATH, _MULTIPLE_CHOICE, _YES_NO, _EXACT = MathOracle(), MultipleChoiceOracle(), YesNoOracle(), ExactMatchOracle()

FILE_EXTENSIONS = (".jsonl", ".json", ".csv", ".parquet")
# Suffixes that mark a spec as a file path even when the file is missing or unsupported.
_FILE_LIKE_SUFFIXES = FILE_EXTENSIONS + (
    ".tsv", ".txt", ".arrow", ".gz", ".zip", ".xlsx", ".xls", ".xml", ".yaml", ".yml"
)
_HUB_NAME_RE = re.compile(r"^[A-Za-z0-9][\w.-]*(?:/[\w.-]+)?$")


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


def load_tasks_from(data: options.DatasetOptions, seed: int) -> list[Task]:
    """The tasks a command's data options name (:class:`pts.options.DataOptions`; see :func:`load_tasks`)."""
    return load_tasks(data.dataset, config=data.config, split=data.split, query_key=data.query_key,
                      answer_key=data.answer_key, sample_size=getattr(data, "sample_size", None),
                      max_examples=getattr(data, "max_examples", None), seed=seed, oracle=data.oracle)


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
    request = LoadRequest(
        spec.strip(), config, split, query_key, answer_key, sample_size, max_examples, seed, oracle
    )
    for kind in SOURCE_KINDS:
        if kind.accepts(request.spec):
            return kind.load(request)
    raise PTSError(
        f"unknown dataset {spec!r}: expected rg:<task>, a {'/'.join(FILE_EXTENSIONS)} file, "
        "a dataset directory or a Hugging Face Hub name like owner/name"
    )


def _select(n: int, request: LoadRequest) -> list[int]:
    """Source indices to keep: a seeded sample, then the first ``max_examples``."""
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



def _parse_option_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _encode_option_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def parse_rg_spec(spec: str, config: str | None = None) -> tuple[str, dict[str, Any]]:
    """Split ``rg:<task>?k=v&...`` into the task name and its options.

    Values are JSON when they parse as JSON, else strings; ``config`` (a JSON
    object string) is merged on top. Raises PTSError on a malformed spec.
    """
    body = spec[len("rg:") :]
    task, _, query = body.partition("?")
    task = task.strip()
    if not task:
        raise PTSError(f"no reasoning-gym task in {spec!r}: write rg:<task>, e.g. rg:chain_sum")
    options: dict[str, Any] = {}
    for part in filter(None, query.split("&")):
        key, eq, raw = part.partition("=")
        key = urllib.parse.unquote(key).strip()
        if not eq or not key:
            raise PTSError(f"bad option {part!r} in {spec!r}: write key=value, joined by '&'")
        options[key] = _parse_option_value(urllib.parse.unquote(raw))
    if config:
        try:
            extra = json.loads(config)
        except ValueError as e:
            raise PTSError(f"--config for {spec!r} must be a JSON object of options: {e}") from None
        if not isinstance(extra, dict):
            raise PTSError(f"--config for {spec!r} must be a JSON object of options, got {config!r}")
        options.update(extra)
    return task, options


def _rg_dataset(task: str, options: dict[str, Any]):
    import reasoning_gym
    from reasoning_gym.factory import DATASETS

    check_rg_task(task)
    config_cls = DATASETS[task][1]
    known = [f.name for f in dataclasses.fields(config_cls)]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise PTSError(
            f"reasoning-gym task {task!r} has no option {', '.join(map(repr, unknown))}; "
            f"its options are: {', '.join(known)}"
        )
    size = options.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise PTSError(f"size for rg:{task} must be a positive integer, got {size!r}")
    try:
        return reasoning_gym.create_dataset(task, **options)
    except (AssertionError, TypeError, ValueError) as e:
        raise PTSError(f"invalid options for rg:{task} ({first_line(e)})") from None


def _load_rg(request: LoadRequest) -> list[Task]:
    task, options = parse_rg_spec(request.spec, request.config)
    options = {"size": RG_DEFAULT_SIZE, "seed": request.seed, **options}
    if _is_code_oracle(request.oracle):
        raise PTSError(f"oracle {request.oracle!r} runs tests; reasoning-gym tasks have none")
    dataset = _rg_dataset(task, options)
    dataset_id = f"rg:{task}?" + "&".join(f"{k}={_encode_option_value(options[k])}" for k in sorted(options))
    if request.oracle is None or request.oracle.startswith("rg:"):
        oracle: Oracle = ReasoningGymOracle(task, options)
        task_type = f"rg:{task}"
    else:
        oracle, task_type = get_oracle(request.oracle), request.oracle
    tasks = []
    for i in _select(len(dataset), request):
        try:
            entry = dataset[i]
        except Exception as e:  # generators can reject a config only when they run
            raise PTSError(f"rg:{task} could not generate item {i} ({first_line(e)})") from None
        answer = str(entry["answer"])
        tasks.append(
            Task(
                query=entry["question"],
                answer=answer,
                item_id=str(i),
                dataset_id=dataset_id,
                task_type=task_type,
                oracle=oracle,
                reference=entry if isinstance(oracle, ReasoningGymOracle) else answer,
                metadata={"source_index": i},
            )
        )
    return tasks



@dataclass
class Rows:
    """Rows of a table: ``rows[i]`` is a mapping; ``columns`` are the field names.

    ``name`` (Hub name, directory or folder/file name) tells dataset families
    apart: names holding "gsm8k" or "optillmbench" get their special handling.
    """

    name: str
    columns: list[str]
    rows: Sequence[Mapping[str, Any]]


def _read_jsonl(path: Path) -> list[Any]:
    records = []
    with path.open(encoding="utf-8-sig") as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except ValueError as e:
                    raise PTSError(f"could not read {path}: line {number} is not valid JSON ({e})") from None
    return records


def _read_json(path: Path, split: str) -> list[Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except ValueError as e:
        raise PTSError(f"could not read {path}: not valid JSON ({e})") from None
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        lists = {k: v for k, v in data.items() if isinstance(v, list)}
        for key in (split, "data", "examples", "rows"):
            if key in lists:
                return lists[key]
        if len(lists) == 1:
            return next(iter(lists.values()))
        if lists:
            raise PTSError(f"{path} holds several lists ({', '.join(lists)}); pick one with --split")
    raise PTSError(
        f"{path} must hold a JSON list of objects, or an object with one such list like {{\"data\": [...]}}"
    )


def _read_csv(path: Path) -> list[Any]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def _read_parquet(path: Path) -> list[Any]:
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


_FILE_READERS: dict[str, Callable[[Path, str], list[Any]]] = {
    ".jsonl": lambda path, split: _read_jsonl(path),
    ".json": _read_json,
    ".csv": lambda path, split: _read_csv(path),
    ".parquet": lambda path, split: _read_parquet(path),
}


def _is_file_spec(spec: str) -> bool:
    path = Path(spec).expanduser()
    if path.is_file():
        return True
    if path.is_dir():
        return False
    looks_like_path = spec.startswith(("/", "./", "../", "~")) or "\\" in spec
    return looks_like_path or path.suffix.lower() in _FILE_LIKE_SUFFIXES


def _load_file(request: LoadRequest) -> list[Task]:
    path = Path(request.spec).expanduser()
    if not path.exists():
        raise PTSError(f"dataset file not found: {request.spec}")
    reader = _FILE_READERS.get(path.suffix.lower())
    if reader is None:
        raise PTSError(
            f"unsupported file extension {path.suffix or '(none)'!r} for {request.spec}: "
            f"use {', '.join(FILE_EXTENSIONS)}"
        )
    try:
        records = reader(path, request.split)
    except PTSError:
        raise
    except Exception as e:  # unreadable or corrupt: OSError, UnicodeDecodeError, ArrowInvalid, csv.Error
        raise PTSError(f"could not read {request.spec}: {first_line(e)}") from None
    bad = next((i for i, r in enumerate(records) if not isinstance(r, Mapping)), None)
    if bad is not None:
        raise PTSError(f"could not read {request.spec}: record {bad} is not an object with named fields")
    columns = list(dict.fromkeys(k for r in records[:100] for k in r))
    # The folder counts too: optillmbench/train.jsonl is optillmbench.
    name = f"{path.resolve().parent.name}/{path.name}"
    return _rows_to_tasks(Rows(name, columns, records), request, dataset_id=request.spec)


def _is_hub_or_dir_spec(spec: str) -> bool:
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


def _load_hub_or_dir(request: LoadRequest) -> list[Task]:
    is_dir = Path(request.spec).expanduser().is_dir()
    location = str(Path(request.spec).expanduser()) if is_dir else request.spec
    try:
        import datasets

        with _quiet_datasets():
            table = datasets.load_dataset(location, request.config, split=request.split)
    except Exception as e:  # no network, unknown name, bad split or config, unreadable files
        where = (f"dataset directory {request.spec!r}" if is_dir
                 else f"dataset {request.spec!r} from the Hugging Face Hub")
        raise PTSError(f"could not load {where}: {first_line(e)}") from None
    name = Path(location).name if is_dir else request.spec
    query = {"config": request.config, "split": request.split}
    dataset_id = request.spec + "?" + "&".join(f"{k}={v}" for k, v in query.items() if v is not None)
    return _rows_to_tasks(Rows(name, list(table.column_names), table), request, dataset_id=dataset_id)


def _pick_key(kind: str, override: str | None, candidates: Sequence[str], rows: Rows, spec: str) -> str:
    flag = f"--{kind}-key"
    if override is not None:
        if override not in rows.columns:
            raise PTSError(
                f"{kind} field {override!r} not found in {spec}; available columns: "
                f"{', '.join(rows.columns) or '(none)'} (set {flag})"
            )
        return override
    for key in candidates:
        if key in rows.columns:
            return key
    raise PTSError(
        f"no {kind} field in {spec} (looked for {', '.join(candidates)}); available columns: "
        f"{', '.join(rows.columns) or '(none)'}; name one with {flag}"
    )


def _item_ids(rows: Rows, id_key: str | None, selected: Sequence[int], spec: str) -> dict[int, str]:
    """The item id of each selected row: its id column, else its index; unique within the dataset.

    A row whose id repeats an earlier row's is named ``<id>@row<index>``: decided over the whole file, so
    a row keeps its name whatever ``--sample-size``/``--max-examples`` select, and a resumed run never
    takes one row for another that finished.
    """
    if id_key is None:
        return {i: str(i) for i in selected}
    seen: set[str] = set()
    ids: dict[int, str] = {}
    renamed = []
    # A Hub dataset hands over a whole column at once, far faster than row by row.
    column = rows.rows[id_key] if hasattr(rows.rows, "column_names") else [r.get(id_key) for r in rows.rows]
    for i, value in enumerate(column):
        item_id = str(value) if value is not None else str(i)
        if item_id in seen:
            item_id = f"{item_id}@row{i}"
            renamed.append(i)
        seen.add(item_id)
        ids[i] = item_id
    picked = [i for i in renamed if i in set(selected)]
    if picked:
        logger.warning("%d selected row(s) of %s repeat an earlier row's %r; each is searched under its own id "
                       "(first: row %d as %r)", len(picked), spec, id_key, picked[0], ids[picked[0]])
    return {i: ids[i] for i in selected}


def _rows_to_tasks(rows: Rows, request: LoadRequest, *, dataset_id: str) -> list[Task]:
    spec = request.spec
    if len(rows.rows) == 0:
        raise PTSError(f"dataset {spec} is empty")
    explicit_fields = request.query_key is not None or request.answer_key is not None
    if _is_code_oracle(request.oracle) or (code_shape(rows.columns) and not explicit_fields):
        return _code_rows_to_tasks(rows, request, dataset_id=dataset_id)
    query_key = _pick_key("query", request.query_key, QUERY_KEYS, rows, spec)
    answer_key = _pick_key("answer", request.answer_key, ANSWER_KEYS, rows, spec)
    id_key = next((k for k in ID_KEYS if k in rows.columns), None)
    is_optillmbench = "optillmbench" in rows.name.lower()
    is_gsm8k = "gsm8k" in rows.name.lower()
    if request.oracle and request.oracle.startswith("rg:"):
        raise PTSError(f"oracle {request.oracle!r} judges reasoning-gym entries; use it with an rg:<task> dataset")
    fixed_oracle = get_oracle(request.oracle) if request.oracle else None

    tasks, skipped, structured = [], [], []
    selected = _select(len(rows.rows), request)
    item_ids = _item_ids(rows, id_key, selected, spec)
    for i in selected:
        row = rows.rows[i]
        query, raw_answer = row.get(query_key), row.get(answer_key)
        answer_text = None if raw_answer is None else _answer_text(raw_answer)
        if query is None or not str(query).strip() or not answer_text:
            skipped.append(i)
            continue
        if isinstance(raw_answer, dict) or (isinstance(raw_answer, (list, tuple)) and len(raw_answer) != 1):
            structured.append(i)
        if is_optillmbench:
            prompt, (gold, oracle, task_type) = _optillmbench_task(str(query), answer_text, row.get("category"))
        else:
            prompt, (gold, oracle, task_type) = None, _auto_oracle(answer_text, is_gsm8k)
        if fixed_oracle is not None:
            oracle, task_type = fixed_oracle, request.oracle
        metadata: dict[str, Any] = {"source_index": i}
        if gold != answer_text:
            metadata["raw_answer"] = answer_text
        for key, value in row.items():
            # Small scalar columns (category, level, id...) are worth keeping in records.
            if key not in (query_key, answer_key) and isinstance(value, (str, int, float, bool)):
                if not isinstance(value, str) or len(value) <= 200:
                    metadata[key] = value
        tasks.append(
            Task(
                query=str(query),
                answer=gold,
                item_id=item_ids[i],
                dataset_id=dataset_id,
                task_type=task_type,
                oracle=oracle,
                prompt=prompt,
                metadata=metadata,
            )
        )
    if skipped:
        logger.warning("skipped %d row(s) of %s with an empty or missing %r or %r (first: row %d)",
                       len(skipped), spec, query_key, answer_key, skipped[0])
    if structured:
        logger.warning("%d row(s) of %s have a list or object as %r; each is judged against its text form %r "
                       "(first: row %d); pass --answer-key to pick a plain field", len(structured), spec,
                       answer_key, _answer_text(rows.rows[structured[0]][answer_key]), structured[0])
    if not tasks:
        raise PTSError(f"no usable rows in {spec}: every selected row lacks a {query_key!r} or {answer_key!r} value")
    return tasks


def _is_code_oracle(name: str | None) -> bool:
    return bool(name) and (name in ("code", "humaneval") or name.startswith("code:"))


def _code_rows_to_tasks(rows: Rows, request: LoadRequest, *, dataset_id: str) -> list[Task]:
    """Tasks for HumanEval- or MBPP-shaped rows, each judged by running its tests (one oracle per language)."""
    shape = code_shape(rows.columns)
    if shape is None:
        raise PTSError(f"oracle {request.oracle!r} runs tests, but {request.spec} has no code task shape: "
                       "expected HumanEval's prompt/test/entry_point or MBPP's text/test_list; columns: "
                       f"{', '.join(rows.columns)}")
    id_key = next((k for k in ID_KEYS if k in rows.columns), None)
    oracles: dict[str, CodeOracle] = {}
    tasks, skipped = [], []
    selected = _select(len(rows.rows), request)
    item_ids = _item_ids(rows, id_key, selected, request.spec)
    for i in selected:
        row = rows.rows[i]
        name = request.oracle if request.oracle not in (None, "humaneval") else f"code:{row_language(row)}"
        if name not in oracles:
            oracles[name] = get_oracle(name)
            oracles[name].check()
        task = code_task(row, i, shape, oracles[name], dataset_id, item_ids[i])
        if task is None:
            skipped.append(i)
        else:
            tasks.append(task)
    if skipped:
        logger.warning("skipped %d row(s) of %s without code or tests (first: row %d)", len(skipped), request.spec,
                       skipped[0])
    if not tasks:
        raise PTSError(f"no usable rows in {request.spec}: every selected row lacks its code or tests")
    return tasks


def _load_humaneval(request: LoadRequest) -> list[Task]:
    records = read_humaneval()
    return _rows_to_tasks(Rows("humaneval", list(records[0]), records), request, dataset_id="humaneval")


def _answer_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    return str(value).strip()


# A bare lower-case letter is more often a word ("a") than a choice; "(c)" and "c)" are choices.
_CHOICE_GOLD_RE = re.compile(r"^\(?[A-E]\)?[.:]?$|^\([a-e]\)$|^[a-e]\)$")
_YES_NO_GOLD_RE = re.compile(r"^(yes|no|true|false)\.?$", re.IGNORECASE)
_NUMERIC_GOLD_RE = re.compile(r"^[-+]?\$?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?%?$|^[-+]?\d+\s*/\s*\d+$")
_LATEX_GOLD_RE = re.compile(r"^\$.*\$$|\\[A-Za-z]+|\^|_\{", re.DOTALL)


def _is_math_like(text: str) -> bool:
    return bool(text) and (
        (bool(_NUMERIC_GOLD_RE.match(text)) and any(c.isdigit() for c in text)) or bool(_LATEX_GOLD_RE.search(text))
    )


def _auto_oracle(answer: str, is_gsm8k: bool) -> tuple[str, Oracle, str]:
    """Choose (gold, oracle, task_type) from the answer's shape."""
    if is_gsm8k or "####" in answer:
        return math_gold_text(answer) or answer, _MATH, "gsm8k"
    if "\\boxed" in answer or "\\fbox" in answer:
        return extract_boxed(answer) or answer, _MATH, "math"
    if _CHOICE_GOLD_RE.match(answer):
        return choice_gold(answer), _MULTIPLE_CHOICE, "multiple_choice"
    if _YES_NO_GOLD_RE.match(answer):
        return answer.rstrip(".").lower(), _YES_NO, "yes_no"
    if _is_math_like(answer):
        return answer, _MATH, "math"
    return answer, _EXACT, "exact"


_OPTILLMBENCH_PROMPTS = {
    "gsm8k": (
        "Solve this math problem step by step. After solving, provide the final numerical answer after "
        "'### ' (three hash symbols and a space).\n\nQuestion: {q}\n\nShow your work, then give the final "
        "answer after '### '."
    ),
    "mmlu_math": "Solve this math problem. Provide only the answer with no explanation.\n\nQuestion: {q}",
    "boolq": "Answer this yes/no question with only 'yes' or 'no'.\n\nQuestion: {q}",
    "aqua_rat": "Choose the correct answer. Provide only the letter choice with no explanation.\n\nQuestion: {q}",
}
_OPTILLMBENCH_OTHER_PROMPT = "Question: {q}"


def _optillmbench_task(question: str, answer: str, category: Any) -> tuple[str, tuple[str, Oracle, str]]:
    """The prompt and (gold, oracle, task_type) for one optillmbench row, by its category."""
    category = str(category or "other")
    prompt = _OPTILLMBENCH_PROMPTS.get(category, _OPTILLMBENCH_OTHER_PROMPT).format(q=question)
    task_type = f"optillmbench:{category}"
    if category == "gsm8k":
        judged: tuple[str, Oracle] = (math_gold_text(answer) or answer, _MATH)
    elif category == "mmlu_math":
        judged = (answer, _MATH if _is_math_like(answer) else _EXACT)
    elif category == "boolq":
        judged = (answer, _YES_NO)
    elif category == "aqua_rat":
        judged = (choice_gold(answer) or answer, _MULTIPLE_CHOICE)
    else:
        judged = (answer, _EXACT)
    return prompt, (*judged, task_type)



SOURCE_KINDS: list[SourceKind] = [
    SourceKind("reasoning-gym", lambda spec: spec.startswith("rg:"), _load_rg),
    SourceKind("humaneval (packaged)", lambda spec: spec.lower() == HUMANEVAL, _load_humaneval),
    SourceKind("local file", _is_file_spec, _load_file),
    SourceKind("hub or directory", _is_hub_or_dir_spec, _load_hub_or_dir),
]
"""Dataset sources, tried in order; the first whose ``accepts(spec)`` is true loads the spec."""


def register_source(kind: SourceKind) -> None:
    """Add a dataset source, tried before the built-in ones (the catch-all Hub source comes last);
    see docs/architecture.md."""
    SOURCE_KINDS.insert(0, kind)
