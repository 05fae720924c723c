"""``pts critical``: the command line of :mod:`pts.jobs.critical` (critical tokens of incorrect trajectories by
rollout sampling, Lin et al., arXiv 2411.19943): flags -> :class:`CriticalConfig` -> :func:`pts.jobs.critical.run`
-> the summary on stdout."""

from __future__ import annotations

import argparse

from pts.jobs.critical import CriticalConfig, run

NAME = "critical"
HELP = "find critical tokens in incorrect trajectories by rollout sampling (cDPO, Lin et al. 2024)"
ORDER = 20

HELP_TEXT = {
    "input_path": "JSONL of {query, answer, response} rows to analyse instead of sampling from --dataset "
                  "(an optional response_ids list is used as the exact tokens)",
    "response_key": "field of --input-path rows holding the incorrect response",
    "num_trajectories": "responses sampled per query; the ones the oracle rejects are analysed",
    "max_trajectories": "stop once this many incorrect trajectories have been analysed",
    "min_prob": "analyse only queries whose sampled responses are correct at least this often "
                "(0.1 with 8 samples: at least one correct, like the paper's DPO pairs)",
    "rollouts": "K: rollouts behind each token's score (the paper uses 64)",
    "mode": "scan (the paper: K rollouts at every token) or search (bisection with early stopping: "
            "the same token as the scan when scores fall monotonically, far fewer rollouts)",
    "low_threshold": "the most a token after the critical one may score (the paper: 3 of 64)",
    "probe_samples": "first-stage rollouts of every score; a success there settles 'not zero' "
                     "without the rest (default: rollouts/8)",
    "verify_stride": "search: probe every N-th token after the candidate to check later scores stay low",
    "verify_full": "search: score this many tokens right after the candidate with all K rollouts "
                   "(where a falling curve's later scores are highest)",
    "pass_at_k": "alternative tokens sampled at the critical position (one rollout each) and fresh rollouts "
                 "keeping it, for Pass@k with vs without (default: --rollouts; 0 turns it off)",
    "max_new_tokens": "token budget of a whole response (prefix + rollout)",
    "output_path": "JSONL file the critical-token records are appended to",
    "parallel": "queries analysed at once; their rollouts share engine calls",
    "max_examples": "analyse at most this many queries (or --input-path rows)",
    "sample_size": "randomly sample this many rows from the dataset (seeded)",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from pts.cli import RUN_HELP, add_dataclass_options

    add_dataclass_options(parser, CriticalConfig, {**RUN_HELP, **HELP_TEXT})


def main(args: argparse.Namespace) -> int:
    from pts.cli import config_from

    summary = run(config_from(args, CriticalConfig))
    print(summary.format())
    return 0
