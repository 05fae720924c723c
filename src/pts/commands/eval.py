"""``pts eval``: accuracy and pass@k of a model (base, LoRA adapter or merged) on a dataset."""

from __future__ import annotations

import argparse
import json
import logging

from pts import options

NAME = "eval"
HELP = ("accuracy and pass@k of a model (alias, Hub id, HF directory, .gguf, LoRA adapter directory) on a "
        "dataset, judged by each task's oracle; --compare for a paired comparison on the same prompts and seeds")
ORDER = 80

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from pts.cli import RUN_HELP
    from pts.runner import DEFAULT_MODEL
    from pts.tasks.sources import DEFAULT_DATASET

    model_help = ("model to evaluate: alias (smollm2-135m, gemma3-270m), Hub id, local HF directory (e.g. a merged "
                  "output), .gguf file, or a PEFT/LoRA adapter directory (adapter_config.json; its base model is "
                  "loaded and the adapter applied)")
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"{model_help} (default: {DEFAULT_MODEL})")
    parser.add_argument("--compare", nargs="+", action="extend", default=[], metavar="MODEL",
                        help="more models evaluated on the same queries, prompts and sampling seeds, each compared "
                             "with --model (and with each other) query by query (paired difference, sign test)")
    parser.add_argument("--base-model", default=None,
                        help="base model of adapter directories (default: the one recorded in the adapter)")
    parser.add_argument("--dataset", default=DEFAULT_DATASET, help=f"{RUN_HELP['dataset']} (default: {DEFAULT_DATASET})")
    for name in ("config", "query_key", "answer_key", "oracle"):
        parser.add_argument("--" + name.replace("_", "-"), default=None, help=RUN_HELP[name])
    parser.add_argument("--split", default="train", help=RUN_HELP["split"] + " (default: train)")
    parser.add_argument("--sample-size", type=int, default=None, help=RUN_HELP["sample_size"])
    parser.add_argument("--max-examples", type=int, default=None, help="evaluate at most this many queries (default: all)")
    parser.add_argument("--num-samples", type=int, default=None,
                        help="responses per query; pass@k is reported for k = 1..N (default: 1 with --greedy, else 4)")
    parser.add_argument("--k", type=int, nargs="+", default=None, metavar="K",
                        help="report pass@k only for these k (each at most --num-samples)")
    parser.add_argument("--greedy", action="store_true", help="greedy decoding (temperature 0, one sample per query)")
    parser.add_argument("--temperature", type=options.finite_float, default=0.6, help="sampling temperature (default: 0.6)")
    parser.add_argument("--top-p", type=options.finite_float, default=0.95, help="nucleus sampling (default: 0.95)")
    parser.add_argument("--top-k", type=int, default=20, help="top-k sampling, 0 disables (default: 20)")
    parser.add_argument("--min-p", type=options.finite_float, default=0.0, help="min-p sampling (default: 0.0)")
    parser.add_argument("--max-new-tokens", type=int, default=512, help="token budget of a response (default: 512)")
    parser.add_argument("--seed", type=int, default=42,
                        help="random seed: dataset sampling and each query's sampling stream (default: 42)")
    parser.add_argument("--system-prompt", default=None, help=RUN_HELP["system_prompt"])
    parser.add_argument("--no-chat-template", dest="chat_template", action="store_false",
                        help="use the raw query instead of the chat template")
    parser.add_argument("--no-early-stop", dest="early_stop", action="store_false",
                        help="generate every response to the end even once its answer is decided")
    parser.add_argument("--engine", default="hf", help="generation engine (default: hf)")
    parser.add_argument("--device", default="auto", help=RUN_HELP["device"] + " (default: auto)")
    parser.add_argument("--dtype", default="auto", help=RUN_HELP["dtype"] + " (default: auto)")
    parser.add_argument("--batch-size", type=int, default=64, help=RUN_HELP["batch_size"] + " (default: 64)")
    parser.add_argument("--output-path", default=None,
                        help="JSONL file of every response with its token ids, extracted answer and verdict "
                             "(one row per sample and model; replaced atomically)")
    parser.add_argument("--summary-path", default=None, help="JSON file of the summary (and comparisons)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")


def settings_from(args: argparse.Namespace):
    from pts.evaluate import EvalSettings

    num_samples = args.num_samples if args.num_samples is not None else (1 if args.greedy else 4)
    return EvalSettings(
        num_samples=num_samples, max_new_tokens=args.max_new_tokens,
        temperature=0.0 if args.greedy else args.temperature, top_p=args.top_p, top_k=args.top_k,
        min_p=args.min_p, seed=args.seed, system_prompt=args.system_prompt, chat_template=args.chat_template,
        early_stop=args.early_stop, ks=tuple(args.k) if args.k else None,
    )


def main(args: argparse.Namespace) -> int:
    from pts.evaluate import compare, make_engine
    from pts.evaluate import evaluate as run_eval
    from pts.store import atomic_write, check_output_path
    from pts.tasks.sources import load_tasks

    settings = settings_from(args)
    settings.validate()
    options.at_least_one(args, "batch_size", "sample_size", "max_examples")
    for path in (args.output_path, args.summary_path):
        if path:
            check_output_path(path)
    tasks = load_tasks(args.dataset, config=args.config, split=args.split, query_key=args.query_key,
                       answer_key=args.answer_key, sample_size=args.sample_size, max_examples=args.max_examples,
                       seed=args.seed, oracle=args.oracle)
    specs = list(dict.fromkeys([args.model, *args.compare]))
    results = []
    for spec in specs:
        engine = make_engine(spec, engine=args.engine, device=args.device, dtype=args.dtype,
                                  batch_size=args.batch_size, base_model=args.base_model)
        results.append(run_eval(engine, tasks, settings, progress=args.progress))
        del engine  # one model in memory at a time
        if len(specs) > 1:
            print(results[-1].format(), end="\n\n", flush=True)
    # Each --compare model against --model, then the --compare models against each other.
    comparisons = [compare(results[0], r) for r in results[1:]]
    comparisons += [compare(results[i], results[j]) for i in range(1, len(results)) for j in range(i + 1, len(results))]
    if len(specs) == 1:
        print(results[0].format())
    if comparisons:
        print("paired comparison (same queries, prompts and seeds):")
        for c in comparisons:
            print("  " + c.format())
    if args.output_path:
        with atomic_write(args.output_path) as f:
            for r in results:
                for row in r.rows():
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
        print(f"responses: {args.output_path}")
    if args.summary_path:
        from dataclasses import asdict

        blob = {"results": [r.summary() for r in results], "comparisons": [asdict(c) for c in comparisons]}
        with atomic_write(args.summary_path) as f:
            json.dump(blob, f, indent=2, ensure_ascii=False)
            f.write("\n")
        print(f"summary: {args.summary_path}")
    return 0
