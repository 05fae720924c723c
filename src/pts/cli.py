"""The ``pts`` command. Thin: parses options into config dataclasses and calls the library."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import logging
import os
import pkgutil
import sys
import typing
from typing import Any, Sequence

from pts import options
from pts.errors import PTSError

def __getattr__(name: str) -> Any:
    # Transitional: commands not yet declared with pts.options read run's help texts from RunConfig's fields.
    if name == "RUN_HELP":
        from pts.jobs.run import RunConfig

        return {f.name: f.metadata["help"] for f in dataclasses.fields(RunConfig)}
    raise AttributeError(name)


NEGATED = {"chat_template": "use the raw query instead of the chat template",
           "early_stop": "sample every rollout to the end even once its answer is decided",
           "progress": "hide the progress bar"}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, like every other bad input
        self.exit(2, f"{self.prog}: error: {message}\n")


def _scalar_type(hint: Any) -> type:
    """int for ``int | None``, str for ``Literal[...]``: the type argparse converts a flag's value with."""
    if typing.get_origin(hint) is typing.Literal:
        return str
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args else hint


def add_dataclass_options(parser: argparse.ArgumentParser, cls: type, help_text: dict[str, str]) -> None:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        default = f.default
        if f.name in NEGATED:
            parser.add_argument("--no-" + f.name.replace("_", "-"), dest=f.name, action="store_false",
                                help=NEGATED[f.name])
        elif f.name == "resume":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=True,
                                help="skip items already finished in --output-path; --no-resume insists on a "
                                     "fresh output and is refused when it holds finished items (see --overwrite)")
        elif f.name == "ray":
            parser.add_argument(flag, nargs="?", const="local", default=None, metavar="ADDRESS",
                                help="search on Ray workers: alone, start a local Ray instance; 'auto' or "
                                     "ray://HOST:PORT joins a running cluster (needs pts[ray])")
        elif isinstance(default, bool):
            parser.add_argument(flag, action="store_true", help=help_text.get(f.name, {
                "overwrite": "start again: delete --output-path and its progress first",
                "debug": "print every rollout with its verdict"}.get(f.name)))
        else:
            kind = _scalar_type(hints[f.name])
            kind = options.finite_float if kind is float else kind
            choices = list(typing.get_args(hints[f.name])) if f.name == "split_at" else None
            parser.add_argument(flag, type=kind, default=default, choices=choices,
                                help=(help_text.get(f.name, "") + f" (default: {default})").strip())


def build_parser() -> argparse.ArgumentParser:
    from pts.jobs.run import RunConfig

    parser = _Parser(prog="pts", description="Pivotal Token Search: find the tokens where a model's "
                                             "reasoning succeeds or fails.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run_p = sub.add_parser("run", help="search a dataset for pivotal tokens")
    options.add_options(run_p, RunConfig)
    run_p.set_defaults(func=cmd_run)
    parsers = [run_p]
    for module in _command_modules():
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(func=module.main)
        parsers.append(p)
    for p in parsers:
        p.add_argument("--log-level", default="WARNING", type=str.upper,
                       choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"])
    return parser


def _command_modules() -> list[Any]:
    """Every module of :mod:`pts.commands`, in the order of its ``ORDER`` (then name).

    A command module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and
    ``main(args) -> int``, and imports nothing heavy (torch, transformers) at
    module level so that ``pts --help`` stays fast.
    """
    import pts.commands

    modules = [importlib.import_module(f"pts.commands.{m.name}")
               for m in pkgutil.iter_modules(pts.commands.__path__) if not m.name.startswith("_")]
    return sorted(modules, key=lambda m: (getattr(m, "ORDER", 100), m.NAME))


def config_from(args: argparse.Namespace, cls: type) -> Any:
    """An instance of the dataclass ``cls`` from the parsed options that name its fields."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in vars(args).items() if k in names})


def cmd_run(args: argparse.Namespace) -> int:
    from pts.jobs.run import RunConfig, run

    summary = run(options.config_from(args, RunConfig))
    print(summary.format())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help (0) or a bad flag (2, its one line already printed): a code, not an exception
        return e.code if isinstance(e.code, int) else 2
    logging.basicConfig(level=getattr(logging, args.log_level), format="%(levelname)s %(name)s: %(message)s")
    if args.log_level != "DEBUG":
        # Weight-loading bars of transformers/huggingface_hub would bury pts's own progress and summary.
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        return args.func(args)
    except PTSError as e:
        print(f"pts {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"pts {args.command}: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
