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
    from pts.cli import RUN_HELP
    from pts.jobs.contrast import ContrastConfig, LoraSettings
    from pts.jobs.run import DEFAULT_MODEL
    from pts.tasks.sources import DEFAULT_DATASET

    parser.description = DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    c, lo = ContrastConfig(), LoraSettings()

    g = parser.add_argument_group("models")
    g.add_argument("--model", default=DEFAULT_MODEL, help="base model: samples the trajectories and is fine-tuned; "
          f"alias, Hub id, HF directory or .gguf (default: {DEFAULT_MODEL})")
    g.add_argument("--positive-model", default=None, help="use this positive model (LoRA adapter directory or full model) "
          "instead of training one")
    g.add_argument("--negative-model", default=None, help="use this negative model instead of training one")
    g.add_argument("--output-dir", default=c.output_dir, help=f"directory of every output (default: {c.output_dir})")
    g.add_argument("--overwrite", action="store_true", help="replace outputs already in --output-dir")

    g = parser.add_argument_group("trajectories")
    g.add_argument("--input-path", default=None, help="JSONL of trajectories to use instead of sampling: pts "
                   "trajectories.jsonl, pts eval --output-path, or rows {query, answer, response[, correct]}")
    g.add_argument("--dataset", default=DEFAULT_DATASET, help=f"{RUN_HELP['dataset']} (default: {DEFAULT_DATASET})")
    for name in ("config", "query_key", "answer_key", "oracle"):
        g.add_argument("--" + name.replace("_", "-"), default=None, help=RUN_HELP[name])
    g.add_argument("--split", default=c.split, help=f"{RUN_HELP['split']} (default: {c.split})")
    g.add_argument("--sample-size", type=int, default=None, help=RUN_HELP["sample_size"])
    g.add_argument("--max-examples", type=int, default=None, help="use at most this many queries (default: all)")
    g.add_argument("--num-trajectories", type=int, default=c.num_trajectories,
                   help=f"responses sampled per query (the paper: 64) (default: {c.num_trajectories})")
    g.add_argument("--max-new-tokens", type=int, default=c.max_new_tokens,
                   help=f"token budget of a response (default: {c.max_new_tokens})")
    g.add_argument("--temperature", type=options.finite_float, default=c.temperature,
                   help=f"sampling temperature; the authors tune it so that each query has ~10 wrong responses "
                        f"(default: {c.temperature})")
    g.add_argument("--top-p", type=options.finite_float, default=c.top_p, help=f"nucleus sampling (default: {c.top_p})")
    g.add_argument("--top-k", type=int, default=c.top_k, help=f"top-k sampling, 0 disables (default: {c.top_k})")
    g.add_argument("--min-p", type=options.finite_float, default=c.min_p, help=f"min-p sampling (default: {c.min_p})")
    g.add_argument("--system-prompt", default=None, help=RUN_HELP["system_prompt"])
    g.add_argument("--no-chat-template", dest="chat_template", action="store_false",
                   help="use the raw query instead of the chat template")
    g.add_argument("--no-early-stop", dest="early_stop", action="store_false",
                   help="sample every response to the end even once its answer is decided")
    g.add_argument("--positives-per-query", type=int, default=c.positives_per_query,
                   help=f"correct trajectories per query in the positive set, 0 = all "
                        f"(default: {c.positives_per_query}, as the authors' code)")
    g.add_argument("--negative-top-p", type=options.finite_float, default=c.negative_top_p,
                   help="negative set: wrong answers by decreasing frequency, one trajectory each, until they "
                        f"cover this share of the wrong responses (default: {c.negative_top_p})")

    g = parser.add_argument_group("LoRA training (TRL SFTTrainer, loss on response tokens)")
    g.add_argument("--lora-r", type=int, default=lo.r, help=f"LoRA rank (default: {lo.r})")
    g.add_argument("--lora-alpha", type=int, default=lo.alpha, help=f"LoRA alpha (default: {lo.alpha})")
    g.add_argument("--lora-dropout", type=options.finite_float, default=lo.dropout, help=f"LoRA dropout (default: {lo.dropout})")
    g.add_argument("--lora-targets", default=",".join(lo.targets),
                   help=f"comma-separated module names, or all-linear (default: {','.join(lo.targets)})")
    g.add_argument("--learning-rate", type=options.finite_float, default=lo.learning_rate, help=f"(default: {lo.learning_rate})")
    g.add_argument("--epochs", type=options.finite_float, default=lo.epochs, help=f"training epochs (default: {lo.epochs:g})")
    g.add_argument("--max-steps", type=int, default=lo.max_steps,
                   help=f"stop after this many optimizer steps; -1 = run --epochs (default: {lo.max_steps})")
    g.add_argument("--train-batch-size", type=int, default=lo.batch_size,
                   help=f"trajectories per training step and device (default: {lo.batch_size})")
    g.add_argument("--gradient-accumulation-steps", type=int, default=lo.gradient_accumulation_steps,
                   help=f"(default: {lo.gradient_accumulation_steps})")
    g.add_argument("--warmup-steps", type=options.finite_float, default=lo.warmup_steps,
                   help=f"linear warmup: steps, or a ratio of all steps when below 1 (default: {lo.warmup_steps})")
    g.add_argument("--lr-scheduler", default=lo.lr_scheduler, help=f"(default: {lo.lr_scheduler})")
    g.add_argument("--max-length", type=int, default=None,
                   help="truncate training sequences to this many tokens (default: no truncation)")
    g.add_argument("--gradient-checkpointing", action="store_true", help="trade compute for memory (large models)")

    g = parser.add_argument_group("scoring")
    g.add_argument("--beta", type=options.finite_float, default=c.beta, help=f"contrast strength beta (default: {c.beta:g})")
    g.add_argument("--score", choices=["all", "incorrect", "correct"], default=c.score,
                   help=f"which trajectories to score (default: {c.score})")
    g.add_argument("--score-batch-size", type=int, default=c.score_batch_size,
                   help=f"trajectories per scoring forward pass (default: {c.score_batch_size})")

    g = parser.add_argument_group("engine")
    g.add_argument("--engine", default=c.engine, help=f"sampling engine (default: {c.engine})")
    g.add_argument("--device", default=c.device, help=f"{RUN_HELP['device']} (default: {c.device})")
    g.add_argument("--dtype", default=c.dtype, help=f"{RUN_HELP['dtype']}; float32 gives exact scores on CPU "
                   f"(default: {c.dtype})")
    g.add_argument("--batch-size", type=int, default=c.batch_size,
                   help=f"{RUN_HELP['batch_size']} when sampling (default: {c.batch_size})")
    g.add_argument("--seed", type=int, default=c.seed, help=f"random seed (default: {c.seed})")
    g.add_argument("--no-progress", dest="progress", action="store_false", help="hide progress bars")


def config_from_args(args: argparse.Namespace):
    from pts.jobs.contrast import ContrastConfig, LoraSettings

    lora = LoraSettings(
        r=args.lora_r, alpha=args.lora_alpha, dropout=args.lora_dropout,
        targets=tuple(t.strip() for t in args.lora_targets.split(",") if t.strip()),
        learning_rate=args.learning_rate, epochs=args.epochs, max_steps=args.max_steps,
        batch_size=args.train_batch_size, gradient_accumulation_steps=args.gradient_accumulation_steps,
        warmup_steps=args.warmup_steps, lr_scheduler=args.lr_scheduler, max_length=args.max_length,
        gradient_checkpointing=args.gradient_checkpointing,
    )
    names = {"model", "dataset", "config", "split", "query_key", "answer_key", "oracle", "sample_size",
             "max_examples", "input_path", "positive_model", "negative_model", "output_dir", "num_trajectories",
             "max_new_tokens", "temperature", "top_p", "top_k", "min_p", "seed", "system_prompt", "chat_template",
             "early_stop", "positives_per_query", "negative_top_p", "beta", "score", "score_batch_size", "engine",
             "device", "dtype", "batch_size", "overwrite", "progress"}
    return ContrastConfig(lora=lora, **{k: getattr(args, k) for k in names})


def main(args: argparse.Namespace) -> int:
    from pts.jobs.contrast import run

    summary = run(config_from_args(args))
    print(summary.format())
    return 0
