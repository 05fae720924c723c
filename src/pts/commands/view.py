"""``pts view``: the CLI of :mod:`pts.jobs.view`."""

from __future__ import annotations

import argparse

from pts import options

NAME = "view"
HELP = "see pivotal tokens, trajectories, DPO pairs, critical tokens and contrast scores in the browser (offline)"
ORDER = 15


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from pts.jobs.view import ViewConfig

    options.add_options(parser, ViewConfig)


def main(args: argparse.Namespace) -> int:
    from pts.jobs.view import ViewConfig, run

    config = options.config_from(args, ViewConfig)
    summary = run(config, echo=lambda line: print(line, flush=True))
    if not config.serve:
        print(summary.format())
    return 0
