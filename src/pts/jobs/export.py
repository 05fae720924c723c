"""``pts export``: pivotal tokens into files that TRL, optillm and llama.cpp read.

    from pts.jobs.export import ExportConfig, run
    summary = run(ExportConfig(input_path="pivotal_tokens.jsonl", format="dpo", output_path="dpo.jsonl"))

Formats: ``dpo`` (:mod:`pts.export.dpo`), ``steering`` (:mod:`pts.export.steering`),
``control-vector`` (:mod:`pts.export.control_vector`). Every format reads pts
records and the original PTS tool's files (:mod:`pts.export.records`).
"""

from __future__ import annotations

import logging
import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pts import options
from pts.errors import PTSError
from pts.export.records import PivotRecord, attach_token_ids, default_model, read_pivots
from pts.options import DEFAULT_MODEL, option, override

log = logging.getLogger(__name__)

HELP = "export pivotal tokens as DPO pairs (TRL), steering vectors (optillm) or a GGUF control vector (llama.cpp)"
"""The command's one line in ``pts --help``."""


# The formats pts export writes (each described in pts.formats; pts.formats.names() lists every format pts knows).
EXPORT_FORMATS = ("dpo", "steering", "control-vector", "thought-anchors", "thought-anchors-viewer")
DEFAULT_OUTPUT = {
    "dpo": "dpo_dataset.jsonl",
    "steering": "steering_vectors.jsonl",
    "control-vector": "control_vector.gguf",
    "thought-anchors": "thought_anchors_export.jsonl",
    "thought-anchors-viewer": "thought_anchors_viewer",
}


@options.config
class ExportConfig(options.ModelOptions, options.DatasetOptions, options.OutputOptions):
    """Every option of ``pts export``; the CLI flags are these names with dashes."""

    input_path: str = option(help="pivotal-token JSONL written by `pts run` or the original PTS tool")
    format: str = option(help="what to write", choices=EXPORT_FORMATS)
    output_path: str | None = override(
        None, help="output file (default: dpo_dataset.jsonl, steering_vectors.jsonl or control_vector.gguf)"
    )
    model: str | None = override(
        None, help="model for tokens, activations and counterpart rollouts (default: the records' model_id)"
    )
    batch_size: int | None = option(
        None,
        "contexts per forward pass for steering/control-vector (default: 8); rows "
        "decoded at once for --find-rejected-tokens (default: 64)",
        check="count",
    )
    seed: int = option(42, "random seed")
    min_prob_delta: float = option(
        0.1, "least |prob_delta| of an exported pivot, and least p(success) gap of a DPO pair", check="unit"
    )
    dataset: str | None = override(
        None,
        help="for --find-rejected-tokens: the dataset the records were searched "
        "on, as in `pts run` (default: the records' own rg: or file dataset)",
    )
    progress: bool = override(
        True, help="show the plan and a progress bar while --find-rejected-tokens measures counterparts"
    )
    # dpo
    chat: bool = option(False, "dpo: write TRL's conversational form (prompt messages, assistant completions)")
    balance: bool = option(False, "dpo: as many pairs from positive as from negative pivots")
    max_pairs: int | None = option(None, "dpo: write at most this many pairs", check="count")
    gap_confidence: float = option(
        0.9,
        "dpo: confidence level at which a pair's p(success) gap must exclude zero for metadata.counterpart_verified",
        check="open_unit",
    )
    min_counterpart_samples: int = option(
        2, "dpo: rollouts a recorded first token needs to serve as a counterpart", check="count"
    )
    find_rejected_tokens: bool = option(
        False,
        "dpo: for pivots without a recorded counterpart, estimate the "
        "model's top next tokens with the dataset's oracle",
    )
    num_candidates: int = option(10, "dpo: next tokens estimated per pivot", check="count")
    num_samples: int | None = option(
        None, "dpo: rollouts per candidate estimate (default: the records' search setting, else 10)", check="count"
    )
    max_new_tokens: int | None = option(
        None, "dpo: token budget of a response in those rollouts (default: the records' search setting)", check="count"
    )
    # steering / control-vector
    layer_nums: list[str] | None = option(
        None,
        "steering/control-vector: decoder layers to read (0-based): "
        "19,23,27 or 19 23 27 or 10-20 (default: 60%%, 75%% and 90%% of the "
        "model's depth)",
    )
    select_layer: int | None = option(
        None, "steering: layer written as steering_vector/steering_layer (default: the first of --layer-nums)"
    )
    num_clusters: int = option(10, "steering: k-means clusters", check="count")
    pca_components: int = option(50, "steering: PCA dimensions before clustering", check="count")
    # hub
    hf_push: bool = option(False, "upload the output with a dataset card")
    hf_repo_id: str | None = option(None, "dataset repo USER/NAME for --hf-push")
    private: bool = option(False, "create the dataset repo private")
    command: str | None = option(None, "the command line, for the dataset card", cli=False)

    def layers(self) -> list[int] | None:
        """``layer_nums`` as layer numbers (each entry may be a comma list or a range)."""
        from pts.steering.layers import parse_layers

        if self.layer_nums is None or all(isinstance(x, int) for x in self.layer_nums):
            return self.layer_nums  # type: ignore[return-value]
        return parse_layers([str(x) for x in self.layer_nums], "--layer-nums")

    def resolved_output(self) -> str:
        return self.output_path or DEFAULT_OUTPUT[self.format]


@dataclass
class ExportSummary:
    """What one export wrote."""

    output_format: str
    output_path: str
    rows: int
    details: str = ""
    url: str | None = None

    def format(self) -> str:
        what = {"dpo": "pairs", "steering": "steering vectors", "control-vector": "layers"}.get(
            self.output_format, "thought anchors" if self.output_format == "thought-anchors" else "files"
        )
        lines = [f"wrote {self.rows} {what} to {self.output_path}"]
        if self.details:
            lines.append(self.details)
        if self.url:
            lines.append(f"pushed to {self.url}")
        return "\n".join(lines)


def run(
    config: ExportConfig, *, loaded: Any = None, engine: Any = None, tasks: Sequence[Any] | None = None
) -> ExportSummary:
    """Read ``config.input_path``, write ``config.format`` to the output path; one-line PTSError on bad input.

    ``loaded`` (a :class:`pts.models.LoadedModel`) replaces loading ``config.model``;
    ``engine`` replaces the rollout engine built on it for ``find_rejected_tokens``;
    ``tasks`` replaces loading ``config.dataset``. Nothing is written unless the
    whole export succeeds.
    """
    from pts.store import check_output_path

    if config.format not in EXPORT_FORMATS:
        raise PTSError(f"unknown format {config.format!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    options.check(config)
    output = config.resolved_output()
    if config.hf_push and not config.hf_repo_id:
        raise PTSError("--hf-push needs --hf-repo-id USER/NAME")
    if config.hf_push:  # everything a push needs that can be checked here, before any heavy work
        from huggingface_hub import constants

        from pts.hub import check_repo_id, resolve_token

        check_repo_id(config.hf_repo_id)
        resolve_token()
        if constants.is_offline_mode():
            raise PTSError("--hf-push cannot reach the Hub: offline mode is on (HF_HUB_OFFLINE=1)")
    if config.batch_size is not None and config.batch_size < 1:
        raise PTSError(f"--batch-size must be at least 1, got {config.batch_size}")
    if config.format.startswith("thought-anchors"):  # records of `pts anchors`, not pivotal tokens
        from pts.export.anchors import write_anchors

        return ExportSummary(config.format, output, write_anchors(config.input_path, config.format, output))
    pivots = read_pivots(config.input_path)
    check_output_path(output)
    if os.path.exists(output) and os.path.samefile(output, config.input_path):
        raise PTSError(f"--output-path {output} is the input file; choose another path")
    if config.format == "dpo":
        summary = _export_dpo(config, pivots, output, loaded, engine, tasks)
    else:
        summary = _export_vectors(config, pivots, output, loaded)
    if config.hf_push:
        from pts.hub import push_dataset

        try:
            summary.url = push_dataset(
                output,
                config.hf_repo_id,
                private=config.private,
                model=config.model or default_model(pivots),
                fmt=config.format,
                command=config.command or command_line(config),
            )
        except PTSError as e:
            raise PTSError(f"{e} (the export itself is written: {output})") from None
    return summary


def _model_spec(config: ExportConfig, pivots: Sequence[PivotRecord]) -> str:
    if config.model:
        return config.model
    named = default_model(pivots)
    return named or DEFAULT_MODEL


def _load(config: ExportConfig, pivots: Sequence[PivotRecord], loaded: Any) -> Any:
    if loaded is not None:
        return loaded
    from pts.models import load_model

    spec = _model_spec(config, pivots)
    try:
        return load_model(spec, device=config.device, dtype=config.dtype)
    except PTSError as e:
        if config.model:
            raise
        raise PTSError(f"{e} (the records name this model; pass --model to use another)") from None


def load_tokenizer(spec: str) -> Any:
    """The tokenizer of the model ``spec`` (as :func:`pts.models.load_model` reads it) without its weights when possible."""
    from transformers import AutoTokenizer

    from pts import models

    alias = models.resolve_alias(spec)
    path = Path(spec).expanduser()
    try:
        gguf_file = (
            alias.locate() if alias is not None else (path if path.suffix == ".gguf" and path.is_file() else None)
        )
    except ImportError:
        gguf_file = None
    try:
        if gguf_file is not None and (models.gguf_cache_dir(gguf_file) / "config.json").is_file():
            return AutoTokenizer.from_pretrained(models.gguf_cache_dir(gguf_file))
        if alias is None and gguf_file is None and (path.is_dir() or models._HUB_ID.match(spec)):
            return AutoTokenizer.from_pretrained(str(path) if path.is_dir() else spec)
    except (OSError, ValueError):
        pass
    return models.load_model(spec, device="cpu", dtype="float32").tokenizer


def _warn_model(pivots: Sequence[PivotRecord], model_id: str) -> None:
    others = sorted({p.model_id for p in pivots if p.model_id and p.model_id != model_id})
    if others:
        log.warning("the records were measured with %s; exporting with %s", ", ".join(others), model_id)


def _export_dpo(
    config: ExportConfig, pivots: list[PivotRecord], output: str, loaded: Any, engine: Any, tasks: Sequence[Any] | None
) -> ExportSummary:
    from pts.export.dpo import (
        CounterpartFinder,
        DPOSettings,
        build_pairs,
        match_tasks,
        write_pairs,
    )

    settings = DPOSettings(
        min_prob_delta=config.min_prob_delta,
        min_counterpart_samples=config.min_counterpart_samples,
        balance=config.balance,
        max_pairs=config.max_pairs,
        seed=config.seed,
        find_rejected_tokens=config.find_rejected_tokens,
        num_candidates=config.num_candidates,
        num_samples=config.num_samples,
        max_new_tokens=config.max_new_tokens,
        chat=config.chat,
        gap_confidence=config.gap_confidence,
        progress=config.progress,
    )
    settings.validate()
    finder, by_pivot = None, None
    if settings.find_rejected_tokens:
        # The oracle first: refuse before loading a model when no dataset can judge the candidates.
        tasks = list(tasks) if tasks is not None else _load_tasks(config, pivots)
        by_pivot = match_tasks(pivots, tasks)
        if not by_pivot:
            raise PTSError(
                "--find-rejected-tokens: no record matches an item of the dataset (by dataset id and item "
                "id, or by query); pass the --dataset the records were searched on"
            )
        if engine is None:
            from pts.engines.hf import HFEngine

            engine = HFEngine.from_loaded(_load(config, pivots, loaded), batch_size=config.batch_size or 64)
        tokenizer = engine.tokenizer
        _warn_model(pivots, engine.model_id)
        finder = CounterpartFinder(engine, settings)
    else:
        tokenizer = loaded.tokenizer if loaded is not None else load_tokenizer(_model_spec(config, pivots))
    redone = attach_token_ids(pivots, tokenizer)
    rows, report = build_pairs(pivots, tokenizer, settings, finder=finder, tasks=by_pivot)
    if redone:
        report.notes.append(
            f"{redone} contexts had no usable token ids and were tokenized again (metadata.retokenized)"
        )
    if not rows:
        hint = "" if settings.find_rejected_tokens else "; --find-rejected-tokens --dataset DATASET measures more"
        raise PTSError(f"no DPO pairs from {report.pivots} pivotal tokens ({report.skipped_text()}){hint}")
    write_pairs(rows, output)
    return ExportSummary("dpo", output, len(rows), report.format())


def _load_tasks(config: ExportConfig, pivots: Sequence[PivotRecord]) -> list[Any]:
    from pts.tasks.sources import load_tasks

    spec = config.dataset
    if spec is None:
        named = {p.dataset_id for p in pivots if p.dataset_id}
        candidate = named.pop() if len(named) == 1 else None
        if candidate and (candidate.startswith("rg:") or Path(candidate).expanduser().is_file()):
            spec = candidate
            log.info("measuring counterparts with the oracle of the records' dataset %s", spec)
    if spec is None:
        raise PTSError(
            "--find-rejected-tokens measures candidate tokens with the dataset's oracle, and the records "
            "do not name a dataset that can be loaded here: pass --dataset (and --oracle if needed)"
        )
    return load_tasks(
        spec,
        config=config.config,
        split=config.split,
        query_key=config.query_key,
        answer_key=config.answer_key,
        seed=config.seed,
        oracle=config.oracle,
    )


def _export_vectors(config: ExportConfig, pivots: list[PivotRecord], output: str, loaded: Any) -> ExportSummary:
    """The steering file, or the control vector: per layer, the contrastive direction of the pivots.

    A control vector's direction at each layer is the mean activation before
    positive pivots minus the mean before negative ones (at the position that
    predicts the pivot token, see :mod:`pts.export.steering`). It is not
    normalised: strength 1 moves the average negative-pivot state to the
    average positive one at that layer, and llama.cpp adds it at every layer
    listed, so the effects add up along the residual stream.
    """
    import numpy as np

    from pts.export.steering import (
        SteeringSettings,
        context_activations,
        contrast,
        default_layers,
    )
    from pts.steering.layers import check_layers, decoder_layers

    settings = SteeringSettings(
        layer_nums=config.layers(),
        select_layer=config.select_layer,
        num_clusters=config.num_clusters,
        pca_components=config.pca_components,
        batch_size=config.batch_size or 8,
        min_prob_delta=config.min_prob_delta,
        seed=config.seed,
    )
    settings.validate()
    kept = [p for p in pivots if abs(p.prob_delta) >= config.min_prob_delta - 1e-9]
    if not kept:
        raise PTSError(f"no record has |prob_delta| >= {config.min_prob_delta} (--min-prob-delta)")
    if config.format == "control-vector":
        signs = {p.is_positive for p in kept}
        if len(signs) < 2:
            side = "positive" if True in signs else "negative"
            raise PTSError(f"a control vector contrasts positive and negative pivots, but every record is {side}")
    loaded = _load(config, kept, loaded)
    _warn_model(kept, loaded.model_id)
    num_layers = len(decoder_layers(loaded.model))
    layers = list(settings.layer_nums or default_layers(num_layers))
    if config.format == "steering":
        select = settings.select_layer if settings.select_layer is not None else layers[0]
        if select not in layers:
            layers.append(select)
    check_layers(layers, num_layers)
    if config.format == "control-vector" and 0 in layers:
        raise PTSError("llama.cpp rejects a control vector for layer 0 (direction.0); choose layers from 1 up")
    redone = attach_token_ids(kept, loaded.tokenizer)
    note = f"{redone} contexts were tokenized again (no usable token ids recorded)" if redone else ""
    if config.format == "steering":
        return _write_steering(kept, output, loaded, layers, select, settings, note)
    acts, _ = context_activations(loaded.model, [p.context_ids for p in kept], layers, batch_size=settings.batch_size)

    from pts.steering.vectors import ControlVector

    positive = np.array([p.is_positive for p in kept], dtype=bool)
    directions = {layer: contrast(acts[layer], positive) for layer in layers}
    hint = getattr(loaded.model.config, "model_type", "") or ""
    ControlVector(directions, hint).to_gguf(
        output,
        extra={
            "model_id": loaded.model_id,
            "method": "mean_difference",
            "positive_pivots": int(positive.sum()),
            "negative_pivots": int((~positive).sum()),
        },
    )
    norms = ", ".join(f"{layer}: {np.linalg.norm(directions[layer]):.3g}" for layer in sorted(directions))
    details = f"model_hint {hint}; {positive.sum()} positive vs {(~positive).sum()} negative pivots; norms {norms}"
    return ExportSummary("control-vector", output, len(directions), "\n".join(filter(None, [details, note])))


def _write_steering(
    pivots: list[PivotRecord], output: str, loaded: Any, layers: list[int], select: int, settings: Any, note: str
) -> ExportSummary:
    """One steering line per context (see :mod:`pts.export.steering`), and the optillm setting it needs."""
    from pts.export.steering import context_activations, merge_contexts, steering_records
    from pts.store import write_jsonl

    contexts, skipped = merge_contexts(pivots, loaded.tokenizer)
    if not contexts:
        raise PTSError(
            f"no steering vector to write: of {len(pivots)} pivots, {skipped['prompt_only']} have a "
            f"context that is only the prompt and {skipped['cancelled']} cancel out at a shared context"
        )
    acts, baseline = context_activations(
        loaded.model, [c.lead.context_ids for c in contexts], layers, batch_size=settings.batch_size
    )
    records = steering_records(contexts, loaded.tokenizer, acts, baseline, select, settings)
    write_jsonl(output, records)
    patterns = sorted({r["reasoning_pattern"] for r in records})
    lines = [
        f"{len(pivots)} pivots -> {len(records)} contexts; left out: {skipped['prompt_only']} whose context is "
        f"only the prompt, {skipped['cancelled']} that cancel at a shared context",
        f"layer {select} (activations at {', '.join(map(str, sorted(acts)))}), "
        f"{len({r['cluster_id'] for r in records})} clusters, patterns: {', '.join(patterns)}",
        f"optillm: set target_layer={select} (AutoThink's config; its default 19 hooks another layer) and load "
        f"the folder holding this file: datasets.load_dataset(FOLDER)",
        note,
    ]
    return ExportSummary("steering", output, len(records), "\n".join(filter(None, lines)))


__all__ = [
    "DEFAULT_OUTPUT",
    "EXPORT_FORMATS",
    "ExportConfig",
    "ExportSummary",
    "PivotRecord",
    "load_tokenizer",
    "run",
    "read_pivots",
]


def command_line(config) -> str:
    """The ``pts export`` command that gives this config (defaults left out), for the dataset card."""
    defaults = ExportConfig(input_path="", format="")
    parts = ["pts", "export"]
    first = ("input_path", "format", "output_path")  # what a reader looks for, then the options as declared
    values = vars(config)
    for key in (*first, *(k for k in values if k not in first)):
        value = values[key]
        if key == "command" or value is None or value is False:
            continue
        if key not in ("input_path", "format") and value == getattr(defaults, key):
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            parts.append(flag)
        elif isinstance(value, list):
            parts += [flag, ",".join(map(str, value))]
        else:
            parts += [flag, shlex.quote(str(value))]
    return " ".join(parts)


CONFIG = ExportConfig
"""The options of this command (the CLI makes its flags from it)."""
