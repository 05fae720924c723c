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


def optillm_autothink() -> dict:
    """What optillm's AutoThink entry point accepts, read from its installed source without importing it (importing
    ``optillm`` starts its server module, whose web stack is not installed; AutoThink itself then installs the
    ``adaptive-classifier`` package with pip and downloads a classifier model from the Hub).

    Returns ``version`` (optillm's), ``exports`` (the names ``optillm.autothink`` exports), ``params``
    (``autothink_decode``'s parameter names, in order) and ``config`` (the processor's ``DEFAULT_CONFIG``: the
    settings AutoThink reads and their defaults, each overridable through the request config).
    """
    import ast
    from importlib.metadata import version

    spec = importlib.util.find_spec("optillm")
    if spec is None or not spec.submodule_search_locations:
        missing("optillm")
    root = os.path.join(next(iter(spec.submodule_search_locations)), "autothink")

    def parse(name: str) -> ast.Module:
        with open(os.path.join(root, name), encoding="utf-8") as f:
            return ast.parse(f.read())

    init = parse("__init__.py")
    exports = {
        alias.asname or alias.name
        for node in ast.walk(init)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    (decode,) = [
        n for n in parse("autothink.py").body if isinstance(n, ast.FunctionDef) and n.name == "autothink_decode"
    ]
    (default,) = [
        n.value
        for n in parse("processor.py").body
        if isinstance(n, ast.Assign) and [getattr(t, "id", None) for t in n.targets] == ["DEFAULT_CONFIG"]
    ]
    return {
        "version": version("optillm"),
        "exports": exports,
        "params": [a.arg for a in decode.args.args],
        "config": ast.literal_eval(default),
    }


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
