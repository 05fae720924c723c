"""``pts train``: DPO or cDPO (token-weighted DPO) on a preference file, with TRL; LoRA by default."""

from __future__ import annotations

import argparse

from pts import options
from pts.jobs.train import TrainConfig

NAME = "train"
HELP = "train a model with DPO or cDPO (token-weighted DPO) on pts preference data"
ORDER = 40

_HELP = {
    "loss": "dpo: TRL's sigmoid DPO on `pts export --format dpo` rows; cdpo: token-weighted DPO (Lin et al. 2024) "
            "on pairs with per-token contrastive-estimation scores, or on scored trajectories",
    "input_path": "JSONL file: DPO rows (text, or exact token ids), cDPO pairs, or scored trajectories",
    "output_dir": "directory to write (a LoRA adapter, or the whole model with --no-lora); written atomically",
    "model": "base model: alias (smollm2-135m, gemma3-270m), Hub id, local HF directory or .gguf file",
    "lora": "train a LoRA adapter (--no-lora: full fine-tuning against a frozen copy of the model)",
    "lora_r": "LoRA rank",
    "lora_alpha": "LoRA alpha (scale alpha/r)",
    "lora_dropout": "LoRA dropout",
    "lora_targets": "modules LoRA adapts: all-linear, or comma-separated names such as q_proj,v_proj",
    "learning_rate": "learning rate (default: 4e-5 with LoRA, 1e-6 for full fine-tuning)",
    "epochs": "passes over the data (ignored with --max-steps)",
    "max_steps": "stop after this many optimizer steps",
    "batch_size": "pairs per device per step",
    "grad_accum": "gradient accumulation steps",
    "beta": "DPO beta (--loss dpo)",
    "gamma": "cDPO gamma, the scale of the weighted log-ratio margin (--loss cdpo)",
    "pairs_per_query": "cDPO on scored trajectories: pairs made per query, the i-th correct response with the i-th "
                       "incorrect one, most frequent wrong answer first (1: the authors' selection)",
    "max_length": "truncate prompt+response to this many tokens",
    "seed": "random seed (LoRA init, data order)",
    "device": "auto, cuda, mps or cpu",
    "dtype": "auto (bfloat16 on a CUDA GPU, else float32), float32 or bfloat16",
    "merge": "also write the LoRA weights merged into the base model to OUTPUT_DIR/merged",
    "gradient_checkpointing": "recompute activations in the backward pass (less memory, ~20%% slower)",
    "overwrite": "replace --output-dir if it exists",
    "progress": "show the progress bar",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = TrainConfig()

    def opt(name: str, kind: type, **kw) -> None:
        default = getattr(d, name)
        suffix = f" (default: {default})" if default is not None and "required" not in kw else ""
        kind = options.finite_float if kind is float else kind
        parser.add_argument("--" + name.replace("_", "-"), type=kind, default=default, help=_HELP[name] + suffix, **kw)

    def switch(name: str) -> None:
        parser.add_argument("--" + name.replace("_", "-"), action=argparse.BooleanOptionalAction,
                            default=getattr(d, name), help=_HELP[name])

    opt("loss", str, choices=["dpo", "cdpo"])
    opt("input_path", str, required=True)
    opt("output_dir", str, required=True)
    opt("model", str)
    switch("lora")
    opt("lora_r", int)
    opt("lora_alpha", int)
    opt("lora_dropout", float)
    opt("lora_targets", str)
    opt("learning_rate", float)
    opt("epochs", float)
    opt("max_steps", int)
    opt("batch_size", int)
    opt("grad_accum", int)
    opt("beta", float)
    opt("gamma", float)
    opt("pairs_per_query", int)
    opt("max_length", int)
    opt("seed", int)
    opt("device", str)
    opt("dtype", str)
    switch("merge")
    switch("gradient_checkpointing")
    switch("overwrite")
    switch("progress")


def main(args: argparse.Namespace) -> int:
    from pts.cli import config_from
    from pts.jobs.train import run

    summary = run(config_from(args, TrainConfig))
    print(summary.format())
    return 0
