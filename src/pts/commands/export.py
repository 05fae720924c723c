"""``pts export``: turn pivotal tokens into DPO pairs, steering vectors or a control vector."""

from __future__ import annotations

import argparse
import shlex

from pts import options

NAME = "export"
HELP = "export pivotal tokens as DPO pairs (TRL), steering vectors (optillm) or a GGUF control vector (llama.cpp)"
ORDER = 20


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input-path", required=True, help="pivotal-token JSONL written by `pts run` or the original PTS tool")
    p.add_argument("--format", required=True, choices=["dpo", "steering", "control-vector"], help="what to write")
    p.add_argument("--output-path", default=None,
                   help="output file (default: dpo_dataset.jsonl, steering_vectors.jsonl or control_vector.gguf)")
    p.add_argument("--model", default=None,
                   help="model for tokens, activations and counterpart rollouts (default: the records' model_id)")
    p.add_argument("--device", default="auto", help="auto, cuda, mps or cpu (default: auto)")
    p.add_argument("--dtype", default="auto", help="auto, float32, bfloat16 or float16 (default: auto)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="contexts per forward pass for steering/control-vector (default: 8); "
                        "rows decoded at once for --find-rejected-tokens (default: 64)")
    p.add_argument("--seed", type=int, default=42, help="random seed (default: 42)")
    p.add_argument("--min-prob-delta", type=options.finite_float, default=0.1,
                   help="least |prob_delta| of an exported pivot, and least p(success) gap of a DPO pair (default: 0.1)")

    dpo = p.add_argument_group("dpo")
    dpo.add_argument("--chat", action="store_true",
                     help="write TRL's conversational form (prompt messages, assistant completions)")
    dpo.add_argument("--balance", action="store_true", help="as many pairs from positive as from negative pivots")
    dpo.add_argument("--max-pairs", type=int, default=None, help="write at most this many pairs")
    dpo.add_argument("--gap-confidence", type=float, default=0.9,
                     help="confidence level at which a pair's p(success) gap must exclude zero for "
                          "metadata.counterpart_verified (default: 0.9)")
    dpo.add_argument("--no-progress", dest="progress", action="store_false",
                     help="no progress bar while --find-rejected-tokens measures counterparts")
    dpo.add_argument("--min-counterpart-samples", type=int, default=2,
                     help="rollouts a recorded first token needs to serve as a counterpart (default: 2)")
    dpo.add_argument("--find-rejected-tokens", action="store_true",
                     help="for pivots without a recorded counterpart, estimate the model's top next tokens "
                          "with the dataset's oracle")
    dpo.add_argument("--num-candidates", type=int, default=10, help="next tokens estimated per pivot (default: 10)")
    dpo.add_argument("--num-samples", type=int, default=None,
                     help="rollouts per candidate estimate (default: the records' search setting, else 10)")
    dpo.add_argument("--max-new-tokens", type=int, default=None,
                     help="token budget of a response in those rollouts (default: the records' search setting)")

    data = p.add_argument_group("dataset (for --find-rejected-tokens; default: the records' own rg: or file dataset)")
    data.add_argument("--dataset", default=None, help="the dataset the records were searched on, as in `pts run`")
    data.add_argument("--config", default=None, help="Hub dataset config name; for rg: datasets, a JSON object of options")
    data.add_argument("--split", default="train", help="dataset split (default: train)")
    data.add_argument("--query-key", default=None, help="field holding the question")
    data.add_argument("--answer-key", default=None, help="field holding the reference answer")
    data.add_argument("--oracle", default=None, help="oracle for every row (math, gsm8k, multiple_choice, yes_no, "
                                                     "exact, rg:<task>); default: chosen per dataset")

    vec = p.add_argument_group("steering and control-vector")
    vec.add_argument("--layer-nums", nargs="+", default=None,
                     help="decoder layers to read (0-based): 19,23,27 or 19 23 27 or 10-20 "
                          "(default: 60%%, 75%% and 90%% of the model's depth)")
    vec.add_argument("--select-layer", type=int, default=None,
                     help="layer written as steering_vector/steering_layer (default: the first of --layer-nums)")
    vec.add_argument("--num-clusters", type=int, default=10, help="k-means clusters (default: 10)")
    vec.add_argument("--pca-components", type=int, default=50, help="PCA dimensions before clustering (default: 50)")

    hub = p.add_argument_group("Hugging Face Hub")
    hub.add_argument("--hf-push", action="store_true", help="upload the output with a dataset card")
    hub.add_argument("--hf-repo-id", default=None, help="dataset repo USER/NAME for --hf-push")
    hub.add_argument("--private", action="store_true", help="create the dataset repo private")


def main(args: argparse.Namespace) -> int:
    from pts.export import ExportConfig, export
    from pts.steering.layers import parse_layers

    names = ExportConfig.__dataclass_fields__
    values = {k: v for k, v in vars(args).items() if k in names}
    values["layer_nums"] = parse_layers(args.layer_nums, "--layer-nums")
    values["command"] = command_line(values)
    summary = export(ExportConfig(**values))
    print(summary.format_text())
    return 0


def command_line(values: dict) -> str:
    """The ``pts export`` command that gives these option values (defaults left out), for the dataset card."""
    from pts.export import ExportConfig

    defaults = ExportConfig(input_path="", format="")
    parts = ["pts", "export"]
    for key, value in values.items():
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
