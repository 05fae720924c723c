"""Subcommands of ``pts`` other than ``run``, one module each, discovered by :mod:`pts.cli`.

Each module defines ``NAME``, ``HELP``, optionally ``ORDER`` (position in
``pts --help``), ``add_arguments(parser)`` and ``main(args) -> int``. Modules
import torch, transformers and the like inside ``main``, never at the top.
"""
