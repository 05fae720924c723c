"""``pts steer`` as a job: :class:`SteerConfig` and :func:`run`.

Dataset mode (the default) generates every query's samples without and with
steering on the same prompts and seeds, judges both with the task's oracle and
returns a :class:`~pts.steering.report.SteerReport`; with ``query`` set it
returns the unsteered and steered replies to that one prompt
(:class:`~pts.steering.report.QueryReport`). How vectors are read, matched
and added: :mod:`pts.steering`.

    from pts.jobs.steer import SteerConfig, run
    print(run(SteerConfig(steering_path="steering.jsonl", max_examples=10)).format())
"""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pts import options
from pts.engines.base import SamplingParams
from pts.errors import PTSError
from pts.options import option, override
from pts.records import stable_seed
from pts.steering.apply import (
    MATCH_MODES,
    MATCH_ON,
    Steering,
    added_norm,
    build_steering,
    describe,
)
from pts.steering.generate import GenerationRequest, generate
from pts.steering.hooks import SteeringHooks
from pts.steering.layers import parse_layers
from pts.steering.report import PairedSample, QueryReport, SteerReport, pair_record
from pts.steering.vectors import ControlVector, SteeringVector, load_steering_vectors
from pts.store import atomic_write, check_output_path

if TYPE_CHECKING:
    from pts.models import LoadedModel
    from pts.tasks.task import Task


HELP = "generate with steering vectors or a control vector; compare accuracy with and without"
"""The command's one line in ``pts --help``."""


@options.config
class SteerConfig(
    options.ModelOptions, options.DataOptions, options.PromptOptions, options.SamplingOptions, options.OutputOptions
):
    """Every option of ``pts steer``; the CLI flags are these field names with dashes."""

    steering_path: str | None = option(
        None, "JSONL of steering vectors in optillm's autothink shape (pts export --format steering)"
    )
    control_vector: str | None = option(
        None, "GGUF control vector (repeng / llama.cpp: arch controlvector, tensors direction.<layer>)"
    )
    strength: float | None = option(
        None,
        "scale of the added vector: steering vectors are normalised to unit "
        "length first (default 2.0, optillm's); a control vector's directions "
        "are used as stored (default 1.0, llama.cpp's)",
    )
    layer: str | None = option(
        None,
        "decoder layer (0-based, the output of model.layers[N]): for steering vectors, "
        "where to add them instead of their steering_layer; for a control vector, which "
        "of its layers to apply (e.g. 10,12,14)",
    )
    match: str = option(
        "continuous",
        "continuous: re-match the context after every token, the latest match stays "
        "active; once: match the prompt only and keep that vector (optillm autothink); "
        "local: add a vector only where the context matches its pivot context",
        choices=MATCH_MODES,
    )
    match_on: str = option(
        "auto",
        "match pivot contexts as token ids (pivot_context_ids of pts records) or "
        "re-tokenized pivot_context text (optillm); auto: ids where present",
        choices=MATCH_ON,
    )
    vector_field: str = option(
        "steering_vector", "field holding the vector: steering_vector, cluster_vector, or another field of the file"
    )
    scale_by_delta: bool = option(False, "multiply the strength by |prob_delta| clipped to [0.1, 2], as optillm does")
    query: str | None = option(
        None, "steer one prompt and print the unsteered and steered replies instead of evaluating a dataset"
    )
    max_examples: int | None = override(10, help="evaluate at most this many queries")
    num_samples: int = option(
        4, "completions per query and arm (each steered completion has an unsteered twin with its seed)", check="count"
    )
    max_new_tokens: int = override(512, help="token budget of each reply")
    batch_size: int = option(64, "rows decoded together (bounds memory)", check="count")
    output_path: str | None = override(
        None, help="JSONL of every completion pair (base and steered, with verdicts); none when omitted"
    )

    def validate(self) -> None:
        """Raise PTSError on options out of range, before anything is loaded."""
        options.check(self)
        if bool(self.steering_path) == bool(self.control_vector):
            raise PTSError("give exactly one of --steering-path FILE.jsonl and --control-vector FILE.gguf")
        layers = parse_layers(self.layer)
        if layers is not None and any(n < 0 for n in layers):
            raise PTSError(f"--layer must be non-negative layer numbers, got {self.layer!r}")
        if layers is not None and self.steering_path and len(layers) != 1:
            raise PTSError("--layer takes one layer for steering vectors")
        if self.query is not None and not self.query.strip():
            raise PTSError("--query is empty")

    def sampling(self) -> SamplingParams:
        return SamplingParams(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k, min_p=self.min_p)

    @property
    def source(self) -> str:
        return str(self.steering_path or self.control_vector)


def read_vectors(config: SteerConfig) -> list[SteeringVector] | ControlVector:
    """Load the file named by the config (no model needed): steering vectors or a control vector."""
    layers = parse_layers(config.layer)
    if config.steering_path:
        return load_steering_vectors(config.steering_path, config.vector_field, layers[0] if layers else None)
    return ControlVector.from_gguf(config.control_vector)  # type: ignore[arg-type]


def run(config: SteerConfig, loaded: LoadedModel | None = None) -> SteerReport | QueryReport:
    """Run ``pts steer``: :func:`steer_query` when ``config.query`` is set, else :func:`steer_dataset`."""
    if config.query is not None:
        description, pairs = steer_query(config, loaded)
        return QueryReport(description, config.query, pairs)
    return steer_dataset(config, loaded)


def steer_dataset(
    config: SteerConfig, loaded: LoadedModel | None = None, tasks: list[Task] | None = None
) -> SteerReport:
    """Accuracy on the dataset without and with steering: same prompts, same seeds, judged by each task's oracle.

    ``loaded`` replaces loading ``config.model``; ``tasks`` replaces the dataset.
    Writes one JSON line per (query, sample) pair to ``config.output_path`` when
    set (atomically). Bad options, files or vectors raise PTSError before any
    generation.
    """
    from pts.search.searcher import build_prompt_ids
    from pts.tasks.sources import load_tasks_from

    config.validate()
    vectors = read_vectors(config)
    if config.output_path:
        check_output_path(config.output_path)
    if tasks is None:
        tasks = load_tasks_from(config, config.seed)
    if not tasks:
        raise PTSError("the dataset has no rows to evaluate")
    loaded = _load(config, loaded)
    steering = _steering(config, vectors, loaded)
    tok = loaded.tokenizer
    requests: list[GenerationRequest] = []
    meta: list[tuple[int, int, int]] = []
    prefixes: list[str] = []
    for ti, task in enumerate(tasks):
        prompt = tuple(build_prompt_ids(tok, task.prompt, config.system_prompt, config.chat_template, task.raw_prompt))
        head = _judge_prefix(tok, prompt)
        prefixes.append(head)
        stop = functools.partial(_answer_complete, task.oracle, head) if config.early_stop else None
        for j in range(config.num_samples):
            seed = stable_seed(config.seed, task.dataset_id, task.item_id, j)
            meta.append((ti, j, seed))
            for steer in (False, True):
                requests.append(GenerationRequest(prompt, seed, steer, stop))
    start = time.perf_counter()
    bar = _progress(len(requests), config.progress)
    with SteeringHooks(loaded.model, steering.layers) as hooks:
        try:
            gens = generate(
                loaded.model,
                tok,
                requests,
                steering,
                max_new_tokens=config.max_new_tokens,
                params=config.sampling(),
                batch_size=config.batch_size,
                on_done=bar.update,
                hooks=hooks,
            )
        finally:
            bar.close()
        norms = {n: hooks.mean_norm(n) for n in steering.layers}
    pairs = []
    for k, (ti, j, seed) in enumerate(meta):
        base, steered = gens[2 * k], gens[2 * k + 1]
        task = tasks[ti]
        pairs.append(
            PairedSample(
                ti,
                j,
                seed,
                base,
                steered,
                task.judge(prefixes[ti] + base.text),
                task.judge(prefixes[ti] + steered.text),
            )
        )
    report = SteerReport(
        describe(steering, config.source),
        loaded.model_id,
        tasks[0].dataset_id,
        len(tasks),
        config.num_samples,
        config.max_new_tokens,
        config.temperature,
        config.seed,
        pairs,
        norms,
        {n: added_norm(steering, n) for n in steering.layers},
        config.output_path,
        time.perf_counter() - start,
    )
    if config.output_path:
        _write_pairs(config.output_path, pairs, tasks, steering)
    return report


def steer_query(config: SteerConfig, loaded: LoadedModel | None = None) -> tuple[str, list[PairedSample]]:
    """Generate ``config.num_samples`` replies to ``config.query`` without and with steering.

    Returns the steering description and the pairs (not judged: a free query has no oracle).
    """
    from pts.search.searcher import build_prompt_ids

    config.validate()
    if config.query is None:
        raise PTSError("no --query given")
    vectors = read_vectors(config)
    if config.output_path:
        check_output_path(config.output_path)
    loaded = _load(config, loaded)
    steering = _steering(config, vectors, loaded)
    prompt = tuple(build_prompt_ids(loaded.tokenizer, config.query, config.system_prompt, config.chat_template))
    requests, seeds = [], []
    for j in range(config.num_samples):
        seed = stable_seed(config.seed, "query", config.query, j)
        seeds.append(seed)
        requests += [GenerationRequest(prompt, seed, False), GenerationRequest(prompt, seed, True)]
    gens = generate(
        loaded.model,
        loaded.tokenizer,
        requests,
        steering,
        max_new_tokens=config.max_new_tokens,
        params=config.sampling(),
        batch_size=config.batch_size,
    )
    pairs = [PairedSample(0, j, seeds[j], gens[2 * j], gens[2 * j + 1]) for j in range(config.num_samples)]
    if config.output_path:
        _write_pairs(config.output_path, pairs, None, steering, query=config.query)
    return describe(steering, config.source), pairs


def _write_pairs(
    path: str, pairs: Sequence[PairedSample], tasks: Sequence[Task] | None, steering: Steering, query: str | None = None
) -> None:
    with atomic_write(path) as f:
        for p in pairs:
            task = tasks[p.task_index] if tasks is not None else None
            f.write(json.dumps(pair_record(p, steering, task, query), ensure_ascii=False) + "\n")


def _judge_prefix(tokenizer, prompt_ids: Sequence[int]) -> str:
    """What the oracle reads before the reply: ``<think>`` when the prompt itself opens the think block."""
    from pts.search.searcher import opens_think_block

    return "<think>" if opens_think_block(tokenizer.decode(list(prompt_ids), skip_special_tokens=False)) else ""


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="completions", unit="row", disable=not enabled, file=sys.stderr, dynamic_ncols=True)


def _load(config: SteerConfig, loaded: LoadedModel | None) -> LoadedModel:
    if loaded is not None:
        return loaded
    from pts.models import load_model

    return load_model(config.model, device=config.device, dtype=config.dtype)


CONFIG = SteerConfig
"""The options of this command (the CLI makes its flags from it)."""


def _answer_complete(oracle, head: str, text: str) -> bool:
    """The early-stop test of one task: its oracle calls the answer after ``head`` complete."""
    return oracle.answer_complete(head + text)


def _steering(config: SteerConfig, vectors, loaded):
    """The steering of ``vectors`` on the loaded model, as the command's steering options ask."""
    return build_steering(
        vectors,
        loaded.model,
        loaded.tokenizer,
        strength=config.strength,
        layer=config.layer,
        match=config.match,
        match_on=config.match_on,  # type: ignore[arg-type]
        scale_by_delta=config.scale_by_delta,
        model_id=loaded.model_id,
    )
