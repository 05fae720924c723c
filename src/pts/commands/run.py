"""``pts run``: the CLI of :mod:`pts.jobs.run`."""

from __future__ import annotations

import argparse

from pts import options

NAME = "run"
HELP = "search a dataset for pivotal tokens"
ORDER = 10


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from pts.jobs.run import RunConfig

    options.add_options(parser, RunConfig)


def main(args: argparse.Namespace) -> int:
    from pts.jobs.run import RunConfig, run

    print(run(options.config_from(args, RunConfig)).format())
    return 0
