"""``pts critical``: critical tokens of incorrect trajectories by rollout sampling (Lin et al., arXiv 2411.19943).

Trajectories come from a dataset (pts samples ``--num-trajectories`` responses
per query and keeps the ones the oracle rejects) or from ``--input-path``, a
JSONL file of ``{query, answer, response}`` rows. Each is scored token by token
(``--mode scan``, the paper's K rollouts at every position, or ``--mode
search``, the same token from far fewer rollouts) and its critical token, with
Pass@k with and without it, is appended to ``--output-path`` as a
:class:`pts.records.CriticalToken`. From Python::

    from pts.commands.critical import CriticalConfig, run_critical
    summary = run_critical(CriticalConfig(dataset="rg:chain_sum", max_examples=5, rollouts=16))
    print(summary.format())
"""

from __future__ import annotations

import argparse
import logging
import time
from collections import Counter
from collections.abc import Generator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from pts import options
from pts.errors import PTSError
from pts.jobs.run import DEFAULT_MODEL
from pts.tasks.sources import ANSWER_KEYS, DEFAULT_DATASET

log = logging.getLogger(__name__)

NAME = "critical"
HELP = "find critical tokens in incorrect trajectories by rollout sampling (cDPO, Lin et al. 2024)"
ORDER = 20


@dataclass
class CriticalConfig:
    """Every option of ``pts critical``; the CLI flags are these field names with dashes."""

    model: str = DEFAULT_MODEL
    dataset: str = DEFAULT_DATASET
    input_path: str | None = None
    response_key: str = "response"
    config: str | None = None
    split: str = "train"
    query_key: str | None = None
    answer_key: str | None = None
    oracle: str | None = None
    sample_size: int | None = None
    max_examples: int | None = 100
    num_trajectories: int = 8
    max_trajectories: int | None = None
    min_prob: float = 0.0
    rollouts: int = 64
    mode: str = "search"
    low_threshold: float = 0.05
    probe_samples: int | None = None
    verify_stride: int = 1
    verify_full: int = 2
    pass_at_k: int | None = None
    max_new_tokens: int = 512
    system_prompt: str | None = None
    chat_template: bool = True
    early_stop: bool = True
    temperature: float = 0.6
    top_p: float = 0.95
    top_k: int = 20
    min_p: float = 0.0
    seed: int = 42
    output_path: str = "critical_tokens.jsonl"
    engine: str = "hf"
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = 64
    parallel: int = 4
    resume: bool = True
    overwrite: bool = False
    progress: bool = True

    def validate(self) -> None:
        """Raise PTSError on any option out of range, before anything is loaded or written."""
        options.finite(self)
        options.unit_interval(self, "min_prob")
        options.sampling(self)
        if not 0.0 <= self.low_threshold < 1.0:
            raise PTSError(f"--low-threshold must be at least 0 and below 1, got {self.low_threshold}")
        if self.mode not in ("scan", "search"):
            raise PTSError(f"--mode must be 'scan' or 'search', got {self.mode!r}")
        options.at_least_one(self, "rollouts", "num_trajectories", "max_new_tokens", "batch_size", "parallel",
                             "verify_stride", "sample_size", "max_examples", "max_trajectories", "probe_samples")
        if self.pass_at_k is not None and self.pass_at_k < 0:
            raise PTSError(f"--pass-at-k must be >= 0 (0 turns it off), got {self.pass_at_k}")
        if self.verify_full < 0:
            raise PTSError(f"--verify-full must be >= 0, got {self.verify_full}")
        if self.input_path is not None:
            path = Path(self.input_path).expanduser()
            if not path.is_file():
                raise PTSError(f"input file not found: {self.input_path}")
            if path.suffix.lower() != ".jsonl":
                raise PTSError(f"--input-path must be a .jsonl file of {{query, answer, response}} rows, "
                               f"got {self.input_path}")

    def settings(self):
        from pts.search.critical import CriticalSettings

        # The search settings are the fields of the same names, as RunConfig.search_settings() does.
        return CriticalSettings(**{f.name: getattr(self, f.name) for f in fields(CriticalSettings)})

    def sampling(self):
        from pts.engines.base import SamplingParams

        return SamplingParams(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k, min_p=self.min_p)

    def result_settings(self, model_id: str, dataset_id: str) -> dict[str, Any]:
        """The options that change what a run writes: resuming with other values is refused."""
        keep = ("input_path", "response_key", "num_trajectories", "min_prob", "rollouts", "mode", "low_threshold",
                "probe_samples", "verify_stride", "verify_full", "pass_at_k", "max_new_tokens", "system_prompt", "chat_template",
                "early_stop", "temperature", "top_p", "top_k", "min_p", "seed")
        return {"model_id": model_id, "dataset_id": dataset_id, **{k: getattr(self, k) for k in keep}}


HELP_TEXT = {
    "input_path": "JSONL of {query, answer, response} rows to analyse instead of sampling from --dataset "
                  "(an optional response_ids list is used as the exact tokens)",
    "response_key": "field of --input-path rows holding the incorrect response",
    "num_trajectories": "responses sampled per query; the ones the oracle rejects are analysed",
    "max_trajectories": "stop once this many incorrect trajectories have been analysed",
    "min_prob": "analyse only queries whose sampled responses are correct at least this often "
                "(0.1 with 8 samples: at least one correct, like the paper's DPO pairs)",
    "rollouts": "K: rollouts behind each token's score (the paper uses 64)",
    "mode": "scan (the paper: K rollouts at every token) or search (bisection with early stopping: "
            "the same token as the scan when scores fall monotonically, far fewer rollouts)",
    "low_threshold": "the most a token after the critical one may score (the paper: 3 of 64)",
    "probe_samples": "first-stage rollouts of every score; a success there settles 'not zero' "
                     "without the rest (default: rollouts/8)",
    "verify_stride": "search: probe every N-th token after the candidate to check later scores stay low",
    "verify_full": "search: score this many tokens right after the candidate with all K rollouts "
                   "(where a falling curve's later scores are highest)",
    "pass_at_k": "alternative tokens sampled at the critical position (one rollout each) and fresh rollouts "
                 "keeping it, for Pass@k with vs without (default: --rollouts; 0 turns it off)",
    "max_new_tokens": "token budget of a whole response (prefix + rollout)",
    "output_path": "JSONL file the critical-token records are appended to",
    "parallel": "queries analysed at once; their rollouts share engine calls",
    "max_examples": "analyse at most this many queries (or --input-path rows)",
    "sample_size": "randomly sample this many rows from the dataset (seeded)",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from pts.cli import RUN_HELP, add_dataclass_options

    add_dataclass_options(parser, CriticalConfig, {**RUN_HELP, **HELP_TEXT})


def main(args: argparse.Namespace) -> int:
    from pts.cli import config_from

    summary = run_critical(config_from(args, CriticalConfig))
    print(summary.format())
    return 0


@dataclass
class _JobResult:
    item_id: str
    status: str  # analysed, no_incorrect, skipped (p below --min-prob), correct (input response), no_room
    p_initial: float | None = None
    records: list[Any] = field(default_factory=list)
    rollouts: int = 0
    rollout_tokens: int = 0
    scoring_rollouts: int = 0
    pass_at_k_rollouts: int = 0


@dataclass
class CriticalSummary:
    """Counts of one ``pts critical`` run (this invocation only)."""

    output_path: str
    mode: str
    rollouts_k: int
    analysed: int = 0
    no_incorrect: int = 0
    skipped: int = 0
    correct_inputs: int = 0
    resumed: int = 0
    trajectories: int = 0
    rules: Counter = field(default_factory=Counter)
    rollouts: int = 0
    scoring_rollouts: int = 0
    pass_at_k_rollouts: int = 0
    rollout_tokens: int = 0
    seconds: float = 0.0
    stopped_at_max_trajectories: bool = False
    with_curves: list[list[float]] = field(default_factory=list, repr=False)
    without_curves: list[list[float]] = field(default_factory=list, repr=False)

    @property
    def found(self) -> int:
        return self.trajectories - self.rules.get("none", 0)

    def mean_pass_at_k(self, which: str) -> list[float]:
        curves = [c for c in (self.with_curves if which == "with" else self.without_curves) if c]
        if not curves:
            return []
        width = min(len(c) for c in curves)
        return [sum(c[i] for c in curves) / len(curves) for i in range(width)]

    def format(self) -> str:
        rate = self.rollout_tokens / self.seconds if self.seconds else 0.0
        queries = f"queries: {self.analysed} analysed, {self.no_incorrect} with no incorrect trajectory"
        if self.skipped:
            queries += f", {self.skipped} skipped (success rate below --min-prob)"
        if self.correct_inputs:
            queries += f", {self.correct_inputs} input responses judged correct (skipped)"
        lines = [
            queries + f", {self.resumed} already done",
            f"trajectories: {self.trajectories} incorrect trajectories scored ({self.mode}, K={self.rollouts_k})",
            (f"critical tokens: {self.found} found ({self.rules.get('first_zero_then_low', 0)} first_zero_then_low, "
             f"{self.rules.get('last_zero', 0)} last_zero), {self.rules.get('none', 0)} trajectories without one"),
        ]
        with_k, without_k = self.mean_pass_at_k("with"), self.mean_pass_at_k("without")
        if with_k:
            ks = sorted({k for k in (1, 4, 16, 64, len(with_k)) if k <= len(with_k)})
            parts = []
            for k in ks:
                w = f"{with_k[k - 1]:.3f}"
                wo = f"{without_k[k - 1]:.3f}" if len(without_k) >= k else "n/a"
                parts.append(f"k={k} {w} / {wo}")
            lines.append(f"Pass@k keeping / replacing the critical token (mean of {len(self.with_curves)}): "
                         + ", ".join(parts))
        lines += [
            (f"samples: {self.rollouts} rollouts ({self.scoring_rollouts} scoring the tokens, "
             f"{self.pass_at_k_rollouts} for Pass@k, the rest sampling trajectories), "
             f"{self.rollout_tokens} tokens ({rate:.0f} tokens/s)"),
            f"time: {self.seconds:.1f} s",
            f"output: {self.output_path}",
        ]
        if self.stopped_at_max_trajectories:
            lines.insert(2, "stopped early: --max-trajectories reached")
        return "\n".join(lines)


def _read_input_rows(path: str) -> list[dict[str, Any]]:
    from pts.store import read_jsonl

    rows = read_jsonl(Path(path).expanduser(), encoding="utf-8-sig")
    if not rows:
        raise PTSError(f"{path} is empty")
    return rows


def _load_input(config: CriticalConfig) -> tuple[list[Any], dict[str, Any]]:
    """Tasks of ``--input-path`` and each one's response (text, or the row's response_ids), by item id."""
    from pts.tasks.sources import load_tasks

    rows = _read_input_rows(config.input_path)  # type: ignore[arg-type]
    columns = list(dict.fromkeys(k for r in rows[:100] for k in r))
    if config.response_key not in columns:
        raise PTSError(f"no {config.response_key!r} field in {config.input_path}; available columns: "
                       f"{', '.join(columns)} (set --response-key)")
    answer_key = config.answer_key
    if answer_key is None:
        answer_key = next((k for k in ANSWER_KEYS if k in columns and k != config.response_key), None)
        if answer_key is None:
            raise PTSError(f"no answer field in {config.input_path} (looked for "
                           f"{', '.join(k for k in ANSWER_KEYS if k != config.response_key)}); name one with --answer-key")
    tasks = load_tasks(config.input_path, query_key=config.query_key, answer_key=answer_key,  # type: ignore[arg-type]
                       sample_size=config.sample_size, max_examples=config.max_examples, seed=config.seed,
                       oracle=config.oracle)
    responses: dict[str, Any] = {}
    for task in tasks:
        row = rows[task.metadata["source_index"]]
        ids = row.get("response_ids")
        if isinstance(ids, list) and ids and all(isinstance(i, int) for i in ids):
            responses[task.item_id] = [int(i) for i in ids]
        elif isinstance(row.get(config.response_key), str) and row[config.response_key].strip():
            responses[task.item_id] = row[config.response_key]
    missing = [t for t in tasks if t.item_id not in responses]
    if missing:
        log.warning("skipped %d row(s) of %s without a %r value", len(missing), config.input_path,
                    config.response_key)
    tasks = [t for t in tasks if t.item_id in responses]
    if not tasks:
        raise PTSError(f"no row of {config.input_path} has a {config.response_key!r} value")
    return tasks, responses


def _response_ids(tokenizer: Any, engine: Any, response: Any) -> list[int]:
    """Token ids of an input response: tokenized after the prompt and closed with end-of-sequence."""
    if isinstance(response, list):
        return response
    ids = list(tokenizer(response, add_special_tokens=False)["input_ids"])
    eos = tokenizer.eos_token_id if tokenizer.eos_token_id in engine.eos_token_ids else min(engine.eos_token_ids)
    if not ids or ids[-1] not in engine.eos_token_ids:
        ids.append(eos)
    return ids


def run_critical(config: CriticalConfig, engine=None, tasks: list[Any] | None = None) -> CriticalSummary:
    """Find critical tokens and append them to ``config.output_path``; see the module docstring.

    Bad options, inputs, models or output paths raise PTSError before any file
    is created. ``engine`` replaces the model given by ``config.model``;
    ``tasks`` replaces ``config.dataset`` (not with ``--input-path``).
    """
    from pts.records import CriticalToken, FirstToken, stable_seed
    from pts.jobs.run import RunConfig, _progress, make_engine
    from pts.search.critical import (
        CriticalTokenFinder,
        StagedEstimator,
        fulfil,
        incorrect_trajectories,
        next_token_source,
    )
    from pts.search.searcher import build_prompt_ids, opens_think_block
    from pts.store import OutputLock, RunStore, check_free_space, check_writable
    from pts.tasks.sources import load_tasks

    config.validate()
    settings = config.settings()
    responses: dict[str, Any] | None = None
    if config.input_path is not None:
        tasks, responses = _load_input(config)
    elif tasks is None:
        tasks = load_tasks(config.dataset, config=config.config, split=config.split, query_key=config.query_key,
                           answer_key=config.answer_key, sample_size=config.sample_size,
                           max_examples=config.max_examples, seed=config.seed, oracle=config.oracle)
    if not tasks:
        raise PTSError("the dataset has no rows to analyse")
    check_writable(config.output_path)
    check_free_space(config.output_path)
    lock = OutputLock(config.output_path)  # before the model loads: a second writer is refused at once
    try:
        engine = engine or make_engine(RunConfig(model=config.model, engine=config.engine, device=config.device,
                                                 dtype=config.dtype, batch_size=config.batch_size))
        store = RunStore(config.output_path, config.result_settings(engine.model_id, tasks[0].dataset_id),
                         resume=config.resume, overwrite=config.overwrite, lock=lock)
    except BaseException:
        lock.release()
        raise
    if settings.pass_at_k_samples and next_token_source(engine) is None:
        log.warning("engine %s gives no next-token distribution: Pass@k without the critical token is skipped",
                    type(engine).__name__)
    params = config.sampling()
    tok = engine.tokenizer
    summary = CriticalSummary(config.output_path, config.mode, config.rollouts)
    room = [config.max_trajectories]  # trajectories still allowed; None = no limit
    search_info = {"rollouts": settings.rollouts, "probe_samples": settings.probe,
                   "verify_stride": settings.verify_stride, "verify_full": settings.verify_full,
                   "low_threshold": settings.low_threshold,
                   "pass_at_k": settings.pass_at_k_samples, "max_new_tokens": config.max_new_tokens,
                   "temperature": params.temperature, "top_p": params.top_p, "top_k": params.top_k,
                   "min_p": params.min_p, "early_stop": config.early_stop, "seed": config.seed}

    def allocate(n: int) -> int:
        if room[0] is None:
            return n
        granted = min(n, room[0])
        room[0] -= granted
        if room[0] == 0:
            summary.stopped_at_max_trajectories = True
        return granted

    def job(task) -> Generator[list, None, _JobResult]:
        prompt_ids = build_prompt_ids(tok, task.prompt, config.system_prompt, config.chat_template, task.raw_prompt)
        judge_prefix = "<think>" if opens_think_block(tok.decode(prompt_ids, skip_special_tokens=False)) else ""
        seed = stable_seed(config.seed, task.dataset_id, task.item_id)
        out = _JobResult(task.item_id, "analysed")
        budget = config.max_new_tokens
        if responses is None:
            sampler = StagedEstimator(engine, task, prompt_ids, params, num_samples=config.num_trajectories,
                                      max_new_tokens=budget, seed=stable_seed(seed, "trajectories"),
                                      judge_prefix=judge_prefix, early_stop=config.early_stop, keep_rollouts=True)
            yield [(sampler, {(): config.num_trajectories})]
            out.rollouts, out.rollout_tokens = sampler.rollouts, sampler.rollout_tokens
            out.p_initial = sampler.cache[()].p
            if out.p_initial < config.min_prob - 1e-9:
                out.status = "skipped"
                return out
            trajectories = incorrect_trajectories(task, sampler.drawn.get((), []), judge_prefix,
                                                  decode=lambda ids: tok.decode(list(ids), skip_special_tokens=True))
            if not trajectories:
                out.status = "no_incorrect"
                return out
        else:
            ids = _response_ids(tok, engine, responses[task.item_id])
            if task.judge(judge_prefix + tok.decode(ids, skip_special_tokens=True)):
                out.status = "correct"
                return out
            trajectories = [tuple(ids)]
            budget = max(budget, len(ids))
        granted = allocate(len(trajectories))
        if granted == 0:
            out.status = "no_room"
            return out
        trajectories = trajectories[:granted]
        finder = CriticalTokenFinder(engine, task, prompt_ids, params, settings, max_new_tokens=budget,
                                     seed=seed, judge_prefix=judge_prefix, early_stop=config.early_stop)
        results = yield from finder.steps(trajectories)
        out.scoring_rollouts = finder.scores.rollouts
        out.pass_at_k_rollouts = sum(e.rollouts for e in finder.pass_at_k_estimators)
        out.rollouts += out.scoring_rollouts + out.pass_at_k_rollouts
        out.rollout_tokens += sum(e.rollout_tokens for e in (finder.scores, *finder.pass_at_k_estimators))
        for index, r in enumerate(results):
            pos, ids = r.position, list(r.response_ids)
            alts = [FirstToken(t, tok.decode([t], skip_special_tokens=False), c, k) for t, (c, k) in r.alternatives.items()]
            out.records.append(CriticalToken(
                model_id=engine.model_id, query=task.query, answer=task.answer,
                response=tok.decode(ids, skip_special_tokens=True), response_ids=ids,
                prompt_ids=list(prompt_ids), prompt_length=len(prompt_ids), critical_position=pos,
                critical_token=None if pos is None else tok.decode([ids[pos]], skip_special_tokens=False),
                critical_token_id=r.token_id,
                critical_context="" if pos is None else tok.decode(list(prompt_ids) + ids[:pos],
                                                                   skip_special_tokens=False),
                rule=r.rule, score=r.score, scores=r.scores,
                score_samples=[0 if e is None else e.samples for e in r.estimates],
                score_successes=[0 if e is None else e.successes for e in r.estimates],
                score_terminal=[e is not None and e.terminal for e in r.estimates],
                low_threshold=settings.low_threshold, mode=settings.mode, rollouts=r.rollouts,
                task_type=task.task_type, dataset_id=task.dataset_id, dataset_item_id=task.item_id,
                trajectory_index=index, p_initial=out.p_initial,
                pass_at_k_with=r.pass_at_k_with if pos is not None else [],
                pass_at_k_without=r.pass_at_k_without if r.alternatives else [],
                samples_with=r.samples_with, successes_with=r.successes_with,
                samples_without=r.samples_without, successes_without=r.successes_without,
                alternatives=alts, pass_at_k_rollouts=r.pass_at_k_rollouts,
                search={**search_info, "mode": settings.mode, "alternatives_support": r.alternatives_support},
            ))
        return out

    todo = [t for t in tasks if not store.is_done(t.item_id)]
    summary.resumed = len(tasks) - len(todo)
    bar = _progress(len(tasks), config.progress, summary.resumed)
    start = time.perf_counter()
    queue = iter(todo)
    active: list[tuple[Any, Generator]] = []
    pending: dict[int, list] = {}

    def finish(result: _JobResult) -> None:
        if result.status != "no_room":
            store.write_item(result.item_id, [r.to_dict() for r in result.records],
                             {"status": result.status, "p_initial": result.p_initial,
                              "trajectories": len(result.records), "rollouts": result.rollouts})
        _count(summary, result)
        summary.seconds = time.perf_counter() - start
        bar.update(1)
        bar.set_postfix_str(f"trajectories {summary.trajectories}, critical {summary.found}, "
                            f"{summary.rollouts / max(summary.seconds, 1e-9):.1f} rollouts/s")

    def advance(key: int, gen: Generator, first: bool = False) -> bool:
        try:
            pending[key] = next(gen) if first else gen.send(None)
            return True
        except StopIteration as stop:
            pending.pop(key, None)
            finish(stop.value)
            return False

    try:
        next_key = 0
        while True:
            while len(active) < config.parallel and not summary.stopped_at_max_trajectories:
                task = next(queue, None)
                if task is None:
                    break
                gen = job(task)
                if advance(next_key, gen, first=True):
                    active.append((next_key, gen))
                next_key += 1
            if not active:
                break
            fulfil(engine, [a for key, _ in active for a in pending[key]])
            active = [(key, gen) for key, gen in active if advance(key, gen)]
    finally:
        bar.close()
        store.close()
    summary.seconds = time.perf_counter() - start
    return summary


def _count(summary: CriticalSummary, result: _JobResult) -> None:
    status = result.status
    if status == "skipped":
        summary.skipped += 1
    elif status == "no_incorrect":
        summary.no_incorrect += 1
    elif status == "correct":
        summary.correct_inputs += 1
    elif status == "analysed":
        summary.analysed += 1
    summary.trajectories += len(result.records)
    for r in result.records:
        summary.rules[r.rule] += 1
        if r.critical_position is not None and r.pass_at_k_with:
            summary.with_curves.append(r.pass_at_k_with)
            summary.without_curves.append(r.pass_at_k_without)
    summary.rollouts += result.rollouts
    summary.scoring_rollouts += result.scoring_rollouts
    summary.pass_at_k_rollouts += result.pass_at_k_rollouts
    summary.rollout_tokens += result.rollout_tokens



