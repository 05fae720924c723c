"""The ``pts critical`` job: critical tokens of incorrect trajectories by rollout sampling (Lin et al., arXiv 2411.19943).

Trajectories come from a dataset (pts samples ``num_trajectories`` responses
per query and keeps the ones the oracle rejects) or from ``input_path``, a
JSONL file of ``{query, answer, response}`` rows. Each is scored token by token
(``mode="scan"``, the paper's K rollouts at every position, or
``mode="search"``, the same token from far fewer rollouts) and its critical
token, with Pass@k with and without it, is appended to ``output_path`` as a
:class:`pts.records.CriticalToken`. From Python::

    from pts.jobs.critical import CriticalConfig, run
    summary = run(CriticalConfig(dataset="rg:chain_sum", max_examples=5, rollouts=16))
    print(summary.format())

The scoring itself is :mod:`pts.search.critical`; this module loads the
queries, samples the trajectories, runs ``parallel`` queries side by side
(their rollouts share engine calls), writes the records and resumes.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pts import options
from pts.options import group_of, option, override
from pts.resumable import DrivenSummary, ResponseJobOptions, Writer
from pts.search.critical.query import QueryOutcome, Trajectories
from pts.search.critical.settings import CriticalSettings
from pts.store import RunStore
from pts.work import critical_work

log = logging.getLogger(__name__)

HELP = "find critical tokens in incorrect trajectories by rollout sampling (cDPO, Lin et al. 2024)"
"""The command's one line in ``pts --help``."""


@options.config
class CriticalConfig(
    CriticalSettings,
    ResponseJobOptions,
):
    """Every option of ``pts critical``; the CLI flags are these field names with dashes."""

    response_key: str = override("response", help="field of --input-path rows holding the incorrect response")
    max_examples: int | None = override(100, help="analyse at most this many queries (or --input-path rows)")
    num_trajectories: int = option(
        8, "responses sampled per query; the ones the oracle rejects are analysed", check="count"
    )
    max_trajectories: int | None = option(
        None, "stop once this many incorrect trajectories have been analysed", check="count"
    )
    min_prob: float = option(
        0.0,
        "analyse only queries whose sampled responses are correct at least this often "
        "(0.1 with 8 samples: at least one correct, like the paper's DPO pairs)",
        check="unit",
    )
    max_new_tokens: int = override(512, help="token budget of a whole response (prefix + rollout)")
    output_path: str = override("critical_tokens.jsonl", help="JSONL file the critical-token records are appended to")
    parallel: int = option(
        4, "queries analysed at once (per Ray worker with --ray); their rollouts share engine calls", check="count"
    )

    def validate(self) -> None:
        """Raise PTSError on any option out of range, before anything is loaded or written."""
        super().validate()  # every field's check, and the search's own bounds
        self.check_job()

    def settings(self) -> CriticalSettings:
        return group_of(CriticalSettings, self)

    def trajectories(self) -> Trajectories:
        return Trajectories(count=self.num_trajectories, min_prob=self.min_prob)

    def result_settings(self) -> dict[str, Any]:
        """The options that change what a run writes (the model and dataset aside): resuming with other values
        is refused."""
        keep = (
            "num_trajectories",
            "min_prob",
            "rollouts",
            "mode",
            "low_threshold",
            "probe_samples",
            "verify_stride",
            "verify_full",
            "verify_samples",
            "pool",
            "pass_at_k",
        )
        return {**self.response_settings(), **{k: getattr(self, k) for k in keep}}


@dataclass
class CriticalSummary(DrivenSummary):
    """Counts of one ``pts critical`` run (this invocation only)."""

    mode: str
    rollouts_k: int
    trajectories: int = 0
    rules: Counter = field(default_factory=Counter)
    scoring_rollouts: int = 0
    pass_at_k_rollouts: int = 0
    stopped_at_max_trajectories: bool = False
    with_curves: list[list[float]] = field(default_factory=list, repr=False)
    without_curves: list[list[float]] = field(default_factory=list, repr=False)

    analysed = property(lambda self: self.statuses["analysed"])
    no_incorrect = property(lambda self: self.statuses["no_incorrect"])
    skipped = property(lambda self: self.statuses["skipped"], doc="success rate below --min-prob")
    correct_inputs = property(lambda self: self.statuses["correct"], doc="input responses the oracle accepts")
    too_long = property(lambda self: self.statuses["too_long"], doc="prompt + response beyond the context")

    @property
    def found(self) -> int:
        return self.trajectories - self.rules.get("none", 0)

    def mean_pass_at_k(self, which: str) -> list[float]:
        curves = [c for c in (self.with_curves if which == "with" else self.without_curves) if c]
        if not curves:
            return []
        width = min(len(c) for c in curves)
        return [sum(c[i] for c in curves) / len(curves) for i in range(width)]

    def add(self, result: QueryOutcome) -> None:
        """Count one finished query."""
        self.count(result)
        self.trajectories += len(result.records)
        for r in result.records:
            self.rules[r.rule] += 1
            if r.critical_position is not None and r.pass_at_k_with:
                self.with_curves.append(r.pass_at_k_with)
                self.without_curves.append(r.pass_at_k_without)
        self.scoring_rollouts += result.scoring_rollouts
        self.pass_at_k_rollouts += result.pass_at_k_rollouts

    def format(self) -> str:
        optional = [
            (self.skipped, "skipped (success rate below --min-prob)"),
            (self.correct_inputs, "input responses judged correct (skipped)"),
            (self.too_long, "too long for the model's context"),
        ]
        lines = [
            self.queries_line(
                [(self.analysed, "analysed"), (self.no_incorrect, "with no incorrect trajectory")], if_any=optional
            ),
            f"trajectories: {self.trajectories} incorrect trajectories scored ({self.mode}, K={self.rollouts_k})",
            (
                f"critical tokens: {self.found} found ({self.rules.get('first_zero_then_low', 0)} first_zero_then_low, "
                f"{self.rules.get('last_zero', 0)} last_zero), {self.rules.get('none', 0)} trajectories without one"
            ),
        ]
        with_k, without_k = self.mean_pass_at_k("with"), self.mean_pass_at_k("without")
        if with_k:
            ks = sorted({k for k in (1, 4, 16, 64, len(with_k)) if k <= len(with_k)})
            parts = []
            for k in ks:
                w = f"{with_k[k - 1]:.3f}"
                wo = f"{without_k[k - 1]:.3f}" if len(without_k) >= k else "n/a"
                parts.append(f"k={k} {w} / {wo}")
            lines.append(
                f"Pass@k keeping / replacing the critical token (mean of {len(self.with_curves)}): " + ", ".join(parts)
            )
        lines += [
            (
                f"samples: {self.rollouts} rollouts ({self.scoring_rollouts} scoring the tokens, "
                f"{self.pass_at_k_rollouts} for Pass@k, the rest sampling trajectories), "
                f"{self.rollout_tokens} tokens ({self.tokens_per_second:.0f} tokens/s)"
            ),
        ]
        return self.text(lines, stopped="--max-trajectories" if self.stopped_at_max_trajectories else None)


def run(config: CriticalConfig, engine=None, tasks: list[Any] | None = None) -> CriticalSummary:
    """Find critical tokens and append them to ``config.output_path``; see the module docstring.

    Bad options, inputs, models or output paths raise PTSError before any file
    is created. ``engine`` replaces the model given by ``config.model`` (with
    ``config.ray`` it is copied to every worker); ``tasks`` replaces
    ``config.dataset`` (not with ``input_path``). The lock, the pool, the store
    and the checks are :func:`pts.resumable.drive`'s.
    """
    config.validate()
    tasks, responses = config.tasks_and_responses(tasks, skip_missing=True)
    work = critical_work(
        config.settings(),
        config.trajectories(),
        *config.worker_groups(),
        parallel=config.parallel,
    )
    summary = CriticalSummary(config.output_path, config.mode, config.rollouts)
    done = config.drive(
        work,
        tasks,
        CriticalWriter(summary, config.settings(), config.max_trajectories, responses),
        settings=config.result_settings(),
        engine=engine,
    )
    summary.finish(done)
    return summary


class CriticalWriter(Writer):
    """Writes each analysed query's critical-token records, in dataset order, taking what is left of
    --max-trajectories (:class:`TakeQuota`). A unit is ``(task, response, limit)``: the input response (None:
    sample trajectories) and the most trajectories it may analyse (None: all)."""

    ordered = True

    def __init__(
        self,
        summary: CriticalSummary,
        settings: CriticalSettings,
        max_trajectories: int | None,
        responses: dict[str, Any] | None = None,
    ) -> None:
        self.summary = summary
        self.settings = settings
        self.responses = responses
        self.take = TakeQuota(max_trajectories, self._write, summary)
        self.store: RunStore | None = None

    def unit(self, task: Any) -> tuple[Any, Any, int | None]:
        return task, None if self.responses is None else self.responses[task.item_id], None

    def item_id(self, unit: tuple[Any, Any, int | None]) -> str:
        return unit[0].item_id

    def start(self, pool: Any) -> None:
        if self.settings.pass_at_k_samples and not pool.next_token_logprobs:
            log.warning(
                "engine %s gives no next-token distribution: Pass@k without the critical token is skipped",
                pool.model_id,
            )

    def commit(self, store: RunStore, unit: tuple[Any, Any, int | None], result: QueryOutcome) -> list[Any]:
        self.store = store
        return self.take(unit, result)

    def _write(self, _: Any, result: QueryOutcome) -> None:
        assert self.store is not None
        if result.status != "no_room":
            self.store.write_item(
                result.item_id,
                [r.to_dict() for r in result.records],
                {
                    "status": result.status,
                    "p_initial": result.p_initial,
                    "trajectories": len(result.records),
                    "rollouts": result.rollouts,
                },
            )
        self.summary.add(result)

    def stop(self) -> bool:
        return self.summary.stopped_at_max_trajectories

    def status(self) -> str:
        return f"trajectories {self.summary.trajectories}, critical {self.summary.found}"

    def counts(self) -> tuple[int, int]:
        return self.summary.rollouts, self.summary.rollout_tokens

    def carried(self, record: dict[str, Any]) -> dict[str, Any]:
        """The settings a critical-token record states (its ``search``), except those it writes resolved
        (``probe_samples``, ``verify_samples``, ``pass_at_k``: the numbers used, where the options may say
        "default")."""
        search = dict(record.get("search") or {})
        for resolved in ("probe_samples", "verify_samples", "pass_at_k"):
            search.pop(resolved, None)
        return search


class Quota:
    """What is left of --max-trajectories (None: no limit); sets the summary's flag once it is used up."""

    def __init__(self, limit: int | None, summary: CriticalSummary) -> None:
        self.room = limit
        self.summary = summary

    def allocate(self, n: int) -> int:
        """Up to ``n`` of the trajectories --max-trajectories still allows."""
        if self.room is None:
            return n
        granted = min(n, self.room)
        self.room -= granted
        if self.room == 0:
            self.summary.stopped_at_max_trajectories = True
        return granted


class TakeQuota:
    """Writes each query's result, in dataset order (under :class:`~pts.work.InOrder`), taking what is left
    of --max-trajectories.

    A query analyses all of its incorrect trajectories, since it cannot know
    what the queries before it will take. The query that would get only part
    of what it found is sent out again with that part as its limit: its
    trajectories share one estimator, so a score may rest on rollouts drawn
    for a trajectory that is then left out, and cutting its records would not
    be exact in general. Once the quota is used up nothing more is written:
    the queries in flight then, and the trajectories past the quota, were
    analysed for nothing. Whatever the number of workers and their timing, the
    records are those of one query at a time in dataset order.
    """

    def __init__(self, limit: int | None, write, summary: CriticalSummary) -> None:
        self.quota = Quota(limit, summary)
        self.write = write
        self.summary = summary

    def __call__(self, unit: tuple[Any, Any, int | None], result: QueryOutcome) -> list[Any]:
        if self.summary.stopped_at_max_trajectories:
            return []
        if result.incorrect and self.quota.room is not None:
            share = min(result.incorrect, self.quota.room)
            if len(result.records) != share:
                return [(unit[0], unit[1], share)]
            self.quota.allocate(share)
        self.write(unit, result)
        return []


CONFIG = CriticalConfig
"""The options of this command (the CLI makes its flags from it)."""
