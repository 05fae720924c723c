"""``pts eval``: the CLI of :mod:`pts.jobs.eval`."""

from __future__ import annotations

import argparse

from pts import options

NAME = "eval"
HELP = ("accuracy and pass@k of a model (alias, Hub id, HF directory, .gguf, LoRA adapter directory) on a "
        "dataset, judged by each task's oracle; --compare for a paired comparison on the same prompts and seeds")
ORDER = 80


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from pts.jobs.eval import EvalConfig

    options.add_options(parser, EvalConfig)


def main(args: argparse.Namespace) -> int:
    from pts.jobs.eval import EvalConfig, run

    summary = run(options.config_from(args, EvalConfig), echo=lambda text: print(text, flush=True))
    print(summary.format())
    return 0
