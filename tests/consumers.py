"""The programs that read pts's exports, imported the way the tests need them.

`make install` puts them in the test environment (see the Makefile): optillm
and repeng are installed without their dependencies, for the reasons given
there. Without them a test skips, except under CI, where it fails.
"""

from __future__ import annotations

import importlib.util
import os
from types import ModuleType

import pytest


def missing(what: str) -> None:
    """Skip the calling test for lack of ``what``; under CI fail instead, so a missing consumer is never hidden."""
    message = f"{what} is not installed (make install puts it in .venv)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


def optillm_steering() -> ModuleType:
    """optillm's ``autothink/steering.py`` (SteeringVectorManager, SteeringHook, install_steering_hooks), unmodified.

    Loaded from its file: ``import optillm`` starts with its server module, which
    needs the web stack optillm's package depends on (flask, openai, ...); the
    steering module itself imports only torch and datasets.
    """
    spec = importlib.util.find_spec("optillm")
    if spec is None or not spec.submodule_search_locations:
        missing("optillm")
    path = os.path.join(list(spec.submodule_search_locations)[0], "autothink", "steering.py")
    module_spec = importlib.util.spec_from_file_location("optillm_autothink_steering", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def repeng() -> ModuleType:
    """repeng, importable on numpy 2.

    repeng 0.4.0 (its latest release) pins numpy<2 for one reason: type
    annotations that name ``np.float_``, which numpy 2 removed. Nothing it runs
    uses it, so the alias is restored before import.
    """
    import numpy as np

    if importlib.util.find_spec("repeng") is None:
        missing("repeng")
    if not hasattr(np, "float_"):
        np.float_ = np.float64
    import repeng as module

    return module
