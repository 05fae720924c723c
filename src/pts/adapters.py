"""LoRA adapter directories (what ``pts train`` and ``pts contrast`` write), beside plain model loading.

An adapter directory holds ``adapter_config.json`` and ``pts_train.json``
(:data:`TRAIN_INFO`, naming the base model spec). :func:`pts.models.load_model`
loads one on the base it records and merges it; this module adds loading it on
another base (:func:`load_model_or_adapter`) and attaching adapters to a model
in memory (:func:`attach_adapter`: ``pts contrast`` switches between two). The
directory helpers of :mod:`pts.models` are re-exported so that adapter code has
one place to import from.
"""

from __future__ import annotations

from pts.errors import PTSError
from pts.models import (
    TRAIN_INFO,
    adapter_base,
    checkpointing_rename_quiet,
    is_adapter_dir,
    load_adapter,
    load_model,
)

__all__ = [
    "TRAIN_INFO",
    "adapter_base",
    "attach_adapter",
    "is_adapter_dir",
    "load_adapter",
    "load_model_or_adapter",
    "load_trained",
]


def load_trained(spec: str, device: str = "auto", dtype: str = "auto"):
    """Load any output of ``pts train`` (adapter, merged or full model): :func:`pts.models.load_model`."""
    return load_model(spec, device=device, dtype=dtype)


def load_model_or_adapter(spec: str, device: str = "auto", dtype: str = "auto", *, base_model: str | None = None):
    """:func:`pts.models.load_model`, plus PEFT (LoRA) adapter directories (``adapter_config.json``).

    An adapter is applied to its base model and merged in (a plain model every
    engine runs at full speed); the base is ``base_model`` when given, else the
    one the adapter records (see :func:`adapter_base`). ``model_id`` is
    ``spec``. Raises PTSError on any failure.
    """
    if base_model is None or not is_adapter_dir(spec):
        with checkpointing_rename_quiet():
            return load_trained(spec, device=device, dtype=dtype)
    loaded = load_model(base_model, device=device, dtype=dtype)
    model = attach_adapter(loaded.model, spec).merge_and_unload()
    loaded.model = model.eval().requires_grad_(False)
    loaded.model_id = spec
    loaded.source = f"{loaded.source} + adapter {spec}"
    return loaded


def attach_adapter(model, spec: str, adapter_name: str = "default"):
    """Load the adapter in ``spec`` onto ``model`` (a plain model or a ``PeftModel``) under ``adapter_name``."""
    try:
        from peft import PeftModel

        with checkpointing_rename_quiet():
            if isinstance(model, PeftModel):
                model.load_adapter(spec, adapter_name=adapter_name)
                return model
            return PeftModel.from_pretrained(model, spec, adapter_name=adapter_name)
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise PTSError(f"could not apply adapter {spec} to its base model: {first}") from None
