"""The ``pts`` command. Thin: parses options into config dataclasses and calls the library."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys
from typing import Any, Sequence

from pts.errors import PTSError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, like every other bad input
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="pts", description="Pivotal Token Search: find the tokens where a model's "
                                             "reasoning succeeds or fails.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    parsers = []
    for module in _command_modules():
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(func=module.main)
        parsers.append(p)
    for p in parsers:
        p.add_argument("--log-level", default="WARNING", type=str.upper,
                       choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
                       help="how much pts and its libraries log on stderr (default: WARNING)")
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
