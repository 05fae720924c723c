"""``pts run`` as a library call: dataset -> tasks -> searcher -> store.

from pts import RunConfig, run
summary = run(RunConfig(dataset="rg:chain_sum", max_examples=5))
print(summary.pivots, summary.output_path)
"""

from __future__ import annotations

import importlib.util
import logging
import os
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from pts import options
from pts.engines import check_engine
from pts.errors import PTSError
from pts.progress import Ticker, progress_bar
from pts.search.searcher import SearchSettings, TaskResult
from pts.store import OutputLock, RunStore, append_jsonl, check_free_space, check_writable, trace_path
from pts.tasks.sources import load_tasks_from
from pts.tasks.task import Task
from pts.work import InOrder, LocalPool, search_work, summary_text

log = logging.getLogger(__name__)

HELP = "search a dataset for pivotal tokens"
"""The command's one line in ``pts --help``."""


@options.config
class RunConfig(
    SearchSettings,
    options.ModelOptions,
    options.DataOptions,
    options.EngineOptions,
    options.ResumableOutputOptions,
    options.RayOptions,
):
    """Every option of ``pts run``; the CLI flags are these field names with dashes."""

    max_examples: int | None = options.override(100, help="search at most this many queries")
    output_path: str = options.override("pivotal_tokens.jsonl", help="JSONL file the pivotal tokens are appended to")
    max_pairs: int | None = options.option(None, "stop once this many pivotal tokens have been found", check="count")
    parallel: int = options.option(
        4, "queries searched at once (per Ray worker with --ray); their rollouts share engine calls", check="count"
    )
    debug: bool = options.option(False, "print every rollout with its verdict")

    def validate(self) -> None:
        """Raise PTSError on any option out of range, before anything is loaded or written."""
        options.check(self)
        check_engine(self.engine)
        if self.min_prob > self.max_prob:
            raise PTSError(f"--min-prob ({self.min_prob}) is greater than --max-prob ({self.max_prob})")
        if self.ray is not None:
            from pts.distributed import check_ray_options

            check_ray_options(self)
        elif self.engine == "vllm" and importlib.util.find_spec("vllm") is None:
            from pts.engines.vllm import MISSING_VLLM

            raise PTSError(MISSING_VLLM)

    def search_settings(self) -> SearchSettings:
        return SearchSettings(**{f.name: getattr(self, f.name) for f in fields(SearchSettings)})

    def result_settings(self, model_id: str, dataset_id: str) -> dict[str, Any]:
        """The options that change what a run writes: resuming with other values is refused."""
        out = asdict(self.search_settings())
        out.pop("max_generations")
        return {"model_id": model_id, "dataset_id": dataset_id, **out}


@dataclass
class RunSummary:
    """What one run did (this invocation only, not earlier resumed ones): the counts are sums over
    ``results``, the queries written."""

    output_path: str
    verify: bool = True
    resumed: int = 0
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0
    stopped_at_max_pairs: bool = False
    results: list[TaskResult] = field(default_factory=list, repr=False)

    def _status(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    searched = property(lambda self: self._status("searched"))
    skipped = property(lambda self: self._status("skipped"), doc="initial p outside [min_prob, max_prob]")
    too_long = property(lambda self: self._status("too_long"), doc="prompt + response beyond the context")
    pivots = property(lambda self: sum(len(r.pivots) for r in self.results))
    positive = property(lambda self: sum(p.is_positive for r in self.results for p in r.pivots))
    negative = property(lambda self: self.pivots - self.positive)
    candidates = property(lambda self: sum(r.candidates for r in self.results))
    dropped = property(lambda self: sum(r.dropped for r in self.results))
    undecided = property(lambda self: sum(r.undecided for r in self.results))
    rollouts = property(lambda self: sum(r.rollouts for r in self.results))
    rollout_tokens = property(lambda self: sum(r.rollout_tokens for r in self.results))

    def format(self) -> str:
        rate = self.rollout_tokens / self.seconds if self.seconds else 0.0
        lines = [
            f"queries: {self.searched} searched, {self.skipped} skipped (initial p outside range), "
            f"{self.resumed} already done",
            f"pivotal tokens: {self.pivots} ({self.positive} positive, {self.negative} negative)",
            (
                f"candidates: {self.candidates} checked, {self.pivots} kept, {self.dropped} dropped "
                f"({self.undecided} still undecided at --verify-samples)"
            )
            if self.verify
            else f"candidates: {self.candidates}, written without verification (--no-verify)",
            f"samples: {self.rollouts} rollouts, {self.rollout_tokens} tokens ({rate:.0f} tokens/s)",
        ]
        if self.too_long:
            lines[0] += f", {self.too_long} too long for the model's context"
        return summary_text(
            lines,
            seconds=self.seconds,
            output=self.output_path,
            failed=self.failed,
            stopped="--max-pairs" if self.stopped_at_max_pairs else None,
        )


def run(config: RunConfig, engine=None, tasks: list[Task] | None = None) -> RunSummary:
    """Search the dataset for pivotal tokens and append them to ``config.output_path``.

    Bad options, datasets, models or output paths raise PTSError before any file
    is created. ``engine`` replaces the model given by ``config.model`` (an
    engine built once and reused; with ``config.ray`` it is copied to every
    worker); ``tasks`` replaces ``config.dataset``. One process writes an output
    at a time: a second is refused while the first holds its lock.
    """
    config.validate()
    if tasks is None:
        _check_not_dataset(config)
        tasks = load_tasks_from(config, config.seed)
    if not tasks:
        raise PTSError("the dataset has no rows to search")
    _check_unique_ids(tasks)
    check_writable(config.output_path)
    check_free_space(config.output_path)
    lock = OutputLock(config.output_path)
    pool = None
    try:
        if config.ray is not None:
            from pts.distributed import WorkerPool

            pool = WorkerPool(config, engine)
        else:
            pool = LocalPool(search_work(config), engine)
        store = RunStore(
            config.output_path,
            config.result_settings(pool.model_id, tasks[0].dataset_id),
            resume=config.resume,
            overwrite=config.overwrite,
            lock=lock,
        )
        return _search_into(store, config, tasks, pool)
    finally:
        if pool is not None:
            pool.close()
        lock.release()


def _search_into(store: RunStore, config: RunConfig, tasks: list[Task], pool) -> RunSummary:
    """Search every task not yet done in ``store`` on ``pool`` (:mod:`pts.work`: here or on Ray workers)."""
    summary = RunSummary(config.output_path, verify=config.verify)
    todo = [t for t in tasks if not store.is_done(t.item_id)]
    summary.resumed = len(tasks) - len(todo)
    start = time.perf_counter()
    bar = progress_bar(len(tasks), config.progress, initial=summary.resumed)
    ticker = (
        Ticker(
            bar,
            pool.counters,
            lambda: (summary.rollouts, summary.rollout_tokens),
            lambda: (
                f"pivots {summary.pivots} of {summary.candidates} candidates"
                if summary.verify
                else f"pivots {summary.pivots}"
            ),
        )
        if config.progress
        else None
    )
    traces = trace_path(config.output_path)
    context = pool.context_length

    room = config.max_pairs  # pivots --max-pairs still allows (None: no limit)

    def record(task: Task, result: TaskResult) -> None:
        """Write one finished query: the only place records reach the store, wherever it was searched."""
        nonlocal room
        if result.status == "too_long":
            log.warning(
                "item %s: its prompt and --max-new-tokens %d do not fit the model's context of %d tokens; skipped",
                task.item_id,
                config.max_new_tokens,
                context,
            )
        if room is not None:
            if room <= 0:
                return  # not marked done: a later run with more room searches it
            if len(result.pivots) >= room:
                result.pivots = result.pivots[:room]
                summary.stopped_at_max_pairs = True
            room -= len(result.pivots)
        # Traces first: an item whose records were written always has its trace (a rerun of an
        # interrupted item appends it again; readers keep the last one per solution).
        append_jsonl(traces, result.traces)
        store.write_item(task.item_id, [r.to_dict() for r in result.pivots], result.summary())
        summary.results.append(result)
        summary.seconds = time.perf_counter() - start
        bar.update(1)

    # With --max-pairs, which queries fill the quota must not depend on which finished first (on Ray that is
    # timing): results are committed in dataset order. Without it each is written as soon as it finishes.
    commit = record if config.max_pairs is None else InOrder(todo, record, key=lambda t: t.item_id)
    try:
        failed = pool.map(
            todo, commit, stop=lambda: summary.stopped_at_max_pairs, on_failure=getattr(commit, "skip", None)
        )
        summary.failed = [t.item_id for t in failed]
    finally:
        if ticker is not None:
            ticker.stop()
        bar.close()
    summary.seconds = time.perf_counter() - start
    return summary


def _check_not_dataset(config: RunConfig) -> None:
    """Refuse an output that is the dataset file itself: appending would corrupt the data being read."""
    out, data = config.output_path, config.dataset
    if os.path.exists(out) and os.path.exists(data) and os.path.samefile(out, data):
        raise PTSError(f"--output-path {out} is the dataset file; choose another path")


def _check_unique_ids(tasks: list[Task]) -> None:
    seen: set[str] = set()
    for t in tasks:
        if t.item_id in seen:
            raise PTSError(f"two tasks share the item id {t.item_id!r}; each needs its own to be resumed")
        seen.add(t.item_id)


CONFIG = RunConfig
"""The options of this command (the CLI makes its flags from it)."""
