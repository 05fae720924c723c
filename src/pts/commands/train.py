"""``pts train``: DPO or cDPO (token-weighted DPO) on a preference file, with TRL; LoRA by default."""

from __future__ import annotations

import argparse

from pts import options
from pts.jobs.train import TrainConfig

NAME = "train"
HELP = "train a model with DPO or cDPO (token-weighted DPO) on pts preference data"
ORDER = 40



def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_options(parser, TrainConfig)


def main(args: argparse.Namespace) -> int:
    from pts.jobs.train import run

    print(run(options.config_from(args, TrainConfig)).format())
    return 0
