"""``pts critical``: the command line of :mod:`pts.jobs.critical` (critical tokens of incorrect trajectories by
rollout sampling, Lin et al., arXiv 2411.19943): flags -> :class:`CriticalConfig` -> :func:`pts.jobs.critical.run`
-> the summary on stdout."""

from __future__ import annotations

import argparse

from pts import options
from pts.jobs.critical import CriticalConfig, run

NAME = "critical"
HELP = "find critical tokens in incorrect trajectories by rollout sampling (cDPO, Lin et al. 2024)"
ORDER = 20



def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_options(parser, CriticalConfig)


def main(args: argparse.Namespace) -> int:
    print(run(options.config_from(args, CriticalConfig)).format())
    return 0
