"""The ``pts`` command: a generic layer over the jobs. Flags come from each job's Config, the job runs, its
summary is printed; a PTSError becomes one line and exit status 2."""

from __future__ import annotations

import argparse
import importlib
import inspect
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from pts import options
from pts.errors import PTSError

if os.environ.get("PTS_QUIET_VLLM") == "1":
    # vLLM's engine processes (spawned) run this script again before they import vLLM: the one moment to hold
    # back the notices vLLM's imports print in each process (see pts.engines.vllm.quiet_vllm).
    from pts.engines.vllm import quiet_vllm

    quiet_vllm(engine_process=True)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, like every other bad input
        self.exit(2, f"{self.prog}: error: {message}\n")


COMMANDS = ("run", "view", "critical", "anchors", "export", "steer", "train", "contrast", "push", "eval")
"""Every command, in ``pts --help`` order: each is the job :mod:`pts.jobs.<name>` (HELP, CONFIG, run)."""


def build_parser() -> argparse.ArgumentParser:
    """Flags for every job, from its Config (:func:`pts.options.add_options`); nothing heavy is imported."""
    parser = _Parser(
        prog="pts", description="Pivotal Token Search: find the tokens where a model's reasoning succeeds or fails."
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in COMMANDS:
        job = importlib.import_module(f"pts.jobs.{name}")
        description = getattr(job, "DESCRIPTION", None)
        p = sub.add_parser(
            name,
            help=job.HELP,
            description=description or job.HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter if description else argparse.HelpFormatter,
        )
        options.add_options(p, job.CONFIG)
        p.add_argument(
            "--log-level",
            default="WARNING",
            type=str.upper,
            choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
            help="how much pts and its libraries log on stderr (default: WARNING)",
        )
        p.set_defaults(job=job)
    return parser


def run_job(job: Any, args: argparse.Namespace) -> int:
    """Build the job's config from the flags, run it, print its summary."""
    config = options.config_from(args, job.CONFIG)
    extra = {"echo": lambda text: print(text, flush=True)} if "echo" in inspect.signature(job.run).parameters else {}
    text = job.run(config, **extra).format()
    if text:
        print(text)
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
        return run_job(args.job, args)
    except PTSError as e:
        print(f"pts {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"pts {args.command}: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
