"""Does steering through optillm's own AutoThink hook change accuracy, and which way?

Run: python bench/optillm_steering.py --vectors FOLDER --dataset SPEC [--max-examples 40] [--strengths default,2]

FOLDER holds one `pts export --format steering` file (optillm loads a folder
with `datasets.load_dataset`). Each question is answered by the embedded model
(or --model) the way AutoThink's processor generates: the chat prompt, then one
token at a time with a key/value cache, sampling from softmax(logits /
temperature), while optillm's `SteeringHook` (installed by its
`install_steering_hooks` on the vectors' layer) is fed every token and matched
as the processor does (reset, update_token_history, update_context,
try_match). Without AutoThink's thinking-token budget, classifier and
`<think>` prefill: what is measured is the steering alone. Every condition
uses the same seed per question, so the conditions are paired.

Conditions: no hook; optillm's default pattern strengths; every pattern set to
each value of --strengths (optillm clamps a pattern's strength to [0.1, 2] and
the product with |prob_delta| to [0, 3], so 2 is the most its hook can add).
Prints accuracy with Wilson intervals, the paired difference with a
bootstrap interval over questions, how many answers steering fixed or broke,
and how many questions the hook matched.
"""

from __future__ import annotations

import argparse
import random
import sys
import time

import torch

sys.path.insert(0, "tests")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--vectors", required=True, help="folder holding one steering export")
    ap.add_argument("--dataset", required=True, help="dataset spec, as in pts run")
    ap.add_argument("--max-examples", type=int, default=40)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--temperature", type=float, default=0.6)
    ap.add_argument("--strengths", default="2", help="comma-separated strengths for every pattern, besides optillm's defaults")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bootstrap", type=int, default=2000)
    args = ap.parse_args()

    from consumers import optillm_steering

    from pts.metrics import wilson_interval
    from pts.models import load_model
    from pts.search.searcher import build_prompt_ids
    from pts.tasks.sources import load_tasks

    steering = optillm_steering()
    loaded = load_model(args.model, device="cpu", dtype="float32")
    model, tok = loaded.model, loaded.tokenizer
    tasks = load_tasks(args.dataset, max_examples=args.max_examples, seed=args.seed)
    import datasets

    layer = int(datasets.load_dataset(args.vectors, split="train")[0]["steering_layer"])
    eos = {tok.eos_token_id}

    def answer(ids: list[int], hook, seed: int) -> tuple[str, bool]:
        gen = torch.Generator().manual_seed(seed)
        if hook is not None:
            hook.reset()
            hook.update_token_history(list(ids))
            hook.update_context(tok.decode(ids))
            hook.try_match()
        out, cache, step = [], None, torch.tensor([ids])
        with torch.inference_mode():
            for _ in range(args.max_new_tokens):
                res = model(input_ids=step, past_key_values=cache, use_cache=True)
                cache = res.past_key_values
                probs = torch.softmax(res.logits[0, -1].float() / args.temperature, dim=-1)
                t = int(torch.multinomial(probs, 1, generator=gen))
                if t in eos:
                    break
                out.append(t)
                if hook is not None:
                    hook.update_token_history([t])
                    hook.update_context(tok.decode([t]))
                    hook.try_match()
                step = torch.tensor([[t]])
        return tok.decode(out, skip_special_tokens=True), bool(hook is not None and hook.match_found)

    conditions: list[tuple[str, float | None]] = [("none", None), ("optillm defaults", 0.0)]
    conditions += [(f"every pattern {s}", float(s)) for s in args.strengths.split(",") if s]
    results: dict[str, list[bool]] = {}
    matched: dict[str, int] = {}
    for name, strength in conditions:
        start = time.time()
        hooks, hook = [], None
        if strength is not None:
            manager = steering.SteeringVectorManager(args.vectors, target_layer=layer, device="cpu")
            if strength > 0:
                for pattern in list(manager.pattern_strengths):
                    manager.set_steering_strength(pattern, strength)
            manager.create_tokenized_contexts(tok)
            hooks = steering.install_steering_hooks(model, manager, tok)
            hook = hooks[0][0]
        try:
            verdicts, hits = [], 0
            for i, task in enumerate(tasks):
                ids = build_prompt_ids(tok, task.prompt)
                text, hit = answer(ids, hook, args.seed * 100003 + i)
                verdicts.append(task.judge(text))
                hits += hit
        finally:
            steering.remove_steering_hooks(hooks)
        results[name], matched[name] = verdicts, hits
        k, n = sum(verdicts), len(verdicts)
        lo, hi = wilson_interval(k, n, 0.95)
        print(f"{name:>20}: accuracy {k}/{n} = {k / n:.3f} [{lo:.3f}, {hi:.3f}]  hook matched {hits} questions "
              f"({time.time() - start:.0f}s)", flush=True)
    base = results["none"]
    rng = random.Random(args.seed)
    for name, verdicts in results.items():
        if name == "none":
            continue
        diffs = [int(b) - int(a) for a, b in zip(base, verdicts)]
        boot = sorted(sum(rng.choice(diffs) for _ in diffs) / len(diffs) for _ in range(args.bootstrap))
        lo, hi = boot[int(0.025 * len(boot))], boot[int(0.975 * len(boot)) - 1]
        print(f"{name:>20} - none: {sum(diffs) / len(diffs):+.3f} [{lo:+.3f}, {hi:+.3f}] (95% bootstrap), "
              f"fixed {diffs.count(1)}, broke {diffs.count(-1)}")


if __name__ == "__main__":
    main()
