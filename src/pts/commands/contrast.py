"""``pts contrast``: contrastive estimation of critical tokens (cDPO, arXiv 2411.19943)."""

from __future__ import annotations

import argparse

from pts import options

NAME = "contrast"
HELP = "contrastive estimation: train positive/negative LoRA models and score every token of trajectories"
ORDER = 60

DESCRIPTION = """\
Contrastive estimation of critical tokens (Lin et al., arXiv 2411.19943), in three phases:

  1. trajectories: sample --num-trajectories responses per query of --dataset with --model and judge
     them with the oracle (or read them with --input-path); write the positive set (correct ones) and
     the negative set (incorrect ones with the most frequent wrong answers, --negative-top-p)
  2. training: fine-tune a positive and a negative LoRA adapter of --model on them (TRL SFTTrainer,
     loss on response tokens only)
  3. scoring: for every response token y_t, s_t = softmax((1+beta) log p_pos - beta log p_neg)[y_t],
     one forward pass per model per trajectory

Files in --output-dir: trajectories.jsonl, positive.jsonl, negative.jsonl, positive-adapter/,
negative-adapter/, scores.jsonl (per-token scores with token ids; pts train --loss cdpo reads it).

Skip phases by giving their results: --input-path FILE reuses trajectories (e.g. DIR/trajectories.jsonl,
or any JSONL of {query, answer, response[, correct]}); --positive-model and --negative-model (adapter
directories or full models) skip training, so the run only scores the trajectories.

examples:
  pts contrast --dataset rg:chain_sum --max-examples 20 --num-trajectories 16 --output-dir ce
  pts contrast --input-path ce/trajectories.jsonl --positive-model ce/positive-adapter \\
               --negative-model ce/negative-adapter --beta 0.5 --output-dir ce-beta05
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from pts.jobs.contrast import ContrastConfig

    parser.description = DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    options.add_options(parser, ContrastConfig)


def main(args: argparse.Namespace) -> int:
    from pts.jobs.contrast import ContrastConfig, run

    print(run(options.config_from(args, ContrastConfig)).format())
    return 0
