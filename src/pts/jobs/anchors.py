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

The measuring is :mod:`pts.search.anchors` (one query: :func:`~pts.search.anchors.query.analyse_query`, the
unit of :func:`pts.work.anchors_work`); this module loads the queries and hands them to
:func:`pts.resumable.drive` with an :class:`AnchorsWriter`, which does the rest as for ``pts run`` and
``pts critical``: ``parallel`` queries side by side (their rollouts share engine calls), here or on Ray workers
(``--ray``), the output checks, the lock, resuming and the progress bar.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from pts import options
from pts.errors import PTSError
from pts.options import group_of, option, override
from pts.resumable import DrivenSummary, ResponseJobOptions, Writer
from pts.search.anchors.query import Solutions, check_responses
from pts.search.anchors.settings import AnchorSettings
from pts.search.anchors.similarity import choose_filter, filter_name
from pts.store import RunStore
from pts.work import anchors_work

log = logging.getLogger(__name__)

HELP = "find thought anchors: the sentences of a response that decide its answer (Thought Anchors, Bogdan et al. 2025)"
"""The command's one line in ``pts --help``."""


@options.config
class AnchorsConfig(
    AnchorSettings,
    ResponseJobOptions,
):
    """Every option of ``pts anchors``; the CLI flags are these field names with dashes."""

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
    parallel: int = option(
        2, "queries analysed at once (per Ray worker with --ray); their rollouts share engine calls", check="count"
    )

    def validate(self) -> None:
        """Raise PTSError on any option out of range, before anything is loaded or written."""
        super().validate()
        self.check_job()
        if self.min_prob > self.max_prob:
            raise PTSError(f"--min-prob ({self.min_prob}) is above --max-prob ({self.max_prob})")

    def settings(self) -> AnchorSettings:
        return group_of(AnchorSettings, self)

    def solutions(self) -> Solutions:
        return Solutions(
            count=self.num_samples, analysed=self.num_solutions, min_prob=self.min_prob, max_prob=self.max_prob
        )

    def result_settings(self) -> dict[str, Any]:
        """The options that change what a run writes (the model, the dataset and the similarity filter
        aside): resuming with other values is refused."""
        keep = [f for f in AnchorSettings.__dataclass_fields__ if f != "similarity"] + [
            "num_samples",
            "num_solutions",
            "min_prob",
            "max_prob",
        ]
        return {**self.response_settings(), **{k: getattr(self, k) for k in keep}}


@dataclass
class AnchorsSummary(DrivenSummary):
    """Counts of one ``pts anchors`` run (this invocation only)."""

    similarity: str = ""
    traces: int = 0
    sentences: int = 0
    candidates: int = 0
    anchors: int = 0
    verify_rollouts: int = 0

    skipped = property(lambda self: self.statuses["skipped"], doc="p(success) outside --min-prob..--max-prob")
    no_sentences = property(lambda self: self.statuses["no_sentences"], doc="no sampled response had a sentence")
    analysed = property(lambda self: self.statuses.total() - self.skipped - self.no_sentences)

    def add(self, result: Any) -> None:
        """Count one finished query (a :class:`~pts.search.anchors.query.AnchorOutcome`)."""
        self.count(result)
        self.traces += result.traces
        self.sentences += len(result.records)
        self.candidates += sum(r.verified is not None or r.is_anchor for r in result.records)
        self.anchors += result.anchors
        self.verify_rollouts += result.verify_rollouts

    def format(self) -> str:
        per = self.rollouts / self.sentences if self.sentences else 0.0
        lines = [
            self.queries_line(
                [(self.analysed, "analysed"), (self.skipped, "skipped (p outside --min-prob..--max-prob)")],
                if_any=[(self.no_sentences, "without a sentence")],
            ),
            f"sentences: {self.sentences} in {self.traces} responses (similarity filter: {self.similarity})",
            f"anchors: {self.anchors} kept of {self.candidates} candidates",
            (
                f"samples: {self.rollouts} rollouts ({per:.1f} per sentence, {self.verify_rollouts} verifying), "
                f"{self.rollout_tokens} tokens ({self.tokens_per_second:.0f} tokens/s)"
            ),
        ]
        return self.text(lines)


def run(config: AnchorsConfig, engine: Any = None, tasks: list[Any] | None = None) -> AnchorsSummary:
    """Measure the sentences of each query's responses and append them to ``config.output_path``.

    Bad options, inputs (a response of one token, without a sentence, or longer than the model's context),
    models or output paths raise PTSError before any file is created. ``engine`` replaces the model given by
    ``config.model`` (with ``config.ray`` it is copied to every worker); ``tasks`` replaces ``config.dataset``
    (not with ``input_path``). The lock, the pool, resuming, the progress bar and the output checks are
    :func:`pts.resumable.drive`'s.
    """
    config.validate()
    tasks, responses = config.tasks_and_responses(tasks, skip_missing=False)
    similarity = choose_filter(config.similarity)  # once here, so that every worker measures with the same filter
    work = anchors_work(
        config.settings(),
        config.solutions(),
        *config.worker_groups(),
        similarity=similarity,
        parallel=config.parallel,
    )
    summary = AnchorsSummary(config.output_path, similarity=filter_name(similarity))
    done = config.drive(
        work,
        tasks,
        AnchorsWriter(summary, tasks, responses),
        settings={**config.result_settings(), "similarity_filter": filter_name(similarity)},
        engine=engine,
    )
    summary.finish(done)
    return summary


class AnchorsWriter(Writer):
    """Writes each analysed query's sentence records as it finishes. A unit is ``(task, response)``: the input
    response's token ids (None: sample responses). :meth:`start` checks every input response against the
    model (its tokenizer and context) before the output is opened."""

    def __init__(self, summary: AnchorsSummary, tasks: list[Any], responses: dict[str, Any] | None) -> None:
        self.summary = summary
        self.tasks = tasks
        self.responses = responses

    def unit(self, task: Any) -> tuple[Any, Any]:
        return task, None if self.responses is None else self.responses[task.item_id]

    def item_id(self, unit: tuple[Any, Any]) -> str:
        return unit[0].item_id

    def start(self, pool: Any) -> None:
        if self.responses is not None:
            self.responses = pool.ask(check_responses, self.tasks, self.responses)

    def commit(self, store: RunStore, unit: tuple[Any, Any], result: Any) -> None:
        store.write_item(
            result.item_id,
            [r.to_dict() for r in result.records],
            {
                "status": result.status,
                "p_initial": result.p_initial,
                "sentences": len(result.records),
                "anchors": result.anchors,
                # what the query cost (its sampled responses, the sentences' draws and verification), so that
                # a resumed or Ray run's totals can be read back from the progress file
                "rollouts": result.rollouts,
                "rollout_tokens": result.rollout_tokens,
                "verify_rollouts": result.verify_rollouts,
            },
        )
        self.summary.add(result)

    def status(self) -> str:
        return f"sentences {self.summary.sentences}, anchors {self.summary.anchors}"

    def counts(self) -> tuple[int, int]:
        return self.summary.rollouts, self.summary.rollout_tokens


CONFIG = AnchorsConfig
"""The options of this command (the CLI makes its flags from it)."""
