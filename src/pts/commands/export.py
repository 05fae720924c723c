"""``pts export``: turn pivotal tokens into DPO pairs, steering vectors or a control vector."""

from __future__ import annotations

import argparse
import shlex

from pts import options

NAME = "export"
HELP = "export pivotal tokens as DPO pairs (TRL), steering vectors (optillm) or a GGUF control vector (llama.cpp)"
ORDER = 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from pts.jobs.export import ExportConfig

    options.add_options(parser, ExportConfig)


def main(args: argparse.Namespace) -> int:
    from pts.jobs.export import ExportConfig, run

    config = options.config_from(args, ExportConfig)
    config.command = command_line(config)
    print(run(config).format())
    return 0


def command_line(config) -> str:
    """The ``pts export`` command that gives this config (defaults left out), for the dataset card."""
    from pts.jobs.export import ExportConfig

    defaults = ExportConfig(input_path="", format="")
    parts = ["pts", "export"]
    for key, value in vars(config).items():
        if key == "command" or value is None or value is False:
            continue
        if key not in ("input_path", "format") and value == getattr(defaults, key):
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            parts.append(flag)
        elif isinstance(value, list):
            parts += [flag, ",".join(map(str, value))]
        else:
            parts += [flag, shlex.quote(str(value))]
    return " ".join(parts)
