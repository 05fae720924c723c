"""``pts run`` as a library call: dataset -> tasks -> searcher -> store.

from pts import RunConfig, run
summary = run(RunConfig(dataset="rg:chain_sum", max_examples=5))
print(summary.pivots, summary.output_path)
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from pts import options
from pts.engines import check_engine
from pts.errors import PTSError
from pts.options import group_of
from pts.resumable import DrivenSummary, Writer, drive
from pts.search.searcher import SearchSettings, TaskResult
from pts.store import RunStore, append_jsonl, trace_path
from pts.tasks.sources import load_tasks_from
from pts.tasks.task import Task
from pts.work import search_work

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
        from pts.distributed import check_ray_options

        check_ray_options(group_of(options.RayOptions, self))
        if self.ray is None and self.engine == "vllm" and importlib.util.find_spec("vllm") is None:
            from pts.engines.vllm import MISSING_VLLM

            raise PTSError(MISSING_VLLM)

    def search_settings(self) -> SearchSettings:
        return group_of(SearchSettings, self)

    def result_settings(self) -> dict[str, Any]:
        """The options that change what a run writes (the model and dataset aside): resuming with other values
        is refused."""
        out = asdict(self.search_settings())
        out.pop("max_generations")
        return out


@dataclass
class RunSummary(DrivenSummary):
    """What one run did (this invocation only, not earlier resumed ones): the counts are sums over
    ``results``, the queries written."""

    verify: bool = True
    stopped_at_max_pairs: bool = False
    results: list[TaskResult] = field(default_factory=list, repr=False)

    searched = property(lambda self: self.statuses["searched"])
    skipped = property(lambda self: self.statuses["skipped"], doc="initial p outside [min_prob, max_prob]")
    too_long = property(lambda self: self.statuses["too_long"], doc="prompt + response beyond the context")
    pivots = property(lambda self: sum(len(r.pivots) for r in self.results))
    positive = property(lambda self: sum(p.is_positive for r in self.results for p in r.pivots))
    negative = property(lambda self: self.pivots - self.positive)
    candidates = property(lambda self: sum(r.candidates for r in self.results))
    dropped = property(lambda self: sum(r.dropped for r in self.results))
    undecided = property(lambda self: sum(r.undecided for r in self.results))

    def format(self) -> str:
        lines = [
            self.queries_line(
                [(self.searched, "searched"), (self.skipped, "skipped (initial p outside range)")],
                if_any=[(self.too_long, "too long for the model's context")],
            ),
            f"pivotal tokens: {self.pivots} ({self.positive} positive, {self.negative} negative)",
            (
                f"candidates: {self.candidates} checked, {self.pivots} kept, {self.dropped} dropped "
                f"({self.undecided} still undecided at --verify-samples)"
            )
            if self.verify
            else f"candidates: {self.candidates}, written without verification (--no-verify)",
            f"samples: {self.rollouts} rollouts, {self.rollout_tokens} tokens ({self.tokens_per_second:.0f} tokens/s)",
        ]
        return self.text(lines, stopped="--max-pairs" if self.stopped_at_max_pairs else None)


def run(config: RunConfig, engine=None, tasks: list[Task] | None = None) -> RunSummary:
    """Search the dataset for pivotal tokens and append them to ``config.output_path``.

    Bad options, datasets, models or output paths raise PTSError before any file
    is created. ``engine`` replaces the model given by ``config.model`` (an
    engine built once and reused; with ``config.ray`` it is copied to every
    worker); ``tasks`` replaces ``config.dataset``. One process writes an output
    at a time: a second is refused while the first holds its lock. The lock,
    the pool, the store and the checks are :func:`pts.resumable.drive`'s.
    """
    config.validate()
    if tasks is None:
        tasks = load_tasks_from(group_of(options.DataOptions, config), config.seed)
    work = search_work(
        config.search_settings(),
        group_of(options.ModelOptions, config),
        group_of(options.EngineOptions, config),
        parallel=config.parallel,
        debug=config.debug,
    )
    summary = RunSummary(config.output_path, verify=config.verify)
    done = drive(
        work,
        tasks,
        SearchWriter(summary, config.max_pairs),
        output=group_of(options.ResumableOutputOptions, config),
        ray=group_of(options.RayOptions, config),
        settings=config.result_settings(),
        inputs={"--dataset": config.dataset},
        max_new_tokens=config.max_new_tokens,
        engine=engine,
    )
    summary.finish(done)
    return summary


class SearchWriter(Writer):
    """Writes each searched query into the output: its traces, then its pivotal tokens, up to ``max_pairs``.

    With ``max_pairs``, which queries fill the quota must not depend on which
    finished first (on Ray that is timing): results are committed in dataset
    order. Without it each is written as soon as it finishes.
    """

    def __init__(self, summary: RunSummary, max_pairs: int | None) -> None:
        self.summary = summary
        self.room = max_pairs  # pivots --max-pairs still allows (None: no limit)
        self.ordered = max_pairs is not None

    def commit(self, store: RunStore, task: Task, result: TaskResult) -> None:
        if self.room is not None:
            if self.room <= 0:
                return  # not marked done: a later run with more room searches it
            if len(result.pivots) >= self.room:
                result.pivots = result.pivots[: self.room]
                self.summary.stopped_at_max_pairs = True
            self.room -= len(result.pivots)
        # Traces first: an item whose records were written always has its trace (a rerun of an
        # interrupted item appends it again; readers keep the last one per solution).
        append_jsonl(trace_path(store.path), result.traces)
        store.write_item(task.item_id, [r.to_dict() for r in result.pivots], result.summary())
        self.summary.results.append(result)
        self.summary.count(result)

    def stop(self) -> bool:
        return self.summary.stopped_at_max_pairs

    def status(self) -> str:
        s = self.summary
        return f"pivots {s.pivots} of {s.candidates} candidates" if s.verify else f"pivots {s.pivots}"

    def counts(self) -> tuple[int, int]:
        return self.summary.rollouts, self.summary.rollout_tokens

    def carried(self, record: dict[str, Any]) -> dict[str, Any]:
        """The search settings a pivotal-token record states (its ``search``); ``confidence`` there is the level
        reported, which is the setting only when sampling was adaptive."""
        search = dict(record.get("search") or {})
        if not search.get("adaptive"):
            search.pop("confidence", None)
        return search


CONFIG = RunConfig
"""The options of this command (the CLI makes its flags from it)."""
