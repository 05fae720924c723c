"""Contrastive-estimation scoring (`pts contrast`'s last phase): shared prompt keys/values against whole sequences.

Run: python bench/contrast_scoring.py --trajectories DIR/trajectories.jsonl [--limit 800] [--dtype float32]

Scores the same trajectories (a `pts contrast` trajectories.jsonl) twice with
``ContrastiveScorer.score``: ``share_prompts=True`` (the default: each prompt
run once per model, its keys/values shared by the prompt's trajectories) and
``share_prompts=False`` (every trajectory's prompt + response run whole,
left-padded, the way the scorer worked before). Both passes use the same
positive and negative models; the embedded model with two different random
LoRA adapters stands in for trained ones (the cost does not depend on the
weights). Prints wall time of each, the speed-up, tokens, and the largest score
difference between the two.
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trajectories", required=True, help="trajectories.jsonl written by pts contrast")
    ap.add_argument("--limit", type=int, default=800, help="score the first N trajectories")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--json", help="also write the numbers to this file")
    args = ap.parse_args()

    from peft import LoraConfig, get_peft_model

    from pts.contrast.score import ContrastiveScorer
    from pts.contrast.trajectories import Trajectory
    from pts.models import load_model

    with open(args.trajectories, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()][: args.limit]
    fields = Trajectory.__dataclass_fields__
    trajectories = [Trajectory(**{k: v for k, v in r.items() if k in fields}) for r in rows]

    models = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        base = load_model(args.model, device="cpu", dtype=args.dtype).model
        lora = LoraConfig(
            r=8, lora_alpha=16, target_modules=["gate_proj", "up_proj", "down_proj"], init_lora_weights=False
        )
        models.append(get_peft_model(base, lora).eval())
    scorer = ContrastiveScorer.from_models(*models)

    scorer.score(trajectories[:8], batch_size=args.batch_size)  # warm-up
    times, results = {}, {}
    for share in (False, True):
        t = time.perf_counter()
        results[share] = scorer.score(trajectories, batch_size=args.batch_size, share_prompts=share)
        times[share] = time.perf_counter() - t
    diff = max(abs(a - b) for x, y in zip(results[True], results[False]) for a, b in zip(x["scores"], y["scores"]))
    prompts = len({tuple(t.prompt_ids) for t in trajectories})
    prompt_tokens = sum(len(t.prompt_ids) for t in trajectories)
    response_tokens = sum(len(t.response_ids) for t in trajectories)
    out = {
        "trajectories": len(trajectories),
        "prompts": prompts,
        "prompt_tokens": prompt_tokens,
        "response_tokens": response_tokens,
        "dtype": args.dtype,
        "batch_size": args.batch_size,
        "whole_sequences_s": round(times[False], 2),
        "shared_prompts_s": round(times[True], 2),
        "speedup": round(times[False] / times[True], 2),
        "max_score_difference": diff,
        "torch_threads": torch.get_num_threads(),
    }
    print(json.dumps(out, indent=1))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
