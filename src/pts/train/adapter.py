"""Load what ``pts train`` writes: a LoRA adapter directory on top of its base model.

``pts.models.load_model`` loads merged and fully fine-tuned outputs (plain
Hugging Face directories) as they are. An adapter directory holds
``adapter_config.json`` (PEFT) and ``pts_train.json``, whose ``base_model`` is
the pts model spec the adapter was trained on (an alias such as
``smollm2-135m``, a path or a Hub id); without it, PEFT's
``base_model_name_or_path`` is used.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from pts.errors import PTSError

TRAIN_INFO = "pts_train.json"


def is_adapter_dir(path: str | Path) -> bool:
    """True for a directory with ``adapter_config.json`` and no ``config.json`` (a PEFT adapter, not a full model)."""
    p = Path(path).expanduser()
    return p.is_dir() and (p / "adapter_config.json").is_file() and not (p / "config.json").is_file()


def adapter_base(path: str | Path) -> str:
    """The model spec an adapter directory was trained on."""
    p = Path(path).expanduser()
    info = _read_json(p / TRAIN_INFO) if (p / TRAIN_INFO).is_file() else {}
    base = info.get("base_model") or _read_json(p / "adapter_config.json").get("base_model_name_or_path")
    if not base:
        raise PTSError(f"adapter {p} names no base model ({TRAIN_INFO} base_model or adapter_config.json "
                       "base_model_name_or_path)")
    return str(base)


def load_adapter(path: str | Path, device: str = "auto", dtype: str = "auto", merge: bool = True):
    """Load the base model of the adapter at ``path`` with the adapter applied; returns a ``LoadedModel``.

    ``merge`` folds the LoRA weights into the base weights (same function, a
    plain model that every engine can run); ``model_id`` is ``path``.
    """
    from peft import PeftModel

    from pts.models import LoadedModel, load_model

    p = Path(path).expanduser()
    if not is_adapter_dir(p):
        raise PTSError(f"{p} is not an adapter directory (no adapter_config.json)")
    base = load_model(adapter_base(p), device=device, dtype=dtype)
    try:
        with warnings.catch_warnings():  # PEFT reads transformers' deprecated is_gradient_checkpointing
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            model = PeftModel.from_pretrained(base.model, str(p))
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise PTSError(f"could not apply adapter {p} to {base.model_id}: {str(e).strip().splitlines()[0]}") from None
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


def load_trained(spec: str, device: str = "auto", dtype: str = "auto"):
    """``load_adapter`` for an adapter directory, else ``pts.models.load_model(spec)``."""
    if is_adapter_dir(spec):
        return load_adapter(spec, device=device, dtype=dtype)
    from pts.models import load_model

    return load_model(spec, device=device, dtype=dtype)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise PTSError(f"cannot read {path}: {e}") from None
    if not isinstance(data, dict):
        raise PTSError(f"{path} is not a JSON object")
    return data
