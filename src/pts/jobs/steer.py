"""``pts steer`` as a job: :class:`SteerConfig` and :func:`run`.

Dataset mode (the default) generates every query's samples without and with
steering on the same prompts and seeds, judges both with the task's oracle and
returns a :class:`~pts.steering.evaluate.SteerReport`; with ``query`` set it
returns the unsteered and steered replies to that one prompt
(:class:`~pts.steering.evaluate.QueryReport`). How vectors are read, matched
and added: :mod:`pts.steering`.

    from pts.jobs.steer import SteerConfig, run
    print(run(SteerConfig(steering_path="steering.jsonl", max_examples=10)).format())
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pts import options
from pts.engines.base import SamplingParams
from pts.errors import PTSError
from pts.records import stable_seed
from pts.runner import DEFAULT_MODEL
from pts.steering.apply import (
    MATCH_MODES,
    MATCH_ON,
    Steering,
    added_norm,
    build_steering,
    describe,
)
from pts.steering.evaluate import PairedSample, QueryReport, SteerReport, pair_record
from pts.steering.generate import GenerationRequest, generate
from pts.steering.hooks import SteeringHooks
from pts.steering.layers import parse_layers
from pts.steering.vectors import ControlVector, SteeringVector, load_steering_vectors
from pts.store import atomic_write, check_output_path
from pts.tasks.sources import DEFAULT_DATASET

if TYPE_CHECKING:
    from pts.models import LoadedModel
    from pts.tasks.task import Task


@dataclass
class SteerConfig:
    """Every option of ``pts steer``; the CLI flags are these field names with dashes."""

    steering_path: str | None = None
    control_vector: str | None = None
    strength: float | None = None
    layer: str | None = None
    match: str = "continuous"
    match_on: str = "auto"
    vector_field: str = "steering_vector"
    scale_by_delta: bool = False
    query: str | None = None
    model: str = DEFAULT_MODEL
    dataset: str = DEFAULT_DATASET
    config: str | None = None
    split: str = "train"
    query_key: str | None = None
    answer_key: str | None = None
    oracle: str | None = None
    sample_size: int | None = None
    max_examples: int | None = 10
    num_samples: int = 4
    max_new_tokens: int = 512
    system_prompt: str | None = None
    chat_template: bool = True
    temperature: float = 0.6
    top_p: float = 0.95
    top_k: int = 20
    min_p: float = 0.0
    seed: int = 42
    early_stop: bool = True
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = 64
    output_path: str | None = None
    progress: bool = True

    def validate(self) -> None:
        """Raise PTSError on options out of range, before anything is loaded."""
        options.finite(self)
        if bool(self.steering_path) == bool(self.control_vector):
            raise PTSError("give exactly one of --steering-path FILE.jsonl and --control-vector FILE.gguf")
        if self.strength is not None and not math.isfinite(self.strength):
            raise PTSError(f"--strength must be a finite number, got {self.strength}")
        if self.match not in MATCH_MODES:
            raise PTSError(f"--match must be one of {', '.join(MATCH_MODES)}, got {self.match!r}")
        if self.match_on not in MATCH_ON:
            raise PTSError(f"--match-on must be one of {', '.join(MATCH_ON)}, got {self.match_on!r}")
        layers = parse_layers(self.layer)
        if layers is not None and any(n < 0 for n in layers):
            raise PTSError(f"--layer must be non-negative layer numbers, got {self.layer!r}")
        if layers is not None and self.steering_path and len(layers) != 1:
            raise PTSError("--layer takes one layer for steering vectors")
        options.at_least_one(self, "num_samples", "max_new_tokens", "batch_size", "sample_size", "max_examples")
        options.sampling(self)
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
    """Run ``pts steer``: :func:`steer_query` when ``config.query`` is set, else :func:`evaluate`."""
    if config.query is not None:
        description, pairs = steer_query(config, loaded)
        return QueryReport(description, config.query, pairs)
    return evaluate(config, loaded)


def evaluate(config: SteerConfig, loaded: LoadedModel | None = None, tasks: list[Task] | None = None) -> SteerReport:
    """Accuracy on the dataset without and with steering: same prompts, same seeds, judged by each task's oracle.

    ``loaded`` replaces loading ``config.model``; ``tasks`` replaces the dataset.
    Writes one JSON line per (query, sample) pair to ``config.output_path`` when
    set (atomically). Bad options, files or vectors raise PTSError before any
    generation.
    """
    from pts.search.searcher import build_prompt_ids
    from pts.tasks.sources import load_tasks

    config.validate()
    vectors = read_vectors(config)
    if config.output_path:
        check_output_path(config.output_path)
    if tasks is None:
        tasks = load_tasks(config.dataset, config=config.config, split=config.split, query_key=config.query_key,
                           answer_key=config.answer_key, sample_size=config.sample_size,
                           max_examples=config.max_examples, seed=config.seed, oracle=config.oracle)
    if not tasks:
        raise PTSError("the dataset has no rows to evaluate")
    loaded = _load(config, loaded)
    steering = build_steering(vectors, loaded.model, loaded.tokenizer, strength=config.strength, layer=config.layer,
                              match=config.match, match_on=config.match_on,  # type: ignore[arg-type]
                              scale_by_delta=config.scale_by_delta, model_id=loaded.model_id)
    tok = loaded.tokenizer
    requests: list[GenerationRequest] = []
    meta: list[tuple[int, int, int]] = []
    prefixes: list[str] = []
    for ti, task in enumerate(tasks):
        prompt = tuple(build_prompt_ids(tok, task.prompt, config.system_prompt, config.chat_template, task.raw_prompt))
        head = _judge_prefix(tok, prompt)
        prefixes.append(head)
        stop = None
        if config.early_stop:
            stop = (lambda text, t=task, h=head: t.oracle.answer_complete(h + text))
        for j in range(config.num_samples):
            seed = stable_seed(config.seed, task.dataset_id, task.item_id, j)
            meta.append((ti, j, seed))
            for steer in (False, True):
                requests.append(GenerationRequest(prompt, seed, steer, stop))
    start = time.perf_counter()
    bar = _progress(len(requests), config.progress)
    with SteeringHooks(loaded.model, steering.layers) as hooks:
        try:
            gens = generate(loaded.model, tok, requests, steering, max_new_tokens=config.max_new_tokens,
                            params=config.sampling(), batch_size=config.batch_size, on_done=bar.update, hooks=hooks)
        finally:
            bar.close()
        norms = {n: hooks.mean_norm(n) for n in steering.layers}
    pairs = []
    for k, (ti, j, seed) in enumerate(meta):
        base, steered = gens[2 * k], gens[2 * k + 1]
        task = tasks[ti]
        pairs.append(PairedSample(ti, j, seed, base, steered, task.judge(prefixes[ti] + base.text),
                                  task.judge(prefixes[ti] + steered.text)))
    report = SteerReport(describe(steering, config.source), loaded.model_id, tasks[0].dataset_id, len(tasks),
                         config.num_samples, config.max_new_tokens, config.temperature, config.seed, pairs, norms,
                         {n: added_norm(steering, n) for n in steering.layers}, config.output_path,
                         time.perf_counter() - start)
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
    steering = build_steering(vectors, loaded.model, loaded.tokenizer, strength=config.strength, layer=config.layer,
                              match=config.match, match_on=config.match_on,  # type: ignore[arg-type]
                              scale_by_delta=config.scale_by_delta, model_id=loaded.model_id)
    prompt = tuple(build_prompt_ids(loaded.tokenizer, config.query, config.system_prompt, config.chat_template))
    requests, seeds = [], []
    for j in range(config.num_samples):
        seed = stable_seed(config.seed, "query", config.query, j)
        seeds.append(seed)
        requests += [GenerationRequest(prompt, seed, False), GenerationRequest(prompt, seed, True)]
    gens = generate(loaded.model, loaded.tokenizer, requests, steering, max_new_tokens=config.max_new_tokens,
                    params=config.sampling(), batch_size=config.batch_size)
    pairs = [PairedSample(0, j, seeds[j], gens[2 * j], gens[2 * j + 1]) for j in range(config.num_samples)]
    if config.output_path:
        _write_pairs(config.output_path, pairs, None, steering, query=config.query)
    return describe(steering, config.source), pairs


def _write_pairs(path: str, pairs: Sequence[PairedSample], tasks: Sequence[Task] | None, steering: Steering,
                 query: str | None = None) -> None:
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

    return tqdm(total=total, desc="completions", unit="row", disable=not enabled, file=sys.stderr,
                dynamic_ncols=True)


def _load(config: SteerConfig, loaded: LoadedModel | None) -> LoadedModel:
    if loaded is not None:
        return loaded
    from pts.models import load_model

    return load_model(config.model, device=config.device, dtype=config.dtype)
