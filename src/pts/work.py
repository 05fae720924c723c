"""Units of work and the one way pts does many of them at once, here or on Ray.

A command that does many independent units (``pts run``: one query searched;
``pts critical``, ``pts anchors``: one query analysed; ``pts eval --ray``: one batch) describes
them as a :class:`Work`: how to load an engine, what to build on it, which
function does one unit. A pool does the units and hands each result to the
command's ``record`` callback, which alone writes:

- :class:`LocalPool`, in this process: up to ``Work.concurrency`` units at
  once in threads whose engine calls merge into one
  (:class:`~pts.engines.coalesce.CoalescingEngine`);
- :class:`pts.distributed.WorkerPool`, on Ray actors, each holding one engine
  and running units the same way.

Both have the same ``map(units, record, stop, on_failure)``, so a command
does not care where its units run. Locally, units join and leave the merged
engine calls only at quiet points, when every unit in flight is either waiting
for rollouts or finished: the calls are the lockstep rounds of the units in
flight, and which requests share a call (which changes bf16 samples) is the
same on every run. Each query carries its own seed, so on the fake engine and
in float32 the records do not depend on the concurrency at all.
"""

from __future__ import annotations

import ctypes
import sys
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from itertools import count
from typing import TYPE_CHECKING, Any

from pts.engines.coalesce import CoalescingEngine
from pts.options import EngineOptions, ModelOptions, PromptOptions, SamplingOptions

if TYPE_CHECKING:  # the algorithms are imported where a worker needs them, not by every command
    from pts.search.anchors.query import Solutions
    from pts.search.anchors.settings import AnchorSettings
    from pts.search.critical.query import Trajectories
    from pts.search.critical.settings import CriticalSettings
    from pts.search.searcher import SearchSettings


@dataclass(frozen=True)
class Work:
    """What the workers of a pool do; ``load``, ``setup`` and ``call`` travel to Ray workers (module-level
    functions or partials of them, nothing defined in a function).

    ``load()`` makes an engine (unless the pool was given one), ``setup(engine)`` what the pool keeps (a
    searcher, an analyser...), ``call(state, unit)`` does one unit of work and returns its result, up to
    ``concurrency`` units at once. With ``merge``, ``setup`` gets a
    :class:`~pts.engines.coalesce.CoalescingEngine` that merges the units' engine calls. ``key(unit)`` names a
    unit in reports and counts its tries.
    """

    load: Callable[[], Any]
    setup: Callable[[Any], Any]
    call: Callable[[Any, Any], Any]
    concurrency: int = 1
    merge: bool = False
    key: Callable[[Any], str] = str


Record = Callable[[Any, Any], Iterable[Any] | None]
"""``record(unit, result)``: takes one finished unit; may return more units to do (they go out first)."""


class LocalPool:
    """``work`` done in this process on ``engine`` (default: ``work.load()``); see the module docstring."""

    def __init__(self, work: Work, engine: Any = None) -> None:
        self.work = work
        self.engine = engine if engine is not None else work.load()
        self.shared = CoalescingEngine(self.engine) if work.merge else None
        self.state = work.setup(self.shared or self.engine)
        self.model_id = self.engine.model_id
        self.context_length = getattr(self.engine, "context_length", None)
        self.batch_size = getattr(self.engine, "batch_size", None)
        self.next_token_logprobs = callable(getattr(self.engine, "next_token_logprobs", None))

    def map(
        self,
        units: Iterable[Any],
        record: Record,
        stop: Callable[[], bool] = lambda: False,
        on_failure: Callable[[Any], Iterable[Any] | None] | None = None,
    ) -> list[Any]:
        """Do ``units``, calling ``record(unit, result)`` as each finishes (several finished together: in the
        order they were handed out); none is started once ``stop()`` is true, except units ``record`` returns.
        Returns the units given up on: none here (``on_failure`` is for :class:`pts.distributed.WorkerPool`,
        whose workers can die), an exception in a unit stops the run."""
        queue: deque[Any] = deque(units)
        again: deque[Any] = deque()

        def next_unit() -> tuple[bool, Any]:
            if again:
                return True, again.popleft()
            if queue and not stop():
                return True, queue.popleft()
            return False, None

        if self.shared is None or self.work.concurrency == 1:
            # One at a time in the main thread, where an oracle's timeout alarm works.
            while True:
                more, unit = next_unit()
                if not more:
                    return []
                again.extend(record(unit, self.work.call(self.state, unit)) or ())
        self._in_threads(next_unit, record, again)
        return []

    def _in_threads(self, next_unit: Callable[[], tuple[bool, Any]], record: Record, again: deque[Any]) -> None:
        shared, work = self.shared, self.work
        assert shared is not None
        limit_malloc_arenas()
        threads = ThreadPoolExecutor(max_workers=work.concurrency, thread_name_prefix="pts-unit")
        order = count()
        running = 0

        def body(n: int, unit: Any) -> None:
            try:
                outcome = (n, unit, work.call(self.state, unit), None)
            except BaseException as e:  # handed to the main thread, which stops the run
                outcome = (n, unit, None, e)
            shared.finish(outcome)

        def fill() -> None:
            nonlocal running
            starting = []
            while running + len(starting) < work.concurrency:
                more, unit = next_unit()
                if not more:
                    break
                starting.append(unit)
            # All join before any thread starts, so the first merged call already waits for every one of them.
            for _ in starting:
                shared.join()
            for unit in starting:
                threads.submit(body, next(order), unit)
            running += len(starting)

        try:
            fill()
            while running:
                finished = sorted(shared.wait_quiet(), key=lambda o: o[0])
                running -= len(finished)
                for _, unit, result, error in finished:
                    if error is not None:
                        raise error
                    again.extend(record(unit, result) or ())
                fill()  # newcomers join before the finished leave: the next merged call waits for them
                for _ in finished:
                    shared.leave(finished=True)
        finally:
            shared.cancel()
            threads.shutdown(wait=True, cancel_futures=True)
            shared.reset()

    def ask(self, question: Callable[..., Any], *args: Any) -> Any:
        """``question(state, *args)`` on what the pool keeps (its ``setup``): a check of the job's inputs that
        needs the model's tokenizer or context, before any unit runs."""
        return question(self.state, *args)

    def counters(self) -> tuple[int, int] | None:
        """Rollouts and tokens the engine has finished so far (for a live progress display), when it counts
        them as it goes; None otherwise."""
        return engine_counters(self.engine)

    def close(self) -> None:
        """Nothing to release here (a :class:`pts.distributed.WorkerPool` ends its actors)."""


def engine_counters(engine: Any) -> tuple[int, int] | None:
    """``engine``'s finished rollouts and tokens so far, or None for an engine that does not count them."""
    rollouts = getattr(engine, "rollouts_done", None)
    return None if rollouts is None else (rollouts, getattr(engine, "tokens_done", 0))


class InOrder:
    """``commit(unit, result)`` called in the order of ``units``, whatever order results arrive in (later ones
    wait), as the ``record`` of a pool's ``map``. A unit is known by ``key``; ``commit`` may return units to do
    again (they keep their place: later results wait for theirs)."""

    def __init__(self, units: Iterable[Any], commit: Record, key: Callable[[Any], Any]) -> None:
        self.key = key
        self.position = {key(u): i for i, u in enumerate(units)}
        self.commit = commit
        self.waiting: dict[int, tuple[Any, Any]] = {}
        self.next = 0
        self.out_again = False  # a unit is out again and everything after it waits

    def __call__(self, unit: Any, result: Any) -> list[Any]:
        self.waiting[self.position[self.key(unit)]] = (unit, result)
        while self.next in self.waiting:
            unit, result = self.waiting.pop(self.next)
            more = list(self.commit(unit, result) or ()) if result is not None else []
            self.out_again = bool(more)
            if more:
                return more
            self.next += 1
        return []

    def skip(self, unit: Any) -> list[Any]:
        """``unit`` will never have a result (its workers kept dying): do not wait for it."""
        return self(unit, None)


def summary_text(
    lines: list[str], *, seconds: float, output: str, stopped: str | None = None, failed: Sequence[str] = ()
) -> str:
    """What a command that did units prints: its own ``lines`` (the first says what was done), then the
    time and the output; ``stopped`` names the option that ended the run early, ``failed`` the units given up
    on (their workers kept dying)."""
    lines = [*lines, f"time: {seconds:.1f} s", f"output: {output}"]
    if stopped:
        lines.insert(2, f"stopped early: {stopped} reached")
    if failed:
        shown = ", ".join(failed[:5]) + (", ..." if len(failed) > 5 else "")
        lines.insert(
            1,
            f"failed: {len(failed)} queries killed their worker on every try and were left for a "
            f"later run (items {shown})",
        )
    return "\n".join(lines)


def limit_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's malloc arenas for threads started from now on.

    glibc gives each new thread its own arena; merged engine calls run in
    whichever unit's thread arrives last, so tensors of every shape get
    allocated and freed across several arenas, whose freed pages are rarely
    returned (the default cap is 8 per core). Elsewhere than glibc this does
    nothing.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-8, arenas)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass


# --- the work of each command --------------------------------------------------------------------------------------


def load_engine(model: ModelOptions, engine: EngineOptions) -> Any:
    """The engine the options name: ``engine.engine`` loading ``model.model`` on ``model.device``/``model.dtype``."""
    from pts.engines import create_engine

    return create_engine(
        engine.engine, model.model, device=model.device, dtype=model.dtype, batch_size=engine.batch_size
    )


def search_work(
    settings: SearchSettings, model: ModelOptions, engine: EngineOptions, *, parallel: int, debug: bool = False
) -> Work:
    """``pts run``: a unit is one query (a :class:`~pts.tasks.task.Task`), searched to the end with ``settings``;
    up to ``parallel`` at once, their engine calls merged; ``debug`` prints every rollout."""
    return Work(
        partial(load_engine, model, engine),
        partial(_search_state, settings, debug),
        _search_one,
        concurrency=parallel,
        merge=True,
        key=_item,
    )


def _search_state(settings: SearchSettings, debug: bool, engine: Any) -> tuple[Any, int | None]:
    from pts.search.searcher import PivotalTokenSearcher, context_length

    on_rollout = _print_rollout if debug else None
    return PivotalTokenSearcher(engine, settings, on_rollout=on_rollout), context_length(engine)


def _search_one(state: tuple[Any, int | None], task: Any) -> Any:
    from pts.search.searcher import search_one

    searcher, context = state
    return search_one(searcher, task, context)


def _print_rollout(text: str, rollout: Any, ok: bool) -> None:
    """``pts run --debug``: every rollout with its verdict, on stderr."""
    verdict = "PASS" if ok else "FAIL"
    print(f"--- rollout [{verdict}, {rollout.finish_reason}, {len(rollout.token_ids)} tokens]\n{text}", file=sys.stderr)


def critical_work(
    settings: CriticalSettings,
    trajectories: Trajectories,
    sampling: SamplingOptions,
    prompt: PromptOptions,
    model: ModelOptions,
    engine: EngineOptions,
    *,
    parallel: int,
) -> Work:
    """``pts critical``: a unit is ``(task, response, limit)``, one query analysed to the end (see
    :func:`pts.search.critical.query.analyse`); up to ``parallel`` at once, their engine calls merged."""
    return Work(
        partial(load_engine, model, engine),
        partial(_critical_state, settings, trajectories, sampling, prompt),
        _analyse_one,
        concurrency=parallel,
        merge=True,
        key=_first_item,
    )


def _critical_state(
    settings: CriticalSettings,
    trajectories: Trajectories,
    sampling: SamplingOptions,
    prompt: PromptOptions,
    engine: Any,
) -> Any:
    from pts.search.critical.query import QueryAnalyser

    return QueryAnalyser(engine, settings, sampling, prompt, trajectories=trajectories)


def _analyse_one(analyser: Any, unit: tuple[Any, Any, int | None]) -> Any:
    from pts.search.critical.query import analyse

    task, response, limit = unit
    return analyse(analyser, task, response, limit)


def anchors_work(
    settings: AnchorSettings,
    solutions: Solutions,
    sampling: SamplingOptions,
    prompt: PromptOptions,
    model: ModelOptions,
    engine: EngineOptions,
    *,
    similarity: str,
    parallel: int,
) -> Work:
    """``pts anchors``: a unit is ``(task, response)``, one query's responses measured sentence by sentence
    (:func:`pts.search.anchors.query.analyse_query`; ``response``: input token ids, or None to sample);
    ``similarity`` is the filter chosen for the run (``minilm`` or ``exact``); up to ``parallel`` at once,
    their engine calls merged."""
    return Work(
        partial(load_engine, model, engine),
        partial(_anchors_state, settings, solutions, sampling, prompt, similarity),
        _anchors_one,
        concurrency=parallel,
        merge=True,
        key=_first_item,
    )


def _anchors_state(
    settings: AnchorSettings,
    solutions: Solutions,
    sampling: SamplingOptions,
    prompt: PromptOptions,
    similarity: str,
    engine: Any,
) -> Any:
    from pts.search.anchors.query import AnchorAnalyser
    from pts.search.anchors.similarity import load_filter

    return AnchorAnalyser(engine, settings, sampling, prompt, solutions=solutions, similarity=load_filter(similarity))


def _anchors_one(analyser: Any, unit: tuple[Any, Any]) -> Any:
    from pts.search.anchors.query import analyse_query

    return analyse_query(analyser, unit[0], unit[1])


def eval_work(
    spec: str, model: ModelOptions, engine: EngineOptions, settings: Any, *, base_model: str | None = None
) -> Work:
    """``pts eval`` and contrast sampling: a unit is ``(start, tasks)``, a batch of queries generated and judged
    in one engine call (:func:`pts.evaluate.evaluate_batch`); ``spec`` (in place of ``model.model``) is loaded as
    :func:`pts.evaluate.make_engine` does (LoRA adapter directories too, on ``base_model``)."""
    from pts.evaluate import make_engine

    load = partial(
        make_engine,
        spec,
        engine=engine.engine,
        device=model.device,
        dtype=model.dtype,
        batch_size=engine.batch_size,
        base_model=base_model,
    )
    return Work(load, _engine_itself, partial(_evaluate_batch, settings), key=_batch)


def _engine_itself(engine: Any) -> Any:
    return engine


def _evaluate_batch(settings: Any, engine: Any, unit: tuple[int, list[Any]]) -> tuple[list[tuple[Any, Any]], int]:
    from pts.evaluate import evaluate_batch

    queries, tokens = evaluate_batch(engine, unit[1], settings)
    return [(q.prompt_ids, q.samples) for q in queries], tokens  # the driver keeps its own tasks


def _item(task: Any) -> str:
    return f"item {task.item_id}"


def _first_item(unit: tuple[Any, ...]) -> str:
    return _item(unit[0])


def _batch(unit: tuple[int, list[Any]]) -> str:
    tasks = unit[1]
    return f"items {tasks[0].item_id}..{tasks[-1].item_id}" if len(tasks) > 1 else _item(tasks[0])
