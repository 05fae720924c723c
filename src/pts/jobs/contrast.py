"""``pts contrast`` as a job: :class:`ContrastConfig` and :func:`run`, which returns a :class:`ContrastSummary`.

Contrastive estimation of critical tokens (Lin et al., arXiv 2411.19943; the
method is in :mod:`pts.contrast`): sample trajectories (or read them), select
the positive and negative training sets, train a LoRA adapter on each (unless
given), and score every response token. Every output goes into
``config.output_dir``:

    trajectories.jsonl, positive.jsonl, negative.jsonl, positive-adapter/, negative-adapter/, scores.jsonl
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pts import options
from pts.contrast.score import load_scorer, score_record
from pts.contrast.select import select_training_sets, training_rows
from pts.contrast.training import LoraSettings, train_lora
from pts.contrast.trajectories import (
    has_token_ids,
    read_trajectories,
    trajectories_from_eval,
)
from pts.engines import check_engine
from pts.errors import PTSError
from pts.options import DEFAULT_MODEL, option, override

log = logging.getLogger(__name__)

HELP = "contrastive estimation: train positive/negative LoRA models and score every token of trajectories"
"""The command's one line in ``pts --help``."""
DESCRIPTION = """\
Contrastive estimation of critical tokens (Lin et al., arXiv 2411.19943), in three phases:

  1. trajectories: sample --num-trajectories responses per query of --dataset with --model and judge
     them with the oracle (or read them with --input-path); write the positive set (correct ones) and
     the negative set (incorrect ones with the most frequent wrong answers, --negative-top-p)
  2. training: fine-tune a positive and a negative LoRA adapter of --model on them (TRL SFTTrainer,
     loss on response tokens only)
  3. scoring: for every response token y_t, s_t = softmax((1+beta) log p_pos - beta log p_neg)[y_t],
     one forward pass per model per trajectory

Files in --output-dir: trajectories.jsonl, positive.jsonl, negative.jsonl, positive-adapter/,
negative-adapter/, scores.jsonl (per-token scores with token ids; pts train --loss cdpo reads it).

Skip phases by giving their results: --input-path FILE reuses trajectories (e.g. DIR/trajectories.jsonl,
or any JSONL of {query, answer, response[, correct]}); --positive-model and --negative-model (adapter
directories or full models) skip training, so the run only scores the trajectories.

examples:
  pts contrast --dataset rg:chain_sum --max-examples 20 --num-trajectories 16 --output-dir ce
  pts contrast --input-path ce/trajectories.jsonl --positive-model ce/positive-adapter \\
               --negative-model ce/negative-adapter --beta 0.5 --output-dir ce-beta05
"""


TRAJECTORIES_FILE = "trajectories.jsonl"
POSITIVE_FILE = "positive.jsonl"
NEGATIVE_FILE = "negative.jsonl"
SCORES_FILE = "scores.jsonl"
POSITIVE_ADAPTER = "positive-adapter"
NEGATIVE_ADAPTER = "negative-adapter"


@options.config
class ContrastConfig(
    options.ModelOptions,
    options.DataOptions,
    options.PromptOptions,
    options.SamplingOptions,
    LoraSettings,
    options.EngineOptions,
    options.OverwriteOptions,
    options.ProgressOptions,
    options.RayOptions,
):
    """Every option of ``pts contrast``; the CLI flags are these names with dashes.

    The training options shape the positive and negative LoRA models (the
    authors' settings for the contrastive-estimation models, one epoch).
    """

    model: str = override(
        DEFAULT_MODEL,
        help="base model: samples the trajectories and is fine-tuned; " + options.MODEL_HELP.removeprefix("model: "),
    )
    dtype: str = override("auto", help="auto, float32, bfloat16 or float16; float32 gives exact scores on CPU")
    batch_size: int = override(64, help="rows decoded together when sampling (bounds memory)")
    positive_model: str | None = option(
        None, "use this positive model (LoRA adapter directory or full model) instead of training one"
    )
    negative_model: str | None = option(None, "use this negative model instead of training one")
    output_dir: str = option("contrast", "directory of every output")
    overwrite: bool = override(False, help="replace outputs already in --output-dir")
    input_path: str | None = option(
        None,
        "JSONL of trajectories to use instead of sampling: pts trajectories.jsonl, "
        "pts eval --output-path, or rows {query, answer, response[, correct]}",
    )
    num_trajectories: int = option(16, "responses sampled per query (the paper: 64)", check="count")
    temperature: float = override(
        0.6, help="sampling temperature; the authors tune it so that each query has ~10 wrong responses"
    )
    positives_per_query: int = option(
        1, "correct trajectories per query in the positive set, 0 = all (1, as the authors' code)", check="nonneg"
    )
    negative_top_p: float = option(
        0.5,
        "negative set: wrong answers by decreasing frequency, one trajectory each, "
        "until they cover this share of the wrong responses",
        check="half_open_unit",
    )
    beta: float = option(1.0, "contrast strength beta", check="nonneg")
    score: Literal["all", "incorrect", "correct"] = option("all", "which trajectories to score")
    score_batch_size: int = option(8, "trajectories per scoring forward pass", check="count")
    ray: str | None = override(
        None,
        help="sample the trajectories on Ray workers (training and scoring stay "
        "here): alone, start a local Ray instance; 'auto' or ray://HOST:PORT joins a running "
        "cluster (needs pts[ray])",
    )

    @property
    def lora(self) -> LoraSettings:
        """The positive/negative models' fine-tuning settings."""
        return options.group_of(LoraSettings, self)

    def validate(self) -> None:
        """Raise PTSError on an option out of range, before anything is loaded or written."""
        options.check(self)
        check_engine(self.engine)
        self.check_training()
        if self.temperature < 1e-5:
            raise PTSError("--temperature must be > 0: contrastive estimation needs varied trajectories")
        if self.input_path is not None and not Path(self.input_path).is_file():
            raise PTSError(f"--input-path {self.input_path} does not exist")
        for name in ("positive_model", "negative_model"):
            spec = getattr(self, name)
            if spec is not None and spec.startswith((".", "/", "~")) and not Path(spec).expanduser().exists():
                raise PTSError(f"{options.flag(name)} {spec} does not exist")
        self.lora.validate()
        if self.ray is not None:
            from pts.distributed import check_ray_options

            if self.input_path is not None:
                raise PTSError(
                    "--ray samples the trajectories on Ray workers; with --input-path there is nothing "
                    "to sample (training and scoring run here)"
                )
            check_ray_options(options.group_of(options.RayOptions, self))

    def eval_settings(self):
        from pts.evaluate import EvalSettings

        return EvalSettings.of(
            options.group_of(options.SamplingOptions, self),
            options.group_of(options.PromptOptions, self),
            num_samples=self.num_trajectories,
        )

    @property
    def trains(self) -> bool:
        return self.positive_model is None or self.negative_model is None


@dataclass
class ContrastSummary:
    """What one ``pts contrast`` produced."""

    output_dir: str
    trajectories: int = 0
    correct: int = 0
    queries: int = 0
    sampled: bool = False
    positives: int = 0
    negatives: int = 0
    training: dict[str, dict[str, Any]] = field(default_factory=dict)
    scored: int = 0
    scored_tokens: int = 0
    mean_score_correct: float | None = None
    mean_score_incorrect: float | None = None
    positive_model: str | None = None
    negative_model: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    failed: list[str] = field(default_factory=list)

    def format(self) -> str:
        how = "sampled" if self.sampled else "read"
        head = (
            f"trajectories: {self.trajectories} {how} for {self.queries} queries "
            f"({self.correct} correct, {self.trajectories - self.correct} incorrect)"
        )
        lines = [head]
        if "trajectories" in self.files:
            lines[-1] += f" -> {self.files['trajectories']}"
        if self.failed:
            lines.append(
                f"skipped: {len(self.failed)} queries whose batch killed its Ray worker on every try "
                f"(items {', '.join(self.failed[:5])}{', ...' if len(self.failed) > 5 else ''})"
            )
        if "positive" in self.files:
            lines.append(
                f"training sets: {self.positives} positive, {self.negatives} negative -> "
                f"{self.files['positive']}, {self.files['negative']}"
            )
        for role in ("positive", "negative"):
            if role in self.training:
                t = self.training[role]
                lines.append(
                    f"{role} model: LoRA on {t['examples']} trajectories, {t['steps']} steps, "
                    f"train loss {t['train_loss']:.3f} ({t['seconds']:.0f} s) -> {self.files[role + '_model']}"
                )
            else:
                lines.append(f"{role} model: {getattr(self, role + '_model')}")
        means = []
        for label, v in (("correct", self.mean_score_correct), ("incorrect", self.mean_score_incorrect)):
            if v is not None:
                means.append(f"{v:.3f} on {label}")
        lines.append(
            f"scores: {self.scored} trajectories, {self.scored_tokens} tokens"
            + (f"; mean s_t {', '.join(means)} trajectories" if means else "")
            + f" -> {self.files.get('scores', '-')}"
        )
        lines.append(f"time: {self.seconds:.1f} s")
        return "\n".join(lines)


def run(config: ContrastConfig, engine=None, tasks=None) -> ContrastSummary:
    """Run the phases of ``pts contrast`` that ``config`` asks for, writing into ``config.output_dir``.

    Trajectories come from ``config.input_path`` or are sampled (with ``engine``,
    else ``config.model``, on ``tasks``, else ``config.dataset``); adapters given
    as ``positive_model``/``negative_model`` are used as they are, missing ones are
    trained. Every file is written atomically; existing outputs are refused
    unless ``config.overwrite``. Bad input raises PTSError before heavy work.
    """

    config.validate()
    start = time.perf_counter()
    out = Path(config.output_dir)
    summary = ContrastSummary(str(out), positive_model=config.positive_model, negative_model=config.negative_model)
    planned = _planned_outputs(config, out)
    _prepare_output_dir(out, planned, config.overwrite)

    base = None  # (model, tokenizer, spec) of the base model, loaded once and shared by the phases
    if config.input_path is None:
        trajectories, engine, summary.failed = sample_trajectories(config, engine, tasks)
        summary.sampled = True
        if hasattr(engine, "model"):
            base = (engine.model, engine.tokenizer, config.model)
        _write_jsonl(out / TRAJECTORIES_FILE, [t.to_dict() for t in trajectories])
        summary.files["trajectories"] = str(out / TRAJECTORIES_FILE)
    else:
        if config.trains or not has_token_ids(config.input_path):
            base = _load_base(config, base)
        trajectories = read_trajectories(
            config.input_path,
            base[1] if base else None,
            options.group_of(options.DatasetOptions, config),
            options.group_of(options.PromptOptions, config),
            seed=config.seed,
        )
    summary.trajectories = len(trajectories)
    summary.correct = sum(t.correct for t in trajectories)
    summary.queries = len({t.group for t in trajectories})
    log.info("%d trajectories (%d correct) for %d queries", summary.trajectories, summary.correct, summary.queries)

    positive, negative = config.positive_model, config.negative_model
    if config.trains:
        pos_set, neg_set = select_training_sets(
            trajectories,
            positives_per_query=config.positives_per_query,
            negative_top_p=config.negative_top_p,
            seed=config.seed,
        )
        summary.positives, summary.negatives = len(pos_set), len(neg_set)
        hint = (
            f"; the trajectories are in {out / TRAJECTORIES_FILE}: rerun with --input-path on more of them"
            if summary.sampled
            else ""
        )
        for role, chosen in (("positive", pos_set), ("negative", neg_set)):
            if getattr(config, role + "_model") is None and not chosen:
                what = "correct" if role == "positive" else "incorrect (with an extractable answer)"
                raise PTSError(
                    f"no {what} trajectory to train the {role} model on: sample more "
                    f"(--num-trajectories), use more queries or an easier dataset{hint}"
                )
        base = _load_base(config, base)
        model, tok, spec = base
        _write_jsonl(out / POSITIVE_FILE, training_rows(pos_set, tok))
        _write_jsonl(out / NEGATIVE_FILE, training_rows(neg_set, tok))
        summary.files.update(positive=str(out / POSITIVE_FILE), negative=str(out / NEGATIVE_FILE))
        for role, chosen in (("positive", pos_set), ("negative", neg_set)):
            if getattr(config, role + "_model") is not None:
                continue
            target = out / (POSITIVE_ADAPTER if role == "positive" else NEGATIVE_ADAPTER)
            _make_dir(out)
            log.info("training the %s model (LoRA) on %d trajectories", role, len(chosen))
            model, stats = train_lora(
                model,
                tok,
                chosen,
                target,
                config.lora,
                base_model=spec,
                role=role,
                seed=config.seed,
                progress=config.progress,
            )
            summary.training[role] = stats
            summary.files[role + "_model"] = str(target)
            if role == "positive":
                positive = str(target)
            else:
                negative = str(target)
        base = (model, tok, spec)
    summary.positive_model, summary.negative_model = positive, negative

    chosen = [t for t in trajectories if config.score == "all" or t.correct == (config.score == "correct")]
    scorer, base = load_scorer(positive, negative, base, device=config.device, dtype=config.dtype)
    log.info("scoring %d trajectories with beta %g", len(chosen), config.beta)
    tok = base[1] if base else None
    results = scorer.score(chosen, beta=config.beta, batch_size=config.score_batch_size, progress=config.progress)
    rows = [
        score_record(t, r, tok, beta=config.beta, model=config.model, positive=positive, negative=negative)
        for t, r in zip(chosen, results)
    ]
    _write_jsonl(out / SCORES_FILE, rows)
    summary.files["scores"] = str(out / SCORES_FILE)
    summary.scored = len(rows)
    summary.scored_tokens = sum(len(r["scores"]) for r in rows)
    for label, flag in (("mean_score_correct", True), ("mean_score_incorrect", False)):
        values = [s for r in rows if r["correct"] == flag for s in r["scores"]]
        setattr(summary, label, sum(values) / len(values) if values else None)
    summary.seconds = time.perf_counter() - start
    return summary


def sample_trajectories(config: ContrastConfig, engine=None, tasks=None) -> tuple[list[Any], Any, list[str]]:
    """Phase 1: ``config.num_trajectories`` responses per query, judged (:func:`pts.evaluate.evaluate_with`).

    Here on ``engine`` (else ``config.model``), or with ``config.ray`` on Ray
    workers in batches of queries (``engine``, when given, copied to each),
    with the same trajectories either way. Returns the trajectories, the local
    engine (None with Ray) and the item ids of queries left out because their
    batch killed its Ray worker on every try.
    """
    from pts.evaluate import evaluate_with
    from pts.tasks.sources import load_tasks_from
    from pts.work import eval_work

    if tasks is None:
        tasks = load_tasks_from(config, config.seed)
    log.info("sampling %d trajectories for each of %d queries", config.num_trajectories, len(tasks))
    settings = config.eval_settings()
    work = eval_work(
        config.model,
        options.group_of(options.ModelOptions, config),
        options.group_of(options.EngineOptions, config),
        settings,
    )
    ray = options.group_of(options.RayOptions, config)
    result, lost, local = evaluate_with(ray, work, tasks, settings, engine=engine, progress=config.progress)
    return trajectories_from_eval(result), local, [t.item_id for t in lost]


def _planned_outputs(config: ContrastConfig, out: Path) -> list[Path]:
    files = [out / SCORES_FILE]
    if config.input_path is None:
        files.append(out / TRAJECTORIES_FILE)
    if config.trains:
        files += [out / POSITIVE_FILE, out / NEGATIVE_FILE]
    if config.positive_model is None:
        files.append(out / POSITIVE_ADAPTER)
    if config.negative_model is None:
        files.append(out / NEGATIVE_ADAPTER)
    return files


def _prepare_output_dir(out: Path, planned: list[Path], overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise PTSError(f"--output-dir {out} is a file")
    parent = out.parent if str(out.parent) else Path(".")
    if not out.exists() and not parent.is_dir():
        raise PTSError(f"cannot create --output-dir {out}: directory {parent} does not exist")
    existing = [p for p in planned if p.exists()]
    if existing and not overwrite:
        raise PTSError(
            f"{existing[0]} already exists; pass --overwrite, or reuse it (--input-path for "
            "trajectories, --positive-model/--negative-model for adapters)"
        )
    where = out if out.exists() else parent
    if not os.access(where, os.W_OK | os.X_OK):
        raise PTSError(f"cannot write into --output-dir {out}: {where} is not writable")


def _make_dir(out: Path) -> None:
    """Create the output directory when the first output is about to be written (not before: a run that
    fails on bad input leaves nothing behind)."""
    try:
        out.mkdir(exist_ok=True)
    except OSError as e:
        raise PTSError(f"cannot create --output-dir {out}: {e.strerror}") from None


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    from pts.store import write_jsonl

    _make_dir(path.parent)
    write_jsonl(path, rows)


def _load_base(config: ContrastConfig, base):
    """(model, tokenizer, spec) of ``config.model``, loaded unless already there."""
    if base is not None:
        return base
    from pts.adapters import load_model_or_adapter

    loaded = load_model_or_adapter(config.model, device=config.device, dtype=config.dtype)
    return loaded.model, loaded.tokenizer, config.model


CONFIG = ContrastConfig
"""The options of this command (the CLI makes its flags from it)."""
