"""The ``pts anchors`` job: thought anchors, the sentences of a response that decide its outcome
(Bogdan, Macar, Nanda, Conmy 2025, arXiv 2506.19143).

For each query pts samples ``num_samples`` responses (or takes one from
``input_path``), splits up to ``num_solutions`` of them into sentences on their
own token boundaries, and measures every sentence's resampling and
counterfactual importance with intervals from pooled rollouts; anchors are
verified on fresh rollouts. One :class:`~pts.formats.thought_anchors.ThoughtAnchor`
record per sentence is appended to ``output_path``. From Python::

    from pts.jobs.anchors import AnchorsConfig, run
    print(run(AnchorsConfig(dataset="rg:chain_sum", max_examples=2, rollouts=32)).format())

The measuring is :mod:`pts.search.anchors` (one query: :func:`~pts.search.anchors.query.analyse_query`); this
module loads the queries, runs ``parallel`` of them side by side (their rollouts share engine calls), writes the
records and resumes.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from pts import options
from pts.engines import check_engine
from pts.errors import PTSError
from pts.options import option, override
from pts.progress import progress_bar
from pts.search.anchors.settings import AnchorSettings
from pts.store import OutputLock, RunStore, check_free_space, check_writable, read_jsonl
from pts.tasks.sources import ANSWER_KEYS, load_tasks, load_tasks_from
from pts.work import LocalPool, Work, load_engine, summary_text

log = logging.getLogger(__name__)

HELP = "find thought anchors: the sentences of a response that decide its answer (Thought Anchors, Bogdan et al. 2025)"
"""The command's one line in ``pts --help``."""


@options.config
class AnchorsConfig(
    AnchorSettings,
    options.ModelOptions,
    options.DataOptions,
    options.EngineOptions,
    options.PromptOptions,
    options.SamplingOptions,
    options.ResumableOutputOptions,
):
    """Every option of ``pts anchors``; the CLI flags are these field names with dashes."""

    input_path: str | None = option(
        None,
        "JSONL of {query, answer, response} rows to analyse instead of sampling from --dataset (an optional "
        "response_ids list is used as the exact tokens)",
    )
    response_key: str = option("response", "field of --input-path rows holding the response")
    max_examples: int | None = override(20, help="analyse at most this many queries (or --input-path rows)")
    num_samples: int = option(
        8, "responses sampled per query: its p(success), and the responses analysed", check="count"
    )
    num_solutions: int = option(1, "responses analysed per query (the first distinct sampled ones)", check="count")
    min_prob: float = option(
        0.1, "analyse only queries whose sampled responses are correct at least this often", check="unit"
    )
    max_prob: float = option(
        0.9, "analyse only queries whose sampled responses are correct at most this often", check="unit"
    )
    max_new_tokens: int = override(512, help="token budget of a whole response (prefix + rollout)")
    output_path: str = override("thought_anchors.jsonl", help="JSONL file the sentence records are appended to")
    parallel: int = option(2, "queries analysed at once; their rollouts share engine calls", check="count")

    def validate(self) -> None:
        """Raise PTSError on any option out of range, before anything is loaded or written."""
        super().validate()
        check_engine(self.engine)
        if self.min_prob > self.max_prob:
            raise PTSError(f"--min-prob ({self.min_prob}) is above --max-prob ({self.max_prob})")
        if self.input_path is not None:
            path = Path(self.input_path).expanduser()
            if not path.is_file():
                raise PTSError(f"input file not found: {self.input_path}")
            if path.suffix.lower() != ".jsonl":
                raise PTSError("--input-path must be a .jsonl file of {query, answer, response} rows")

    def sampling(self):
        from pts.engines.base import SamplingParams

        return SamplingParams(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k, min_p=self.min_p)

    def result_settings(self, model_id: str, dataset_id: str) -> dict[str, Any]:
        """The options that change what a run writes: resuming with other values is refused."""
        keep = [f for f in AnchorSettings.__dataclass_fields__ if f != "similarity"] + [
            "input_path",
            "response_key",
            "num_samples",
            "num_solutions",
            "min_prob",
            "max_prob",
            "max_new_tokens",
            "system_prompt",
            "chat_template",
            "early_stop",
            "temperature",
            "top_p",
            "top_k",
            "min_p",
            "seed",
        ]
        return {"model_id": model_id, "dataset_id": dataset_id, **{k: getattr(self, k) for k in keep}}


@dataclass
class AnchorsSummary:
    """Counts of one ``pts anchors`` run (this invocation only)."""

    output_path: str
    similarity: str = ""
    analysed: int = 0
    skipped: int = 0
    no_sentences: int = 0
    resumed: int = 0
    traces: int = 0
    sentences: int = 0
    candidates: int = 0
    anchors: int = 0
    rollouts: int = 0
    verify_rollouts: int = 0
    rollout_tokens: int = 0
    seconds: float = 0.0
    failed: list[str] = field(default_factory=list)

    def add(self, result: Any) -> None:
        """Count one finished query (a :class:`~pts.search.anchors.query.AnchorOutcome`)."""
        if result.status == "skipped":
            self.skipped += 1
        elif result.status == "no_sentences":
            self.no_sentences += 1
        else:
            self.analysed += 1
        self.traces += result.traces
        self.sentences += len(result.records)
        self.candidates += sum(r.verified is not None or r.is_anchor for r in result.records)
        self.anchors += result.anchors
        self.rollouts += result.rollouts
        self.verify_rollouts += result.verify_rollouts
        self.rollout_tokens += result.rollout_tokens

    def format(self) -> str:
        rate = self.rollout_tokens / self.seconds if self.seconds else 0.0
        queries = f"queries: {self.analysed} analysed, {self.skipped} skipped (p outside --min-prob..--max-prob)"
        if self.no_sentences:
            queries += f", {self.no_sentences} without a sentence"
        per = self.rollouts / self.sentences if self.sentences else 0.0
        lines = [
            queries + f", {self.resumed} already done",
            f"sentences: {self.sentences} in {self.traces} responses (similarity filter: {self.similarity})",
            f"anchors: {self.anchors} kept of {self.candidates} candidates",
            (
                f"samples: {self.rollouts} rollouts ({per:.1f} per sentence, {self.verify_rollouts} verifying), "
                f"{self.rollout_tokens} tokens ({rate:.0f} tokens/s)"
            ),
        ]
        return summary_text(lines, seconds=self.seconds, output=self.output_path, failed=self.failed)


def similarity_cache() -> Path:
    """Where the unzipped sentence-embedding model is kept: the pts cache (``$PTS_CACHE_DIR`` or
    ``~/.cache/pts/models``)."""
    return Path(os.environ.get("PTS_CACHE_DIR") or Path.home() / ".cache" / "pts" / "models").expanduser()


def anchors_work(config: AnchorsConfig) -> Work:
    """A unit is ``(task, response)``: one query analysed to the end; up to ``--parallel`` at once, their engine
    calls merged."""
    return Work(
        partial(load_engine, config),
        partial(_analyser, config),
        _analyse_one,
        concurrency=config.parallel,
        merge=True,
        key=_item,
    )


def _analyser(config: AnchorsConfig, engine: Any) -> Any:
    from pts.search.anchors.query import AnchorAnalyser
    from pts.search.anchors.similarity import load_filter

    return AnchorAnalyser(config, engine, load_filter(config.similarity, similarity_cache()))


def _analyse_one(analyser: Any, unit: tuple[Any, Any]) -> Any:
    from pts.search.anchors.query import analyse_query

    return analyse_query(analyser, unit[0], unit[1])


def _item(unit: tuple[Any, Any]) -> str:
    return f"item {unit[0].item_id}"


def run(config: AnchorsConfig, engine: Any = None, tasks: list[Any] | None = None) -> AnchorsSummary:
    """Measure the sentences of each query's responses and append them to ``config.output_path``.

    Bad options, inputs (a response of one token, without a sentence, or longer than the model's context),
    models or output paths raise PTSError before any file is created. ``engine`` replaces the model given by
    ``config.model``; ``tasks`` replaces ``config.dataset`` (not with ``input_path``).
    """
    config.validate()
    responses: dict[str, Any] | None = None
    if config.input_path is not None:
        tasks, responses = _load_input(config)
    elif tasks is None:
        tasks = load_tasks_from(config, config.seed)
    if not tasks:
        raise PTSError("the dataset has no rows to analyse")
    check_writable(config.output_path)
    check_free_space(config.output_path)
    lock = OutputLock(config.output_path)
    pool = None
    try:
        pool = LocalPool(anchors_work(config), engine)
        if responses is not None:  # every input response is checked before anything is written
            responses = {t.item_id: pool.state.check_response(t, responses[t.item_id]) for t in tasks}
        store = RunStore(
            config.output_path,
            {
                **config.result_settings(pool.model_id, tasks[0].dataset_id),
                "similarity_filter": pool.state.similarity.name,
            },
            resume=config.resume,
            overwrite=config.overwrite,
            lock=lock,
        )
    except BaseException:
        lock.release()
        raise
    summary = AnchorsSummary(config.output_path, similarity=pool.state.similarity.name)
    todo = [t for t in tasks if not store.is_done(t.item_id)]
    summary.resumed = len(tasks) - len(todo)
    bar = progress_bar(len(tasks), config.progress, summary.resumed)
    start = time.perf_counter()

    def record(_: Any, result: Any) -> None:
        store.write_item(
            result.item_id,
            [r.to_dict() for r in result.records],
            {"status": result.status, "p_initial": result.p_initial, "sentences": len(result.records)},
        )
        summary.add(result)
        summary.seconds = time.perf_counter() - start
        bar.update(1)

    units = [(t, None if responses is None else responses[t.item_id]) for t in todo]
    try:
        pool.map(units, record)
    finally:
        bar.close()
        store.close()
        pool.close()
    summary.seconds = time.perf_counter() - start
    return summary


def _load_input(config: AnchorsConfig) -> tuple[list[Any], dict[str, Any]]:
    """Tasks of ``input_path`` and each one's response (text, or the row's response_ids), by item id."""
    rows = read_jsonl(Path(config.input_path).expanduser(), encoding="utf-8-sig")  # type: ignore[arg-type]
    if not rows:
        raise PTSError(f"{config.input_path} is empty")
    columns = list(dict.fromkeys(k for r in rows[:100] for k in r))
    if config.response_key not in columns:
        raise PTSError(
            f"no {config.response_key!r} field in {config.input_path}; available columns: {', '.join(columns)} "
            "(set --response-key)"
        )
    answer_key = config.answer_key or next((k for k in ANSWER_KEYS if k in columns and k != config.response_key), None)
    if answer_key is None:
        raise PTSError(f"no answer field in {config.input_path}; name one with --answer-key")
    tasks = load_tasks(
        config.input_path,
        query_key=config.query_key,
        answer_key=answer_key,
        sample_size=config.sample_size,
        max_examples=config.max_examples,
        seed=config.seed,
        oracle=config.oracle,
    )
    responses: dict[str, Any] = {}
    for task in tasks:
        row = rows[task.metadata["source_index"]]
        ids = row.get("response_ids")
        if isinstance(ids, list) and ids and all(isinstance(i, int) for i in ids):
            responses[task.item_id] = [int(i) for i in ids]
        elif isinstance(row.get(config.response_key), str):
            responses[task.item_id] = row[config.response_key]
        else:
            raise PTSError(f"row {task.metadata['source_index']} of {config.input_path} has no {config.response_key!r}")
    return tasks, responses


CONFIG = AnchorsConfig
"""The options of this command (the CLI makes its flags from it)."""
