"""Options, declared once: config fields carry their own help, choices and range checks.

A command's config is a dataclass built with :func:`config` from shared option
groups (model, data, sampling, prompt, output, ...) plus its own fields, the way
TRL's config dataclasses inherit ``TrainingArguments``. Each field is declared
with :func:`option`, whose metadata holds what the CLI and the checks need:

    @options.config
    class EvalConfig(ModelOptions, DataOptions, SamplingOptions):
        k: list[int] | None = option(None, "report pass@k only for these k")
        max_examples: int | None = override(None, help="evaluate at most this many queries")

:func:`add_options` turns any such class into argparse flags (``--field-name``,
booleans as ``--x/--no-x``, old spellings as ``aliases``), :func:`config_from`
builds the config from parsed flags, and :func:`check` runs every field's range
check with one message per kind of mistake, naming the flag. ``None`` means
"not set" and passes every check. A command that needs another default or a
sharper help for a shared field uses :func:`override`, which keeps the rest of
the declaration.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pts.aliases import DEFAULT_MODEL
from pts.errors import PTSError


def flag(name: str) -> str:
    """The CLI flag of a config field: ``max_new_tokens`` -> ``--max-new-tokens``."""
    return "--" + name.replace("_", "-")


def finite_float(text: str) -> float:
    """argparse ``type`` for every float option: a number, never ``nan`` or ``inf``."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid float value: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


# --- declaring options -------------------------------------------------------------------------------------------

# The longest pivotal span a search may look for: every run of up to this many tokens around a seam is estimated.
MAX_SPAN = 8

_CHECKS: dict[str, Callable[[str, Any], str | None]] = {
    "count": lambda f, v: f"{f} must be at least 1, got {v}" if v < 1 else None,
    "nonneg": lambda f, v: f"{f} must be >= 0, got {v}" if v < 0 else None,
    "positive": lambda f, v: f"{f} must be positive, got {v}" if not v > 0 else None,
    "unit": lambda f, v: f"{f} must be between 0 and 1, got {v}" if not 0.0 <= v <= 1.0 else None,
    "open_unit": lambda f, v: f"{f} must be between 0 and 1 (exclusive), got {v}" if not 0.0 < v < 1.0 else None,
    "half_open_unit": lambda f, v: f"{f} must be in (0, 1], got {v}" if not 0.0 < v <= 1.0 else None,
    "span_length": lambda f, v: f"{f} must be between 1 and {MAX_SPAN}, got {v}" if not 1 <= v <= MAX_SPAN else None,
}
"""Range checks by name: each returns the error message for a bad value, else None."""


def option(
    default: Any = dataclasses.MISSING,
    help: str = "",
    *,
    check: str | None = None,
    choices: tuple | None = None,
    aliases: tuple[str, ...] = (),
    metavar: str | None = None,
    nargs: str | None = None,
    const: Any = None,
    positional: bool = False,
    default_factory: Any = dataclasses.MISSING,
    cli: bool = True,
    flag: str | None = None,
) -> Any:
    """A config field with what the CLI and the checks need.

    ``help`` is required for every field the CLI shows; ``check`` names one of
    :data:`_CHECKS`; ``aliases`` are extra flag spellings (old names keep
    working); ``flag`` replaces the flag made from the field's name; ``cli=False``
    keeps a field out of the command line (Python only).
    """
    if check is not None and check not in _CHECKS:
        raise ValueError(f"unknown check {check!r}; valid: {', '.join(_CHECKS)}")
    meta = {
        "help": help,
        "check": check,
        "choices": choices,
        "aliases": tuple(aliases),
        "metavar": metavar,
        "nargs": nargs,
        "const": const,
        "positional": positional,
        "cli": cli,
        "flag": flag,
    }
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass
class _Override:
    default: Any
    changes: dict[str, Any]


def override(default: Any = dataclasses.MISSING, **changes: Any) -> Any:
    """Another default (and optionally ``help=``, ``check=``, ...) for a field an option group declares."""
    return _Override(default, changes)


def config(cls: type | None = None, *, group: str | None = None) -> Any:
    """Make ``cls`` a keyword-only dataclass of options, resolving :func:`override` against its bases.

    ``group`` titles the fields this class declares in ``--help`` (option groups
    set it; a command's own fields are listed under the command).
    """

    def build(cls: type) -> type:
        inherited = {
            f.name: f
            for base in reversed(cls.__mro__[1:])
            if dataclasses.is_dataclass(base)
            for f in dataclasses.fields(base)
        }
        for name, value in list(vars(cls).items()):
            if isinstance(value, _Override):
                if name not in inherited:
                    raise TypeError(f"{cls.__name__}.{name} overrides a field no base declares")
                meta = {**inherited[name].metadata, **value.changes}
                setattr(cls, name, dataclasses.field(default=value.default, metadata=meta))
        cls = dataclasses.dataclass(kw_only=True)(cls)
        cls._option_group = group
        own = cls.__dict__.get("__annotations__", {})
        for f in dataclasses.fields(cls):
            if f.name in own and "group" not in f.metadata:
                f.metadata = types.MappingProxyType({**f.metadata, "group": group})
        return cls

    return build(cls) if cls is not None else build


def check(values: Any) -> None:
    """Every field's range check of the options dataclass ``values``, and finiteness of every float; raises
    PTSError naming the flag."""
    for f in dataclasses.fields(values):
        value = getattr(values, f.name)
        name = f.metadata.get("flag") or flag(f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise PTSError(f"{name} must be a finite number, got {value}")
        rule = f.metadata.get("check")
        choices = f.metadata.get("choices")
        if value is None:
            continue
        if rule is not None:
            for v in value if isinstance(value, (list, tuple)) else (value,):
                message = _CHECKS[rule](name, v)
                if message:
                    raise PTSError(message)
        if choices is not None and value not in choices:
            raise PTSError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")


Group = TypeVar("Group")


def group_of(cls: type[Group], values: Any) -> Group:
    """The option group ``cls`` of a command's config (which mixes ``cls`` in) as an object of its own.

    A job hands each lower layer the groups it uses, never its whole config:
    ``WorkerPool(group_of(RayOptions, config), work)``. The fields are the
    config's values (a command's :func:`override` changes defaults, not names).
    """
    return cls(**{f.name: getattr(values, f.name) for f in dataclasses.fields(cls)})  # type: ignore[call-arg]


def checked(default: Any, check: str | None = None, *, flag: str | None = None) -> Any:
    """A field of an algorithm's settings (not a command's flag) with a range check for :func:`check`;
    ``flag`` is the option it comes from when its name differs."""
    return option(default, check=check, cli=False, flag=flag)


# --- the command line ----------------------------------------------------------------------------------------------


def _base_type(hint: Any) -> tuple[Any, bool]:
    """The element type argparse converts with, and whether the option takes a list."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (types.UnionType, typing.Union) and len(args) == 1:
        hint = args[0]
    if typing.get_origin(hint) in (list, tuple):
        return typing.get_args(hint)[0], True
    return hint, False


def add_options(parser: argparse.ArgumentParser, cls: type) -> None:
    """Flags for every field of the option dataclass ``cls``, grouped by the option group that declares them."""
    hints = typing.get_type_hints(cls)
    # The command's own fields first, then each group in the order the config lists its bases.
    order = [None] + [vars(c).get("_option_group") for c in cls.__mro__[1:]]
    rank = {name: i for i, name in reversed(list(enumerate(order)))}
    fields = sorted(dataclasses.fields(cls), key=lambda f: rank.get(f.metadata.get("group"), len(order)))
    groups: dict[str | None, Any] = {}
    for f in fields:
        meta = f.metadata
        if not meta.get("cli", True):
            continue
        if "help" not in meta or not meta["help"]:
            raise TypeError(f"{cls.__name__}.{f.name} has no help text: declare it with options.option(...)")
        name = meta.get("group")
        if name not in groups:
            groups[name] = parser if name is None else parser.add_argument_group(f"{name} options")
        target = groups[name]
        default = (
            f.default
            if f.default is not dataclasses.MISSING
            else (f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        )
        kind, many = _base_type(hints[f.name])
        help_text = meta["help"]
        flags = [meta.get("flag") or flag(f.name), *meta["aliases"]]
        if kind is bool:
            target.add_argument(
                *flags, dest=f.name, action=argparse.BooleanOptionalAction, default=default, help=help_text
            )
            continue
        kwargs: dict[str, Any] = {"default": default, "metavar": meta.get("metavar")}
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            kwargs["required"] = True
        if typing.get_origin(kind) is typing.Literal:
            kwargs["choices"], kind = list(typing.get_args(kind)), str
        elif meta.get("choices") is not None:
            kwargs["choices"] = list(meta["choices"])
        kwargs["type"] = finite_float if kind is float else kind
        if many:  # repeated flags add up: --compare A --compare B
            kwargs["nargs"], kwargs["action"] = meta.get("nargs") or "+", "extend"
        elif meta.get("nargs"):
            kwargs["nargs"], kwargs["const"] = meta["nargs"], meta.get("const")
        if default not in (None, [], ()) and "(default" not in help_text:
            help_text += f" (default: {default})"
        if meta.get("positional"):
            keep = {k: v for k, v in kwargs.items() if k in ("type", "nargs", "choices", "metavar")}
            target.add_argument(f.name, help=help_text, **keep)
        else:
            target.add_argument(*flags, dest=f.name, help=help_text, **kwargs)


def config_from(args: argparse.Namespace, cls: type) -> Any:
    """An instance of the option dataclass ``cls`` from the parsed flags that name its fields."""
    names = {f.name for f in dataclasses.fields(cls) if f.metadata.get("cli", True)}  # not the subcommand's name
    values = {k: v for k, v in vars(args).items() if k in names}
    hints = typing.get_type_hints(cls)
    for name, value in values.items():  # argparse gives lists; tuple fields keep their type
        if isinstance(value, list) and typing.get_origin(_unwrap(hints[name])) is tuple:
            values[name] = tuple(value)
    return cls(**values)


def as_args(cls: type, values: Mapping[str, Any]) -> list[str]:
    """The flags that give ``values`` (field name -> value, fields of the option dataclass ``cls``) on the command
    line: ``--x``/``--no-x`` for a boolean, the flag and each item for a list, the flag and the value else; None and
    names that are not fields of ``cls`` are left out. Parsing them gives those values back."""
    args: list[str] = []
    for f in dataclasses.fields(cls):
        if f.name not in values or values[f.name] is None or not f.metadata.get("cli", True):
            continue
        value, name = values[f.name], f.metadata.get("flag") or flag(f.name)
        if isinstance(value, bool):
            args.append(name if value else "--no-" + name.removeprefix("--"))
        elif isinstance(value, (list, tuple)):
            args += [name, *map(str, value)]
        else:
            args += [name, str(value)]
    return args


def _unwrap(hint: Any) -> Any:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if typing.get_origin(hint) in (types.UnionType, typing.Union) and len(args) == 1 else hint


# --- the option groups shared by the commands ------------------------------------------------------------------------

DEFAULT_DATASET = "rg:chain_sum?min_terms=2&max_terms=2&min_digits=1&max_digits=1&size=6"
"""Six one-digit sums from reasoning-gym: small enough for a first run on a laptop CPU."""

MODEL_HELP = "model: built-in alias (smollm2-135m, gemma3-270m), Hub id, local HF directory or .gguf file"


@config(group="model")
class ModelOptions:
    model: str = option(DEFAULT_MODEL, MODEL_HELP)
    device: str = option("auto", "auto, cuda, mps or cpu")
    dtype: str = option("auto", "auto, float32, bfloat16 or float16")


@config(group="engine")
class EngineOptions:
    engine: str = option(
        "hf",
        "rollout engine: hf (pts's batched HF engine), vllm (needs vLLM installed), or one "
        "a plugin registers (entry-point group pts.engines)",
    )
    batch_size: int = option(64, "rows decoded together (bounds memory)", check="count")


@config(group="data")
class DatasetOptions:
    dataset: str = option(
        DEFAULT_DATASET,
        "dataset: Hub name, local .jsonl/.json/.csv/.parquet, "
        "rg:<task>[?option=value&...] (reasoning-gym), or humaneval",
    )
    config: str | None = option(None, "Hub dataset config name; for rg: datasets, a JSON object of task options")
    split: str = option("train", "dataset split")
    query_key: str | None = option(None, "field holding the question (auto-detected when omitted)")
    answer_key: str | None = option(None, "field holding the reference answer (auto-detected when omitted)")
    oracle: str | None = option(
        None,
        "oracle for every row (math, gsm8k, multiple_choice, yes_no, exact, "
        "rg:<task>, code, code:<language>); default: chosen per dataset",
    )


@config(group="data")
class DataOptions(DatasetOptions):
    sample_size: int | None = option(None, "randomly sample this many rows from the dataset (seeded)", check="count")
    max_examples: int | None = option(None, "use at most this many queries (default: all)", check="count")


@config(group="prompt")
class PromptOptions:
    system_prompt: str | None = option(None, "system message for the chat template")
    chat_template: bool = option(
        True, "wrap the query in the model's chat template (--no-chat-template: the raw query)"
    )


@config(group="sampling")
class SamplingOptions:
    temperature: float = option(0.6, "sampling temperature", check="nonneg")
    top_p: float = option(0.95, "nucleus sampling", check="unit")
    top_k: int = option(20, "top-k sampling (0 disables)", check="nonneg")
    min_p: float = option(0.0, "min-p sampling", check="unit")
    seed: int = option(42, "random seed")
    max_new_tokens: int = option(512, "token budget of a whole response", check="count")
    early_stop: bool = option(
        True, "stop a response once its answer is decided (--no-early-stop: sample every response to the end)"
    )


@config(group="output")
class ProgressOptions:
    progress: bool = option(True, "show a progress bar")


@config(group="output")
class OutputOptions(ProgressOptions):
    output_path: str | None = option(None, "output file")


@config(group="output")
class OverwriteOptions:
    overwrite: bool = option(False, "start again: replace the output (and its progress) first")


@config(group="output")
class ResumableOutputOptions(OutputOptions, OverwriteOptions):
    resume: bool = option(
        True,
        "skip items already finished in --output-path; --no-resume insists on a fresh "
        "output and is refused when it holds finished items (see --overwrite)",
    )


@config(group="Ray")
class RayOptions:
    ray: str | None = option(
        None,
        "run on Ray workers: alone, start a local Ray instance; 'auto' or "
        "ray://HOST:PORT joins a running cluster (needs pts[ray])",
        nargs="?",
        const="local",
        metavar="ADDRESS",
    )
    ray_workers: int = option(
        2, "with --ray: Ray actors, each holding one engine (one per GPU with vLLM)", check="count"
    )
    ray_num_cpus: float = option(1.0, "with --ray: CPUs Ray reserves for each worker", check="nonneg")
    ray_num_gpus: float = option(
        0.0, "with --ray: GPUs Ray reserves for each worker (1 for a vLLM worker per GPU)", check="nonneg"
    )


@config(group="training")
class TrainingOptions:
    lora_r: int = option(16, "LoRA rank", check="count")
    lora_alpha: int = option(32, "LoRA alpha (scale alpha/r)", check="positive")
    lora_dropout: float = option(0.0, "LoRA dropout")
    lora_targets: str = option(
        "all-linear", "modules LoRA adapts: all-linear, or comma-separated names such as q_proj,v_proj"
    )
    learning_rate: float | None = option(None, "learning rate", check="positive")
    epochs: float = option(1.0, "passes over the data (ignored with --max-steps)", check="positive")
    max_steps: int | None = option(
        None, "stop after this many optimizer steps (default: --epochs decides)", check="count"
    )
    train_batch_size: int = option(2, "training examples per device per step", check="count")
    grad_accum: int = option(
        1, "gradient accumulation steps", check="count", aliases=("--gradient-accumulation-steps",)
    )
    max_length: int | None = option(1024, "truncate training sequences to this many tokens")
    gradient_checkpointing: bool = option(
        False, "recompute activations in the backward pass (less memory, ~20%% slower)"
    )

    def trl_arguments(self, learning_rate: float | None = None) -> dict[str, Any]:
        """These options under the names of TRL's (transformers') training arguments; ``learning_rate`` replaces
        :attr:`learning_rate` (a command's own default where that is None)."""
        return {
            "per_device_train_batch_size": self.train_batch_size,
            "gradient_accumulation_steps": self.grad_accum,
            "learning_rate": self.learning_rate if learning_rate is None else learning_rate,
            "num_train_epochs": self.epochs,
            "max_steps": self.max_steps or -1,  # TRL: -1 lets the epochs decide
            "max_length": self.max_length,
            "gradient_checkpointing": self.gradient_checkpointing,
        }

    def peft_config(self) -> Any:
        """PEFT's ``LoraConfig`` of these options, for a causal LM (imports PEFT)."""
        from peft import LoraConfig

        return LoraConfig(
            r=self.lora_r,
            lora_alpha=self.lora_alpha,
            lora_dropout=self.lora_dropout,
            target_modules=self.lora_target_list(),
            bias="none",
            task_type="CAUSAL_LM",
        )

    def lora_target_list(self) -> str | list[str]:
        """PEFT ``target_modules``: ``"all-linear"`` or the comma-separated module names."""
        text = self.lora_targets.strip()
        return text if text == "all-linear" else [t.strip() for t in text.split(",") if t.strip()]

    def check_training(self) -> None:
        """The bounds no single field's check covers."""
        if not 0.0 <= self.lora_dropout < 1.0:
            raise PTSError(f"--lora-dropout must be in [0, 1), got {self.lora_dropout}")
        if not self.lora_target_list():
            raise PTSError("--lora-targets is empty (use all-linear or names such as q_proj,v_proj)")
        if self.max_length is not None and self.max_length < 2:
            raise PTSError(f"--max-length must be at least 2, got {self.max_length}")
