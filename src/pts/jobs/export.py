"""``pts export``: pivotal tokens into files that TRL, optillm and llama.cpp read.

    from pts.jobs.export import ExportConfig, run
    summary = run(ExportConfig(input_path="pivotal_tokens.jsonl", format="dpo", output_path="dpo.jsonl"))

Formats: every registered :class:`pts.formats.Format` that writes (``dpo``,
``steering``, ``control-vector``, ``thought-anchors``, ``thought-anchors-viewer``
and any a plugin adds); the job reads the records with the format's
:meth:`~pts.formats.Format.read` (pivotal tokens, pts's and the original PTS
tool's, :mod:`pts.export.records`; ``pts anchors`` records for the thought-anchors formats), hands
them to the format's :meth:`~pts.formats.Format.write` with its settings and the
model loaders (:class:`pts.formats.base.ExportRequest`), and pushes the file.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pts import formats, options
from pts.errors import PTSError
from pts.export.records import PivotalTokenRow, default_model
from pts.formats.base import ExportRequest
from pts.options import DEFAULT_MODEL, option, override
from pts.registry import resolve

log = logging.getLogger(__name__)

HELP = (
    "export pivotal tokens as DPO pairs (TRL), steering vectors (optillm) or a GGUF control vector (llama.cpp), "
    "and thought anchors as the original tool's rows or Thought Anchors' viewer folders"
)
"""The command's one line in ``pts --help``."""


# The formats pts export writes: those of pts.formats (and of plugins) that have a writer.
EXPORT_FORMATS = tuple(fmt.name for fmt in formats.registered() if fmt.writes)
DEFAULT_OUTPUT = {name: formats.get(name).default_output for name in EXPORT_FORMATS}


@options.config
class ExportConfig(options.ModelOptions, options.DatasetOptions, options.OutputOptions):
    """Every option of ``pts export``; the CLI flags are these names with dashes."""

    input_path: str = option(
        help="pivotal-token JSONL written by `pts run` or the original PTS tool (thought-anchors formats: "
        "the JSONL of `pts anchors`)"
    )
    format: str = option(help=f"what to write: {', '.join(EXPORT_FORMATS)} (or a format a plugin adds)")
    output_path: str | None = override(
        None, help=f"output file (default: {', '.join(DEFAULT_OUTPUT.values())}, by format)"
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
        "19,23,27 or 19 23 27 or 10-20 (default: steering, every layer from 1, the one with the largest "
        "measured gain kept; control vector, 60%%, 75%% and 90%% of the model's depth)",
    )
    select_layer: int | None = option(
        None,
        "steering: layer written as steering_vector/steering_layer (default: the layer of --layer-nums whose "
        "vectors move the pivot decision most per unit of added norm)",
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
        return self.output_path or export_format(self.format).default_output


@dataclass
class ExportSummary:
    """What one export wrote."""

    output_format: str
    output_path: str
    rows: int
    details: str = ""
    url: str | None = None

    def format(self) -> str:
        lines = [f"wrote {self.rows} {formats.get(self.output_format).noun} to {self.output_path}"]
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
    options.check(config)
    fmt = export_format(config.format)
    output = config.output_path or fmt.default_output
    if config.hf_push and not config.hf_repo_id:
        raise PTSError("--hf-push needs --hf-repo-id USER/NAME")
    if config.hf_push and not fmt.published:
        raise PTSError(f"--hf-push: pts push publishes no {fmt.name} output; push the records instead")
    if config.hf_push:  # everything a push needs that can be checked here, before any heavy work
        from huggingface_hub import constants

        from pts.hub import check_repo_id, resolve_token

        check_repo_id(config.hf_repo_id)
        resolve_token()
        if constants.is_offline_mode():
            raise PTSError("--hf-push cannot reach the Hub: offline mode is on (HF_HUB_OFFLINE=1)")
    settings = writer_settings(fmt, config)
    pivots = fmt.read(config.input_path)
    output = fmt.output_file(output, config.input_path)
    if Path(output).parent.is_dir() or not fmt.makes_folder:  # a folder the format makes is checked by output_file
        fmt.check_output(output)
    if os.path.exists(output) and os.path.samefile(output, config.input_path):
        raise PTSError(f"--output-path {output} is the input file; choose another path")
    request = ExportRequest(
        pivots=pivots,
        output=output,
        settings=settings,
        load_model=lambda kept: _load(config, kept, loaded),
        load_tokenizer=lambda kept: (
            loaded.tokenizer if loaded is not None else load_tokenizer(_model_spec(config, kept))
        ),
        load_engine=lambda kept: engine if engine is not None else _engine(config, kept, loaded),
        load_tasks=lambda kept: list(tasks) if tasks is not None else _load_tasks(config, kept),
    )
    written = fmt.write(request)
    summary = ExportSummary(fmt.name, output, written.rows, written.details)
    if config.hf_push:
        from pts.hub import push_dataset

        try:
            summary.url = push_dataset(
                output,
                config.hf_repo_id,
                private=config.private,
                model=config.model or _named_model(pivots),
                fmt=fmt.name,
                command=config.command or command_line(config),
            )
        except PTSError as e:
            raise PTSError(f"{e} (the export itself is written: {output})") from None
    return summary


def _named_model(records: Sequence[Any]) -> str | None:
    """The model every record names (pivots, or a format's own rows), when they all name the same one."""
    ids = {r.get("model_id") if isinstance(r, Mapping) else getattr(r, "model_id", None) for r in records}
    ids.discard(None)
    ids.discard("")
    return ids.pop() if len(ids) == 1 else None


def _model_spec(config: ExportConfig, pivots: Sequence[PivotalTokenRow]) -> str:
    if config.model:
        return config.model
    named = default_model(pivots)
    return named or DEFAULT_MODEL


def _load(config: ExportConfig, pivots: Sequence[PivotalTokenRow], loaded: Any) -> Any:
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


def export_format(name: str) -> formats.Format:
    """The registered format ``name`` if ``pts export`` can write it; PTSError naming those it can."""
    fmt = formats.get(name)
    if not fmt.writes:
        writable = ", ".join(f.name for f in formats.registered() if f.writes)
        raise PTSError(f"pts export does not write {fmt.name!r} files; --format is one of {writable}")
    return fmt


def writer_settings(fmt: formats.Format, config: ExportConfig) -> Any:
    """The settings of ``fmt``'s writer (its :attr:`~pts.formats.Format.settings_type`), each field taken from the
    option of the same name when it is set (``layer_nums`` parsed); checked. None when the writer has none."""
    if fmt.settings_type is None:
        return None
    settings_class = resolve(fmt.settings_type) if isinstance(fmt.settings_type, str) else fmt.settings_type
    values = {**vars(config), "layer_nums": config.layers()}
    settings = settings_class(
        **{f.name: values[f.name] for f in dataclasses.fields(settings_class) if values.get(f.name) is not None}
    )
    if hasattr(settings, "validate"):
        settings.validate()
    return settings


def _engine(config: ExportConfig, pivots: Sequence[PivotalTokenRow], loaded: Any) -> Any:
    from pts.engines.hf import HFEngine

    return HFEngine.from_loaded(_load(config, pivots, loaded), batch_size=config.batch_size or 64)


def _load_tasks(config: ExportConfig, pivots: Sequence[PivotalTokenRow]) -> list[Any]:
    from pts.tasks.sources import load_tasks_from

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
    return load_tasks_from(dataclasses.replace(config, dataset=spec), config.seed)


def command_line(config: ExportConfig) -> str:
    """The ``pts export`` command that gives this config (defaults left out), for the dataset card."""
    defaults = ExportConfig(input_path="", format="")
    first = ("input_path", "format", "output_path")  # what a reader looks for, then the options as declared
    values = {k: v for k, v in vars(config).items() if k in first[:2] or v != getattr(defaults, k)}
    args = [a for k in first if k in values for a in options.as_args(ExportConfig, {k: values[k]})]
    args += options.as_args(ExportConfig, {k: v for k, v in values.items() if k not in first})
    return shlex.join(["pts", "export", *args])


CONFIG = ExportConfig
"""The options of this command (the CLI makes its flags from it)."""
