"""``pts steer``: generate with steering vectors (optillm JSONL) or a control vector (GGUF) and measure the effect.

Dataset mode (default) prints accuracy without and with steering on the same
prompts and seeds; ``--query TEXT`` prints the unsteered and steered replies to
one prompt.
"""

from __future__ import annotations

import argparse

from pts.cli import RUN_HELP, add_dataclass_options, config_from

NAME = "steer"
HELP = "generate with steering vectors or a control vector; compare accuracy with and without"
ORDER = 40

STEER_HELP = {
    **RUN_HELP,
    "steering_path": "JSONL of steering vectors in optillm's autothink shape (pts export --format steering)",
    "control_vector": "GGUF control vector (repeng / llama.cpp: arch controlvector, tensors direction.<layer>)",
    "strength": "scale of the added vector: steering vectors are normalised to unit length first (default 2.0, "
                "optillm's); a control vector's directions are used as stored (default 1.0, llama.cpp's)",
    "layer": "decoder layer (0-based, the output of model.layers[N]): for steering vectors, where to add them "
             "instead of their steering_layer; for a control vector, which of its layers to apply (e.g. 10,12,14)",
    "match": "continuous: re-match the context after every token, the latest match stays active; once: match the "
             "prompt only and keep that vector (optillm autothink); local: add a vector only where the context "
             "matches its pivot context",
    "match_on": "match pivot contexts as token ids (pivot_context_ids of pts records) or re-tokenized "
                "pivot_context text (optillm); auto: ids where present",
    "vector_field": "field holding the vector: steering_vector, cluster_vector, or another field of the file",
    "scale_by_delta": "multiply the strength by |prob_delta| clipped to [0.1, 2], as optillm does",
    "query": "steer one prompt and print the unsteered and steered replies instead of evaluating a dataset",
    "max_examples": "evaluate at most this many queries",
    "num_samples": "completions per query and arm (each steered completion has an unsteered twin with its seed)",
    "max_new_tokens": "token budget of each reply",
    "output_path": "JSONL of every completion pair (base and steered, with verdicts); none when omitted",
    "batch_size": "rows decoded together (bounds memory)",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from pts.jobs.steer import SteerConfig

    add_dataclass_options(parser, SteerConfig, STEER_HELP)


def main(args: argparse.Namespace) -> int:
    from pts.jobs.steer import SteerConfig, run

    print(run(config_from(args, SteerConfig)).format())
    return 0
