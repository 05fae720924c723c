"""The code's shape: imports point one way, no private name crosses modules, every flag has help.

The layers, from the bottom (a module may import its own layer and the ones below):

0. options, stats, store, errors, aliases, progress, registry: no pts imports above this layer
1. records, engines, tasks, models, adapters, sandbox: what the algorithms work on
2. search, export, formats, steering, train, contrast, evaluate, view, hub, work, distributed, resumable: the
   algorithms, the exports, and the pools and driver that run them
3. jobs: one module per command (Config, run(config) -> Summary)
4. cli, __main__: the command line, a generic layer over the jobs

``pts/__init__.py`` re-exports the public API and is exempt.
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

import pytest

from pts.cli import build_parser
from pts.cli import main as cli_main

SRC = Path(__file__).resolve().parent.parent / "src" / "pts"

LAYERS = {
    **dict.fromkeys(["options", "stats", "store", "errors", "aliases", "progress", "registry"], 0),
    **dict.fromkeys(["records", "engines", "tasks", "models", "adapters", "sandbox"], 1),
    **dict.fromkeys(
        [
            "search",
            "export",
            "formats",
            "steering",
            "train",
            "contrast",
            "evaluate",
            "view",
            "hub",
            "work",
            "distributed",
            "resumable",
        ],
        2,
    ),
    "jobs": 3,
    **dict.fromkeys(["cli", "__main__"], 4),
}


def _modules():
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        if parts == ("pts", "__init__"):
            continue
        yield ".".join(parts), parts[1], ast.parse(path.read_text(encoding="utf-8"))


def _pts_imports(tree):
    """(imported module, names) for every pts import, at module level or inside functions."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "pts":
            yield node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "pts":
                    yield a.name, []


def test_every_module_has_a_layer():
    unknown = sorted({top for _, top, _ in _modules() if top.removesuffix(".py") not in LAYERS})
    assert not unknown, f"give these modules a layer in tests/test_layout.py and docs/architecture.md: {unknown}"


def test_imports_point_one_way():
    wrong = []
    for module, top, tree in _modules():
        for target, names in _pts_imports(tree):
            parts = target.split(".")
            # `from pts import options` names a module; `from pts import __version__` names the package itself.
            tops = [n for n in names if n in LAYERS] if parts == ["pts"] else [parts[1]]
            for t in tops:
                if LAYERS[t] > LAYERS[top]:
                    wrong.append(f"{module} (layer {LAYERS[top]}) imports {target} (layer {LAYERS[t]})")
    assert not wrong, "\n".join(wrong)


def test_no_private_name_is_used_outside_its_module():
    used = [
        f"{module} imports {target}.{name}"
        for module, _, tree in _modules()
        for target, names in _pts_imports(tree)
        for name in names
        if name.startswith("_") and not name.startswith("__")
    ]
    assert not used, "\n".join(used)


def test_no_layer_below_the_jobs_takes_a_whole_config():
    """Below jobs/ a function takes the option groups it uses (``RayOptions``, ``SearchSettings``...), each a
    typed object, never a job's Config passed down as ``config: Any``."""
    found = []
    for module, top, tree in _modules():
        if LAYERS[top.removesuffix(".py")] >= LAYERS["jobs"]:
            continue
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            a = node.args
            for arg in [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg]:
                if arg is None or arg.arg != "config":
                    continue
                hint = ast.unparse(arg.annotation) if arg.annotation is not None else "Any"
                if hint.strip("'\"") in ("Any", "typing.Any", "object"):
                    found.append(f"{module}:{node.lineno} {getattr(node, 'name', 'lambda')}(config: {hint})")
    assert not found, "pass the option groups, not a job config:\n" + "\n".join(found)


def _subparsers():
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def test_every_flag_of_every_command_has_help():
    missing = [
        f"pts {name} {'/'.join(a.option_strings) or a.dest}"
        for name, sub in _subparsers().items()
        for a in sub._actions
        if not isinstance(a, argparse._HelpAction) and not (a.help or "").strip()
    ]
    assert not missing, missing


def test_every_command_is_a_job_with_its_options_declared_once():
    import dataclasses
    import importlib

    for name in _subparsers():
        job = importlib.import_module(f"pts.jobs.{name}")
        assert job.HELP and callable(job.run) and dataclasses.is_dataclass(job.CONFIG), name
        for f in dataclasses.fields(job.CONFIG):  # declared with options.option, so the CLI and checks read it
            assert "help" in f.metadata, f"{job.CONFIG.__name__}.{f.name}"


@pytest.mark.parametrize(
    "argv, old, new",
    [
        (["train", "--batch-size", "3"], "--batch-size", "train_batch_size"),
        (["contrast", "--gradient-accumulation-steps", "3"], "--gradient-accumulation-steps", "grad_accum"),
        (["push", "--hf-repo", "me/x"], "--hf-repo", "hf_repo_id"),
        (["run", "--no-verify"], "--no-verify", "verify"),
        (["run", "--no-chat-template"], "--no-chat-template", "chat_template"),
        (["eval", "--no-early-stop"], "--no-early-stop", "early_stop"),
    ],
)
def test_old_flag_spellings_still_work(argv, old, new):
    required = {"train": ["--input-path", "x", "--output-dir", "y"], "push": ["--input-path", "x"]}
    args = build_parser().parse_args(argv + required.get(argv[0], []))
    value = getattr(args, new)
    assert value in (3, "me/x", False), (old, value)


def test_a_bad_flag_value_is_one_line_and_exit_2(capsys):
    assert cli_main(["run", "--temperature", "nan"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pts run: error:"), err
