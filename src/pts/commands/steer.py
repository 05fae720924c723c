"""``pts steer``: generate with steering vectors (optillm JSONL) or a control vector (GGUF) and measure the effect.

Dataset mode (default) prints accuracy without and with steering on the same
prompts and seeds; ``--query TEXT`` prints the unsteered and steered replies to
one prompt.
"""

from __future__ import annotations

import argparse

from pts import options

NAME = "steer"
HELP = "generate with steering vectors or a control vector; compare accuracy with and without"
ORDER = 40


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from pts.jobs.steer import SteerConfig

    options.add_options(parser, SteerConfig)


def main(args: argparse.Namespace) -> int:
    from pts.jobs.steer import SteerConfig, run

    print(run(options.config_from(args, SteerConfig)).format())
    return 0
