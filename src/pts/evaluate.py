"""Accuracy and pass@k of a model on a dataset, judged by each task's oracle (``pts eval``).

    from pts.evaluate import EvalSettings, evaluate, make_engine
    engine = make_engine("smollm2-135m")   # or a LoRA adapter directory, a merged output...
    result = evaluate(engine, tasks, EvalSettings(num_samples=4))
    print(result.format())

Prompts are built exactly as ``pts run`` builds them (chat template, system
prompt), and every query's samples are drawn with a seed derived from
``settings.seed`` and the query, so two models evaluated with the same
settings see the same prompts and the same random streams: their results can
be compared query by query (:func:`compare`).

This module imports no torch at import time; loading a model does.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from pts import options
from pts.engines.base import GREEDY_BELOW, Engine, RolloutRequest, SamplingParams
from pts.errors import PTSError
from pts.records import stable_seed
from pts.search.searcher import build_prompt_ids, opens_think_block
from pts.stats import paired_mean_interval, pass_at_k, sign_test, wilson_interval
from pts.tasks.answers import extracted_answer
from pts.tasks.task import Task


@dataclass
class EvalSettings:
    """How responses are generated and scored.

    ``temperature`` 0 means greedy decoding (then ``num_samples`` must be 1).
    ``ks`` are the k of pass@k (default 1..num_samples). ``early_stop`` ends a
    response once its oracle says the answer can no longer change (the verdict
    is the same; fewer tokens are generated). ``confidence`` is the level of the
    reported Wilson interval.
    """

    num_samples: int = options.checked(1, "count")
    max_new_tokens: int = options.checked(512, "count")
    temperature: float = options.checked(0.6, "nonneg")
    top_p: float = options.checked(0.95, "unit")
    top_k: int = options.checked(20, "nonneg")
    min_p: float = options.checked(0.0, "unit")
    seed: int = 42
    system_prompt: str | None = None
    chat_template: bool = True
    early_stop: bool = True
    ks: tuple[int, ...] | None = None
    confidence: float = options.checked(0.95, "open_unit")

    @classmethod
    def of(cls, sampling: options.SamplingOptions, prompt: options.PromptOptions, **others: Any) -> EvalSettings:
        """The settings a command's sampling and prompt options give; ``others`` sets the rest (``num_samples``,
        ``ks``) or replaces one of them (a greedy ``temperature``)."""
        given = {f.name: getattr(group, f.name) for group in (sampling, prompt) for f in fields(group)}
        return cls(**{**given, **others})

    @property
    def greedy(self) -> bool:
        return self.temperature < GREEDY_BELOW

    def validate(self) -> None:
        """Raise PTSError on an option out of range."""
        options.check(self)
        if self.greedy and self.num_samples > 1:
            raise PTSError("greedy decoding gives one answer per query: use --num-samples 1 or a temperature > 0")
        for k in self.ks or ():
            if not 1 <= k <= self.num_samples:
                raise PTSError(f"--k {k} is out of range: pass@k needs 1 <= k <= --num-samples ({self.num_samples})")

    def sampling(self) -> SamplingParams:
        return SamplingParams(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k, min_p=self.min_p)

    def k_values(self) -> list[int]:
        return sorted(set(self.ks)) if self.ks else list(range(1, self.num_samples + 1))


@dataclass
class EvalSample:
    """One generated response and its verdict."""

    sample_index: int
    response: str
    response_ids: list[int]
    finish_reason: str
    correct: bool
    extracted_answer: str | None


@dataclass
class QueryResult:
    """All samples of one query."""

    task: Task
    prompt_ids: list[int]
    samples: list[EvalSample]

    @property
    def n(self) -> int:
        return len(self.samples)

    @property
    def c(self) -> int:
        return sum(s.correct for s in self.samples)


@dataclass
class EvalResult:
    """Per-query samples of one model on one task list, with the metrics ``pts eval`` reports."""

    model_id: str
    settings: EvalSettings
    queries: list[QueryResult] = field(default_factory=list)
    generated_tokens: int = 0
    seconds: float = 0.0

    @property
    def samples(self) -> int:
        return sum(q.n for q in self.queries)

    @property
    def correct(self) -> int:
        return sum(q.c for q in self.queries)

    @property
    def accuracy(self) -> float:
        """Mean over all samples of the oracle's verdict."""
        return self.correct / self.samples if self.samples else 0.0

    def interval(self) -> tuple[float, float]:
        """Wilson interval of the accuracy at ``settings.confidence`` (samples treated as independent)."""
        return wilson_interval(self.correct, self.samples, self.settings.confidence)

    def pass_at(self, queries: Sequence[QueryResult] | None = None) -> dict[int, float]:
        """pass@k for each k of the settings, averaged over queries."""
        queries = self.queries if queries is None else queries
        if not queries:
            return {}
        return {k: sum(pass_at_k(q.n, q.c, k) for q in queries) / len(queries) for k in self.settings.k_values()}

    def by_task_type(self) -> dict[str, dict[str, Any]]:
        """Accuracy and pass@k per task type, in order of first appearance."""
        groups: dict[str, list[QueryResult]] = {}
        for q in self.queries:
            groups.setdefault(q.task.task_type, []).append(q)
        out = {}
        for name, qs in groups.items():
            n, c = sum(q.n for q in qs), sum(q.c for q in qs)
            out[name] = {
                "queries": len(qs),
                "samples": n,
                "correct": c,
                "accuracy": c / n if n else 0.0,
                "pass_at_k": self.pass_at(qs),
            }
        return out

    def summary(self) -> dict[str, Any]:
        """The headline numbers as a JSON-ready dict."""
        low, high = self.interval()
        first = self.queries[0].task if self.queries else None
        return {
            "model_id": self.model_id,
            "dataset_id": first.dataset_id if first else None,
            "queries": len(self.queries),
            "samples": self.samples,
            "correct": self.correct,
            "accuracy": self.accuracy,
            "accuracy_ci": [low, high],
            "confidence": self.settings.confidence,
            "pass_at_k": {str(k): v for k, v in self.pass_at().items()},
            "by_task_type": {
                name: {**v, "pass_at_k": {str(k): p for k, p in v["pass_at_k"].items()}}
                for name, v in self.by_task_type().items()
            },
            "generated_tokens": self.generated_tokens,
            "seconds": self.seconds,
            "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self.settings).items()},
        }

    def rows(self) -> list[dict[str, Any]]:
        """One JSON-ready dict per sample: the response, its token ids and prompt ids, the extracted answer and the
        verdict (``pts contrast --input-path`` reads these rows as trajectories)."""
        out = []
        for q in self.queries:
            t = q.task
            for s in q.samples:
                out.append(
                    {
                        "model_id": self.model_id,
                        "dataset_id": t.dataset_id,
                        "dataset_item_id": t.item_id,
                        "task_type": t.task_type,
                        "query": t.query,
                        "answer": t.answer,
                        "sample_index": s.sample_index,
                        "response": s.response,
                        "response_ids": s.response_ids,
                        "prompt_ids": q.prompt_ids,
                        "finish_reason": s.finish_reason,
                        "extracted_answer": s.extracted_answer,
                        "correct": s.correct,
                    }
                )
        return out

    def format(self) -> str:
        """A few lines for the terminal."""
        low, high = self.interval()
        s = self.settings
        mode = "greedy" if s.greedy else f"sampled, temperature {s.temperature:g}"
        first = self.queries[0].task.dataset_id if self.queries else "-"
        lines = [
            f"model: {self.model_id}",
            f"dataset: {first} ({len(self.queries)} queries x {s.num_samples} samples, {mode})",
            (
                f"accuracy: {self.accuracy:.3f} ({self.correct}/{self.samples}), "
                f"{s.confidence:.0%} Wilson interval [{low:.3f}, {high:.3f}]"
            ),
            "pass@k: " + "  ".join(f"pass@{k} {v:.3f}" for k, v in _shown(self.pass_at()).items()),
        ]
        types = self.by_task_type()
        if len(types) > 1:
            lines.append("by task type:")
            width = max(len(name) for name in types)
            for name, v in types.items():
                top = max(v["pass_at_k"]) if v["pass_at_k"] else None
                extra = f"  pass@{top} {v['pass_at_k'][top]:.3f}" if top and top > 1 else ""
                lines.append(
                    f"  {name:<{width}}  {v['accuracy']:.3f} ({v['correct']}/{v['samples']}, "
                    f"{v['queries']} queries){extra}"
                )
        rate = self.generated_tokens / self.seconds if self.seconds else 0.0
        lines.append(f"generated: {self.generated_tokens} tokens in {self.seconds:.1f} s ({rate:.0f} tokens/s)")
        return "\n".join(lines)


def _shown(pass_at: dict[int, float]) -> dict[int, float]:
    """At most about ten pass@k values for the terminal (powers of two and the largest k); JSON keeps all."""
    if len(pass_at) <= 10:
        return pass_at
    top = max(pass_at)
    return {k: v for k, v in pass_at.items() if k & (k - 1) == 0 or k == top}


def query_seed(settings: EvalSettings, task: Task) -> int:
    """The sampling seed of one query: fixed by the settings' seed and the query, not by the model."""
    return stable_seed(settings.seed, "eval", task.dataset_id, task.item_id)


def call_size(batch_size: int | None, settings: EvalSettings) -> int:
    """Queries :func:`evaluate` sends to an engine of ``batch_size`` in one call: enough for two batches."""
    return max(1, math.ceil(2 * (64 if batch_size is None else batch_size) / settings.num_samples))


def evaluate(
    engine: Engine,
    tasks: Sequence[Task],
    settings: EvalSettings,
    *,
    progress: bool = False,
    queries_per_call: int | None = None,
) -> EvalResult:
    """Generate ``settings.num_samples`` responses per task with ``engine`` and judge each with the task's oracle.

    Returns an :class:`EvalResult` holding every sample (in task order). Queries
    are sent to the engine in groups of ``queries_per_call`` (default: enough
    for two batches of the engine's ``batch_size``, :func:`call_size`).
    """
    import time

    settings.validate()
    if not tasks:
        raise PTSError("the dataset has no rows to evaluate")
    size = queries_per_call or call_size(getattr(engine, "batch_size", 64), settings)
    result = EvalResult(engine.model_id, settings)
    start = time.perf_counter()
    bar = _progress(len(tasks), progress)
    try:
        for lo in range(0, len(tasks), size):
            queries, tokens = evaluate_batch(engine, tasks[lo : lo + size], settings)
            result.queries += queries
            result.generated_tokens += tokens
            bar.update(len(queries))
            bar.set_postfix_str(f"accuracy {result.accuracy:.3f}")
    finally:
        bar.close()
    result.seconds = time.perf_counter() - start
    return result


def evaluate_with(
    ray: options.RayOptions,
    work: Any,
    tasks: Sequence[Task],
    settings: EvalSettings,
    *,
    engine: Engine | None = None,
    progress: bool = False,
) -> tuple[EvalResult, list[Task], Engine | None]:
    """:func:`evaluate` on the pool :func:`pts.resumable.start_pool` picks for ``work``
    (:func:`pts.work.eval_work`): here, on ``engine`` or the model ``work`` loads, or with ``ray.ray`` on Ray
    workers (each loading the model itself or holding a copy of ``engine``), in the batches a local run sends to
    the engine in one call, so the result, merged in task order, is a local run's either way.

    Returns the :class:`EvalResult`, the tasks of batches skipped after their Ray workers kept dying (absent
    from the result; none here) and the engine used here (None on Ray). Bad settings or no tasks: PTSError
    before a model is loaded or a worker started."""
    import time

    from pts.progress import progress_bar
    from pts.resumable import start_pool

    settings.validate()
    if not tasks:
        raise PTSError("the dataset has no rows to evaluate")
    pool = start_pool(ray, work, engine)
    try:
        size = call_size(pool.batch_size or 64, settings)
        batches = [(lo, list(tasks[lo : lo + size])) for lo in range(0, len(tasks), size)]
        result = EvalResult(pool.model_id, settings)
        done: dict[int, list[QueryResult]] = {}
        start = time.perf_counter()
        bar = progress_bar(len(tasks), progress, desc="eval")

        def record(unit: tuple[int, list[Task]], part: tuple[list[tuple[Any, Any]], int]) -> None:
            lo, batch = unit
            done[lo] = [QueryResult(t, prompt_ids, samples) for t, (prompt_ids, samples) in zip(batch, part[0])]
            result.generated_tokens += part[1]
            bar.update(len(batch))

        try:
            failed = pool.map(batches, record)
        finally:
            bar.close()
    finally:
        pool.close()
    result.queries = [q for lo in sorted(done) for q in done[lo]]
    result.seconds = time.perf_counter() - start
    return result, [t for _, batch in failed for t in batch], (pool.engine if ray.ray is None else None)


def evaluate_batch(engine: Engine, tasks: Sequence[Task], settings: EvalSettings) -> tuple[list[QueryResult], int]:
    """One engine call: ``settings.num_samples`` responses for each of ``tasks``, judged; returns the queries'
    results and the tokens generated.

    Every query's samples come from its own seed (:func:`query_seed`), never from
    the batch it is in: on the fake engine and in float32 a query's samples are
    the same in any batch (``pts eval --ray`` relies on it). In bf16 a decode is
    not bit-identical across batch compositions, which is why ``--ray`` sends
    the batches a local run would.
    """
    tok = engine.tokenizer
    prompts, prefixes, requests = [], [], []
    for task in tasks:
        prompt_ids = build_prompt_ids(tok, task.prompt, settings.system_prompt, settings.chat_template, task.raw_prompt)
        prefix = "<think>" if opens_think_block(tok.decode(prompt_ids, skip_special_tokens=False)) else ""
        prompts.append(prompt_ids)
        prefixes.append(prefix)
        requests.append(
            RolloutRequest(
                tuple(prompt_ids),
                settings.num_samples,
                settings.max_new_tokens,
                stop=_stop_test(task, prefix) if settings.early_stop else None,
                seed=query_seed(settings, task),
            )
        )
    queries, tokens = [], 0
    for task, prompt_ids, prefix, rollouts in zip(
        tasks, prompts, prefixes, engine.sample(requests, settings.sampling())
    ):
        samples = []
        for j, r in enumerate(rollouts):
            text = prefix + r.text
            samples.append(
                EvalSample(
                    j, r.text, list(r.token_ids), r.finish_reason, bool(task.judge(text)), extracted_answer(task, text)
                )
            )
            tokens += len(r.token_ids)
        queries.append(QueryResult(task, list(prompt_ids), samples))
    return queries, tokens


def _stop_test(task: Task, prefix: str) -> Callable[[str], bool]:
    complete = task.oracle.answer_complete
    return lambda continuation: complete(prefix + continuation)


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="eval", unit="query", disable=not enabled, file=sys.stderr, dynamic_ncols=True)


@dataclass
class PairedComparison:
    """Model ``b`` against model ``a`` on the same queries, prompts and sampling seeds.

    ``diff`` is the mean over queries of (accuracy of b - accuracy of a), with a
    normal-approximation interval over queries (queries, not samples, are the
    independent units); ``better``/``worse``/``tied`` count queries where b's
    accuracy is higher/lower/equal; ``sign_p`` is the exact two-sided sign test
    on the queries that differ.
    """

    model_a: str
    model_b: str
    queries: int
    accuracy_a: float
    accuracy_b: float
    diff: float
    diff_ci: tuple[float, float]
    better: int
    worse: int
    tied: int
    sign_p: float

    def format(self) -> str:
        low, high = self.diff_ci
        return (
            f"{self.model_b} vs {self.model_a}: accuracy {self.accuracy_b:.3f} vs {self.accuracy_a:.3f}, "
            f"difference {self.diff:+.3f} (95% interval over {self.queries} queries [{low:+.3f}, {high:+.3f}]); "
            f"queries better/worse/tied {self.better}/{self.worse}/{self.tied}, sign test p={self.sign_p:.3g}"
        )


def compare(a: EvalResult, b: EvalResult) -> PairedComparison:
    """Paired comparison of two results on the same tasks (query by query)."""
    ids_a = [(q.task.dataset_id, q.task.item_id) for q in a.queries]
    ids_b = [(q.task.dataset_id, q.task.item_id) for q in b.queries]
    if ids_a != ids_b:
        raise PTSError("a paired comparison needs both models evaluated on the same queries")
    diffs = [qb.c / qb.n - qa.c / qa.n for qa, qb in zip(a.queries, b.queries)]
    n = len(diffs)
    mean, interval = paired_mean_interval(diffs, 0.95)
    better, worse = sum(d > 0 for d in diffs), sum(d < 0 for d in diffs)
    return PairedComparison(
        a.model_id,
        b.model_id,
        n,
        a.accuracy,
        b.accuracy,
        mean,
        interval,
        better,
        worse,
        n - better - worse,
        sign_test(better, worse),
    )


def make_engine(
    spec: str,
    *,
    engine: str = "hf",
    device: str = "auto",
    dtype: str = "auto",
    batch_size: int = 64,
    base_model: str | None = None,
):
    """A generation engine for ``spec``: what ``pts run`` builds, plus LoRA adapter directories (HF engine)."""
    from pts.adapters import is_adapter_dir, load_model_or_adapter

    if is_adapter_dir(spec):
        if engine != "hf":
            raise PTSError(
                f"adapter directories run on --engine hf; merge {spec} into a model directory to use --engine {engine}"
            )
        from pts.engines.hf import HFEngine

        loaded = load_model_or_adapter(spec, device, dtype, base_model=base_model)
        return HFEngine.from_loaded(loaded, batch_size=batch_size)
    from pts.engines import create_engine

    return create_engine(engine, spec, device=device, dtype=dtype, batch_size=batch_size)
