"""``pts push``: the CLI of :mod:`pts.jobs.push`."""

from __future__ import annotations

import argparse

from pts import options

NAME = "push"
HELP = "upload a pts output file (pivotal tokens, DPO pairs, steering or control vectors) to a Hub dataset repo"
ORDER = 60


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from pts.jobs.push import PushConfig

    options.add_options(parser, PushConfig)


def main(args: argparse.Namespace) -> int:
    from pts.jobs.push import PushConfig, run

    print(run(options.config_from(args, PushConfig)).format())
    return 0
