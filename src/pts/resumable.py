"""The one driver of resumable per-query jobs (``pts run``, ``pts critical``, any job alike).

Such a job does one unit of work per dataset query, here or on Ray workers,
and appends each query's records to an output that a later run resumes. The
job says *what* to do; :func:`drive` does the rest, the same way for every job:

1. checks the tasks (at least one; every item id its own) and the output
   (:func:`pts.store.check_resumable_output`: a regular file, or none yet, that
   is not, and whose ``.progress``/``.trace.jsonl``/``.lock`` are not, a file the
   job reads; a symlink is followed, so two spellings of one file are one output);
2. locks the resolved output (:class:`pts.store.OutputLock`): a second writer is refused at once;
3. starts the pool: :class:`pts.work.LocalPool`, or with ``--ray`` a :class:`pts.distributed.WorkerPool`,
   and hands it to :meth:`Writer.start` (which may check the job's inputs against the model);
4. opens the :class:`pts.store.RunStore`, refusing an output made with other settings (model, dataset and
   every setting the job names), and skips the queries it holds as finished;
5. does the other queries, committing each result through the job's :class:`Writer` (in dataset order when
   the writer asks), with a progress bar; a query whose prompt leaves no room for a response in the model's
   context comes back with status ``too_long`` and is reported with a warning;
6. releases the pool, the store and the lock, whatever happened.

A job plugs in with a :class:`~pts.work.Work` (how a worker loads its engine and does one unit) and a
:class:`Writer` (what a finished unit becomes in the output)::

    class MyWriter(Writer):
        def commit(self, store, unit, result):
            store.write_item(unit.item_id, [r.to_dict() for r in result.records], {"status": result.status})

    done = drive(my_work, tasks, MyWriter(), output=..., ray=..., settings={...}, inputs={"--dataset": ...})
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from pts import options
from pts.engines import check_engine
from pts.errors import PTSError
from pts.options import RayOptions, ResumableOutputOptions
from pts.progress import Ticker, progress_bar
from pts.store import OutputLock, RunStore, check_free_space, check_resumable_output
from pts.tasks.sources import load_tasks_from
from pts.tasks.sources.responses import ResponsesInput, load_response_rows
from pts.tasks.task import Task
from pts.work import InOrder, LocalPool, Work, summary_text

log = logging.getLogger(__name__)


@options.config
class ResponseJobOptions(
    ResponsesInput,
    options.ModelOptions,
    options.DataOptions,
    options.EngineOptions,
    options.PromptOptions,
    options.SamplingOptions,
    options.ResumableOutputOptions,
    options.RayOptions,
):
    """The option groups of a resumable per-query command that measures responses, sampled from ``--dataset``
    or given by ``--input-path`` (``pts critical``, ``pts anchors``): its Config mixes this in after its own
    settings."""

    def check_job(self) -> None:
        """The checks no single field's covers: the engine is a registered one, the Ray options fit together,
        the input file is a JSONL file."""
        from pts.distributed import check_ray_options

        check_engine(self.engine)
        check_ray_options(options.group_of(RayOptions, self))
        self.check_input()

    def response_settings(self) -> dict[str, Any]:
        """The settings of these groups that change what such a job writes: the input rows, the prompt and the
        sampling (each job adds its own)."""
        groups = (ResponsesInput, options.PromptOptions, options.SamplingOptions)
        return {f.name: getattr(self, f.name) for group in groups for f in dataclasses.fields(group)}

    def worker_groups(
        self,
    ) -> tuple[options.SamplingOptions, options.PromptOptions, options.ModelOptions, options.EngineOptions]:
        """What a worker of such a job is handed (:mod:`pts.work`): how it samples and prompts, which model it
        loads, on which engine."""
        groups = (options.SamplingOptions, options.PromptOptions, options.ModelOptions, options.EngineOptions)
        return tuple(options.group_of(g, self) for g in groups)  # type: ignore[return-value]

    def tasks_and_responses(
        self, tasks: list[Task] | None, *, skip_missing: bool
    ) -> tuple[list[Task], dict[str, Any] | None]:
        """The tasks to analyse and, with ``--input-path``, each one's response by item id (text, or the row's
        ``response_ids``); None where responses are to be sampled. ``tasks`` replaces ``--dataset`` (not
        ``--input-path``). A row without a response is skipped with a warning (``skip_missing``, a blank one
        too) or refused; PTSError when no row is left."""
        data = options.group_of(options.DataOptions, self)
        if self.input_path is None:
            return (tasks if tasks is not None else load_tasks_from(data, self.seed)), None
        tasks, responses = load_response_rows(self.input_path, self.response_key, data, self.seed)
        if skip_missing:
            responses = {k: r for k, r in responses.items() if not isinstance(r, str) or r.strip()}
        missing = [t for t in tasks if t.item_id not in responses]
        if missing and not skip_missing:
            row = missing[0].metadata["source_index"]
            raise PTSError(f"row {row} of {self.input_path} has no {self.response_key!r}")
        if missing:
            log.warning("skipped %d row(s) of %s without a %r value", len(missing), self.input_path, self.response_key)
        tasks = [t for t in tasks if t.item_id in responses]
        if not tasks:
            raise PTSError(f"no row of {self.input_path} has a {self.response_key!r} value")
        return tasks, responses

    def drive(
        self, work: Work, tasks: Sequence[Any], writer: Writer, *, settings: dict[str, Any], engine: Any
    ) -> Driven:
        """:func:`drive` with this job's output, Ray and token-budget options, ``--dataset`` and ``--input-path``
        as its inputs; ``settings`` are the job's :meth:`result_settings` (and whatever else changes its records)."""
        return drive(
            work,
            tasks,
            writer,
            output=options.group_of(options.ResumableOutputOptions, self),
            ray=options.group_of(RayOptions, self),
            settings=settings,
            inputs={"--dataset": self.dataset, "--input-path": self.input_path},
            max_new_tokens=self.max_new_tokens,
            engine=engine,
        )


class Writer:
    """What a job does with its finished units; subclass it and write :meth:`commit`.

    A unit's result has a ``status`` (``"too_long"``: its prompt did not fit
    the model's context and nothing was sampled). The defaults: a unit is the
    task itself, results are committed as they come, nothing stops the run
    early, records state no settings.
    """

    ordered: bool = False
    """Commit results in dataset order (:class:`~pts.work.InOrder`), whatever order they finish in: needed when
    a quota (``--max-pairs``) must not depend on which unit finished first."""

    def unit(self, task: Any) -> Any:
        """The unit of work of a task not yet done (default: the task)."""
        return task

    def item_id(self, unit: Any) -> str:
        """The item id of the task a unit belongs to (default: the unit is the task)."""
        return unit.item_id

    def start(self, pool: Any) -> None:
        """Called once the pool is up (its ``model_id``, ``context_length``... known), before the output is
        opened: a PTSError raised here (an input the model cannot take) leaves no file behind."""

    def commit(self, store: RunStore, unit: Any, result: Any) -> Iterable[Any] | None:
        """Write one finished unit into ``store`` (``store.write_item``; ``store.path`` is the resolved output).

        May return units to do again (they go out first); with :attr:`ordered` they keep their place."""
        raise NotImplementedError

    def stop(self) -> bool:
        """True once no more units should be started (a quota is used up)."""
        return False

    def status(self) -> str:
        """What has been found so far, for the progress bar."""
        return ""

    def counts(self) -> tuple[int, int]:
        """Rollouts and tokens of the units committed so far, for the progress bar."""
        return 0, 0

    def carried(self, record: dict[str, Any]) -> Mapping[str, Any]:
        """The settings ``record`` states, under the names of the job's ``settings``: an output found without
        its progress file is resumed only when its records agree with this run's."""
        return {}


@dataclass
class Driven:
    """What :func:`drive` did in this invocation."""

    output_path: str
    resumed: int = 0
    """tasks already finished in the output before this run"""
    failed: list[str] = field(default_factory=list)
    """item ids given up on: their Ray workers kept dying"""
    too_long: list[str] = field(default_factory=list)
    """item ids whose prompt left no room for a response in the model's context"""
    seconds: float = 0.0


@dataclass
class DrivenSummary:
    """The part of a resumable per-query job's summary that :func:`drive` fills (:meth:`finish`), what every
    unit is and costs (:meth:`count`), and the way every such summary ends (:meth:`text`). A job's summary
    subclasses it with its own counts."""

    output_path: str
    _: KW_ONLY
    resumed: int = 0
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0
    statuses: Counter = field(default_factory=Counter)
    rollouts: int = 0
    rollout_tokens: int = 0

    def count(self, result: Any) -> None:
        """Count one finished unit: its ``status`` (in :attr:`statuses`) and what it spent (its ``rollouts`` and
        ``rollout_tokens``)."""
        self.statuses[result.status] += 1
        self.rollouts += result.rollouts
        self.rollout_tokens += result.rollout_tokens

    @property
    def tokens_per_second(self) -> float:
        """Rollout tokens per second of this invocation (0 before it is timed)."""
        return self.rollout_tokens / self.seconds if self.seconds else 0.0

    def queries_line(self, counts: Sequence[tuple[int, str]], *, if_any: Sequence[tuple[int, str]] = ()) -> str:
        """The first line a job prints: ``queries:``, each ``(count, what)`` of ``counts``, those of ``if_any``
        that are not zero (a too-long prompt, a skipped input...), then the queries already done before."""
        parts = [f"{n} {what}" for n, what in counts] + [f"{n} {what}" for n, what in if_any if n]
        return "queries: " + ", ".join([*parts, f"{self.resumed} already done"])

    def finish(self, done: Driven) -> None:
        """Take what :func:`drive` did: the tasks resumed, the units given up on, the time."""
        self.resumed, self.failed, self.seconds = done.resumed, done.failed, done.seconds

    def text(self, lines: list[str], stopped: str | None = None) -> str:
        """``lines`` (the job's own, the first saying what was done), then the time and the output (see
        :func:`pts.work.summary_text`; ``stopped`` names the option that ended the run early)."""
        return summary_text(lines, seconds=self.seconds, output=self.output_path, failed=self.failed, stopped=stopped)


def start_pool(ray: RayOptions, work: Work, engine: Any = None) -> Any:
    """The pool that does ``work``: on Ray workers with ``ray.ray`` set, else here; ``engine`` replaces loading one
    (copied to every Ray worker)."""
    if ray.ray is None:
        return LocalPool(work, engine)
    from pts.distributed import WorkerPool

    return WorkerPool(ray, work, engine)


def check_tasks(tasks: Sequence[Any]) -> None:
    """PTSError unless there is a task and every task has its own item id (which the output is resumed by)."""
    if not tasks:
        raise PTSError("the dataset has no rows")
    seen: set[str] = set()
    for t in tasks:
        if t.item_id in seen:
            raise PTSError(f"two tasks share the item id {t.item_id!r}; each needs its own to be resumed")
        seen.add(t.item_id)


def drive(
    work: Work,
    tasks: Sequence[Any],
    writer: Writer,
    *,
    output: ResumableOutputOptions,
    ray: RayOptions,
    settings: Mapping[str, Any],
    inputs: Mapping[str, str | None] | None = None,
    max_new_tokens: int | None = None,
    engine: Any = None,
) -> Driven:
    """Do ``work`` for every task not yet finished in ``output.output_path``, committing through ``writer``.

    ``settings`` are the job's options that change its results (the model and
    dataset ids are added): resuming an output made with others is refused.
    ``inputs`` are the files the job reads, by flag (``{"--dataset": path}``):
    the output may be none of them. ``max_new_tokens`` is named in the
    warning about a prompt too long for the context. Every check raises
    PTSError before any file is created or a model loaded. See the module
    docstring for the steps; returns what was done.
    """
    check_tasks(tasks)
    path = check_resumable_output(output.output_path, inputs)
    check_free_space(path)
    done = Driven(output.output_path)
    lock = OutputLock(path)  # before the model loads: a second writer is refused at once
    pool = store = ticker = bar = None
    try:
        pool = start_pool(ray, work, engine)
        writer.start(pool)
        store = RunStore(
            path,
            {"model_id": pool.model_id, "dataset_id": tasks[0].dataset_id, **settings},
            resume=output.resume,
            overwrite=output.overwrite,
            lock=lock,
            carried=writer.carried,
        )
        todo = [writer.unit(t) for t in tasks if not store.is_done(t.item_id)]
        done.resumed = len(tasks) - len(todo)
        start = time.perf_counter()
        bar = progress_bar(len(tasks), output.progress, initial=done.resumed)
        shown = len(store.done)
        if output.progress:
            ticker = Ticker(bar, pool.counters, writer.counts, writer.status)

        def commit(unit: Any, result: Any) -> Iterable[Any] | None:
            nonlocal shown
            if result.status == "too_long":
                done.too_long.append(result.item_id)
                log.warning(
                    "item %s: its prompt and --max-new-tokens %s do not fit the model's context of %s tokens; skipped",
                    result.item_id,
                    max_new_tokens,
                    pool.context_length,
                )
            more = writer.commit(store, unit, result)
            bar.update(len(store.done) - shown)
            shown = len(store.done)
            return more

        ordered = InOrder(todo, commit, key=work.key) if writer.ordered else None
        failed = pool.map(
            todo,
            ordered or commit,
            stop=lambda: writer.stop() or (ordered is not None and ordered.out_again),
            on_failure=ordered.skip if ordered is not None else None,
        )
        done.failed = [writer.item_id(unit) for unit in failed]
        done.seconds = time.perf_counter() - start
        return done
    finally:
        if ticker is not None:
            ticker.stop()
        if bar is not None:
            bar.close()
        if pool is not None:
            pool.close()
        if store is not None:
            store.close()
        lock.release()
