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

# The alias every command uses when --model is not given.
DEFAULT_MODEL = "smollm2-135m"

# Alias -> the model id pts writes into records made with it.
ALIAS_MODEL_IDS: dict[str, str] = {
    "smollm2-135m": "smollm2-135m-instruct-q4_1",
    "gemma3-270m": "gemma-3-270m-q4_k_m",
}

# Alias -> the Hub id of the model it quantizes.
_QUANTIZES = {
    "smollm2-135m": "HuggingFaceTB/SmolLM2-135M-Instruct",
    "gemma3-270m": "google/gemma-3-270m",
}

# Alias or its model id -> the Hub id of the model it quantizes.
ALIAS_HUB_IDS: dict[str, str] = {**_QUANTIZES, **{ALIAS_MODEL_IDS[alias]: hub for alias, hub in _QUANTIZES.items()}}


def hub_model_id(model_id: str | None) -> str | None:
    """The Hub id to load ``model_id`` with: an alias or its model id maps to the model it quantizes, any other
    name passes through; None for None or empty."""
    if not model_id:
        return None
    return ALIAS_HUB_IDS.get(model_id, model_id)
