"""``pts eval``: accuracy and pass@k of models on a dataset, paired on the same prompts and seeds.

``run(EvalConfig(...)) -> EvalSummary``. Each model (``model`` and every
``compare``) is evaluated in turn, one in memory at a time, on the same queries,
prompts and per-query sampling seeds, so differences are paired query by query.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from typing import Any

from pts import options
from pts.engines import check_engine
from pts.options import option, override

HELP = (
    "accuracy and pass@k of a model (alias, Hub id, HF directory, .gguf, LoRA adapter directory) on a "
    "dataset, judged by each task's oracle; --compare for a paired comparison on the same prompts and seeds"
)
"""The command's one line in ``pts --help``."""


@options.config
class EvalConfig(
    options.ModelOptions,
    options.DataOptions,
    options.EngineOptions,
    options.PromptOptions,
    options.SamplingOptions,
    options.OutputOptions,
    options.RayOptions,
):
    """Every option of ``pts eval``."""

    model: str = override(
        options.DEFAULT_MODEL,
        help="model to evaluate: alias (smollm2-135m, gemma3-270m), Hub id, "
        "local HF directory (e.g. a merged output), .gguf file, or a PEFT/LoRA adapter directory "
        "(adapter_config.json; its base model is loaded and the adapter applied)",
    )
    compare: list[str] = option(
        default_factory=list,
        help="more models evaluated on the same queries, prompts and "
        "sampling seeds, each compared with --model (and with each other) query by query "
        "(paired difference, sign test)",
        metavar="MODEL",
    )
    base_model: str | None = option(
        None, "base model of adapter directories (default: the one recorded in the adapter)"
    )
    max_examples: int | None = override(None, help="evaluate at most this many queries (default: all)")
    num_samples: int | None = option(
        None, "responses per query; pass@k is reported for k = 1..N (default: 1 with --greedy, else 4)", check="count"
    )
    k: list[int] | None = option(
        None, "report pass@k only for these k (each at most --num-samples)", check="count", metavar="K"
    )
    greedy: bool = option(False, "greedy decoding (temperature 0, one sample per query)")
    engine: str = override("hf", help="generation engine")
    output_path: str | None = override(
        None,
        help="JSONL file of every response with its token ids, extracted "
        "answer and verdict (one row per sample and model; replaced atomically)",
    )
    summary_path: str | None = option(None, "JSON file of the summary (and comparisons)")

    def settings(self):
        """The generation and scoring settings of :func:`pts.evaluate.evaluate`."""
        from pts.evaluate import EvalSettings

        num_samples = self.num_samples if self.num_samples is not None else (1 if self.greedy else 4)
        return EvalSettings.of(
            options.group_of(options.SamplingOptions, self),
            options.group_of(options.PromptOptions, self),
            num_samples=num_samples,
            temperature=0.0 if self.greedy else self.temperature,
            ks=tuple(self.k) if self.k else None,
        )

    def validate(self) -> None:
        """Raise PTSError on any option out of range, before anything is loaded or written."""
        from pts.store import check_output_path

        options.check(self)
        check_engine(self.engine)
        self.settings().validate()
        for path in (self.output_path, self.summary_path):
            if path:
                check_output_path(path)
        from pts.distributed import check_ray_options

        check_ray_options(options.group_of(options.RayOptions, self))


@dataclass
class EvalSummary:
    """Each model's result and the paired comparisons, in the order they were evaluated."""

    results: list[Any] = field(default_factory=list)
    comparisons: list[Any] = field(default_factory=list)
    output_path: str | None = None
    summary_path: str | None = None
    failed: list[str] = field(default_factory=list)

    def format(self) -> str:
        parts = [] if len(self.results) > 1 else [self.results[0].format()]
        if self.failed:
            parts.append(
                f"skipped: {len(self.failed)} queries whose batch killed its Ray worker on every try, "
                f"left out of every model's result (items {', '.join(self.failed[:5])}"
                f"{', ...' if len(self.failed) > 5 else ''})"
            )
        if self.comparisons:
            parts.append(
                "paired comparison (same queries, prompts and seeds):\n"
                + "\n".join("  " + c.format() for c in self.comparisons)
            )
        if self.output_path:
            parts.append(f"responses: {self.output_path}")
        if self.summary_path:
            parts.append(f"summary: {self.summary_path}")
        return "\n".join(parts)


def run(
    config: EvalConfig,
    *,
    echo: Callable[[str], None] | None = None,
    engines: Mapping[str, Any] | None = None,
    tasks: list[Any] | None = None,
) -> EvalSummary:
    """Evaluate ``config.model`` and every ``config.compare`` model; ``echo`` gets each result as it finishes.

    ``engines`` maps model specs to engines used instead of loading them (with
    ``config.ray``, copied to every worker); ``tasks`` replaces ``config.dataset``.
    With ``config.ray`` each model's batches of queries are generated on Ray
    workers, one model at a time; queries whose batch kept killing its workers
    are left out of every model's result, so the comparisons stay paired.
    """
    from pts.evaluate import compare, evaluate_with
    from pts.store import atomic_write
    from pts.tasks.sources import load_tasks_from
    from pts.work import eval_work

    config.validate()
    settings = config.settings()
    if tasks is None:
        tasks = load_tasks_from(config, config.seed)
    engines = engines or {}
    specs = list(dict.fromkeys([config.model, *config.compare]))
    summary = EvalSummary(output_path=config.output_path, summary_path=config.summary_path)
    failed: set[str] = set()
    with _cluster(config):
        for spec in specs:
            work = eval_work(
                spec,
                options.group_of(options.ModelOptions, config),
                options.group_of(options.EngineOptions, config),
                settings,
                base_model=config.base_model,
            )
            ray = options.group_of(options.RayOptions, config)
            # One model in memory at a time: the engine used here is not kept.
            result, lost, _ = evaluate_with(
                ray, work, tasks, settings, engine=engines.get(spec), progress=config.progress
            )
            failed.update(t.item_id for t in lost)
            summary.results.append(result)
            if len(specs) > 1 and echo is not None:
                echo(summary.results[-1].format() + "\n")
    if failed:
        summary.failed = [t.item_id for t in tasks if t.item_id in failed]
        for r in summary.results:
            r.queries = [q for q in r.queries if q.task.item_id not in failed]
    # Each --compare model against --model, then the --compare models against each other.
    results = summary.results
    summary.comparisons = [compare(results[0], r) for r in results[1:]]
    summary.comparisons += [
        compare(results[i], results[j]) for i in range(1, len(results)) for j in range(i + 1, len(results))
    ]
    if config.output_path:
        with atomic_write(config.output_path) as f:
            for r in results:
                for row in r.rows():
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
    if config.summary_path:
        blob = {"results": [r.summary() for r in results], "comparisons": [asdict(c) for c in summary.comparisons]}
        with atomic_write(config.summary_path) as f:
            json.dump(blob, f, indent=2, ensure_ascii=False)
            f.write("\n")
    return summary


def _cluster(config: EvalConfig):
    """Connected to the Ray cluster for the whole run with ``--ray`` (one connection for every model)."""
    if config.ray is None:
        return nullcontext()
    from pts.distributed import session

    return session(config.ray)


CONFIG = EvalConfig
"""The options of this command (the CLI makes its flags from it)."""
