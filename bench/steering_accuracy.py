"""Does steering with a `pts export --format steering` file through optillm's own hook change accuracy?

    python bench/steering_accuracy.py --steering-dir DIR --dataset eval.jsonl --max-examples 100 \
        --num-samples 2 [--model gemma3-270m] [--control-vector cv.gguf] [--arms default,control] --json out.json

A run continues over further questions with ``--start N --combine earlier.json``, or over further samples of
the same questions with ``--first-sample 2 --combine earlier.json`` (each sample index has its own seed).

DIR holds the steering JSONL (optillm loads a folder with ``datasets.load_dataset``). For every
question and sample, the same seeded sampler generates once without the hook and once with
optillm's ``SteeringVectorManager`` + ``install_steering_hooks`` installed, driven exactly as
optillm's AutoThink processor drives it (reset, the prompt's ids and text, ``try_match``; then per
generated token ``update_token_history`` twice (AutoThink calls it twice), ``update_context`` and
``try_match``), token by token with a KV cache, in float32. Arms: optillm's default strengths
(per reasoning pattern, clamped to [0.1, 2]) and every pattern at the clamp's maximum, 2.0. Each
response is judged by the dataset's oracle; the effect is the paired difference in accuracy with a
bootstrap interval over questions and an exact sign test over the (question, sample) pairs.
``--control-vector`` adds an arm with a GGUF control vector at scale ``--control-scale`` (1: llama.cpp's
``--control-vector``), added as llama.cpp does: ``scale * direction.L`` to the output of layer L at every
position.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # consumers.optillm_steering: optillm's steering module, unmodified


def generate(model, tok, prompt_ids, *, seed, max_new_tokens, stop, hooks=(), params=(0.6, 20, 0.95)):
    """One response, token by token with a KV cache; ``hooks`` are optillm's, updated as AutoThink does."""
    import torch
    from transformers import DynamicCache

    temperature, top_k, top_p = params
    gen = torch.Generator().manual_seed(seed)
    for hook in hooks:
        hook.reset()
        hook.update_token_history(list(prompt_ids))
        hook.update_context(tok.decode(list(prompt_ids)))
        hook.try_match()
    tokens = torch.tensor([list(prompt_ids)])
    kv = DynamicCache()
    out_ids: list[int] = []
    eos = {tok.eos_token_id, getattr(model.generation_config, "eos_token_id", None)}
    with torch.inference_mode():
        for _ in range(max_new_tokens):
            # The last position's logits only: the vocabulary head over the whole prompt dominates Gemma's prefill.
            out = model(input_ids=tokens, past_key_values=kv, use_cache=True, logits_to_keep=1)
            logits = out.logits[0, -1].float() / temperature
            top = torch.topk(logits, top_k)
            probs = torch.softmax(top.values, -1)
            keep = (torch.cumsum(probs, -1) - probs) < top_p  # nucleus within the top-k
            probs = probs * keep
            choice = torch.multinomial(probs / probs.sum(), 1, generator=gen).item()
            next_token = int(top.indices[choice])
            if next_token in eos:
                break
            out_ids.append(next_token)
            next_str = tok.decode([next_token])
            for hook in hooks:  # AutoThink's order: history, then history+context+match again
                hook.update_token_history([next_token])
                hook.update_token_history([next_token])
                hook.update_context(next_str)
                hook.try_match()
            if stop(tok.decode(out_ids, skip_special_tokens=True)):
                break
            tokens = torch.tensor([[next_token]])
    return tok.decode(out_ids, skip_special_tokens=True), len(out_ids)


def control_hooks(model, path, scale):
    """llama.cpp's control vector: ``scale * direction.L`` added to the output of layer L at every position."""
    import torch

    from pts.steering.layers import decoder_layers
    from pts.steering.vectors import ControlVector

    vector = ControlVector.from_gguf(path)
    blocks = decoder_layers(model)
    handles = []
    for layer, direction in vector.directions.items():
        d = scale * torch.tensor(direction, dtype=torch.float32)

        def add(_m, _i, output, d=d):
            if isinstance(output, tuple):
                return (output[0] + d.to(output[0].dtype), *output[1:])
            return output + d.to(output.dtype)

        handles.append(blocks[layer].register_forward_hook(add))
    return handles


def summarise(args, results, arms, matched, layer, vectors, questions, started):
    """The report: accuracy per arm with Wilson intervals, paired differences, bootstrap intervals, sign tests."""
    from pts.stats import paired_bootstrap_interval, sign_test, wilson_interval

    n = len(results["base"])
    report = {
        "results": {arm: [list(r) for r in rows] for arm, rows in results.items()},
        "model": args.model,
        "control_vector": args.control_vector,
        "control_scale": args.control_scale,
        "questions": questions,
        "distinct_questions": len({r[0] for r in results["base"]}),
        "pairs": n,
        "training_queries_excluded": args.training_queries,
        "samples_per_question": args.num_samples,
        "steering_layer": layer,
        "vectors": vectors,
        "seconds": round(time.time() - started, 1),
        "arms": {},
    }
    base_ok = sum(r[2] for r in results["base"])
    lo, hi = wilson_interval(base_ok, n, 0.95)
    report["arms"]["base"] = {"accuracy": base_ok / n, "ci": [lo, hi]}
    for arm in arms:
        ok = sum(r[2] for r in results[arm])
        lo, hi = wilson_interval(ok, n, 0.95)
        groups: dict[str, list[float]] = {}
        for b, s in zip(results["base"], results[arm]):
            groups.setdefault(b[0], []).append(float(s[2]) - float(b[2]))
        d_lo, d_hi = paired_bootstrap_interval(
            [(sum(v), len(v)) for v in groups.values()], resamples=2000, confidence=0.95, seed=0
        )
        wins = sum(s[2] and not b[2] for b, s in zip(results["base"], results[arm]))
        losses = sum(b[2] and not s[2] for b, s in zip(results["base"], results[arm]))
        changed = sum(b[3] != s[3] for b, s in zip(results["base"], results[arm]))
        report["arms"][arm] = {
            "accuracy": ok / n,
            "ci": [lo, hi],
            "difference": (ok - base_ok) / n,
            "difference_ci": [d_lo, d_hi],
            "steered_better": wins,
            "steered_worse": losses,
            "sign_test_p": sign_test(wins, losses),
            "responses_with_a_match": matched[arm],
            "responses_whose_length_changed": changed,
        }
    return report


def main() -> None:
    from consumers import optillm_steering

    from pts.models import load_model
    from pts.records import stable_seed
    from pts.search.searcher import build_prompt_ids
    from pts.tasks.sources import load_tasks

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steering-dir", required=True, help="folder holding the steering JSONL")
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--max-examples", type=int, default=100)
    ap.add_argument("--num-samples", type=int, default=2)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", default=None)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--control-vector", default=None)
    ap.add_argument("--control-scale", type=float, default=1.0)
    ap.add_argument("--arms", default="default,max,control", help="which steered arms to run")
    ap.add_argument("--start", type=int, default=0, help="skip this many held-out questions (to continue a run)")
    ap.add_argument(
        "--first-sample", type=int, default=0, help="sample indices start here (more samples of questions already run)"
    )
    ap.add_argument("--combine", nargs="*", default=None, help="JSON reports of earlier runs to pool with this one")
    ap.add_argument("--exclude-queries-of", default=None, help="pivot JSONL: leave out questions it holds (held out)")
    args = ap.parse_args()

    steering = optillm_steering()
    rows = [json.loads(line) for p in Path(args.steering_dir).glob("*.jsonl") for line in open(p) if line.strip()]
    layer = rows[0]["steering_layer"]
    loaded = load_model(args.model, device="cpu", dtype="float32")
    model, tok = loaded.model, loaded.tokenizer
    tasks = load_tasks(args.dataset, seed=args.seed)
    seen = set()
    if args.exclude_queries_of:
        seen = {json.loads(line)["query"] for line in open(args.exclude_queries_of) if line.strip()}
    tasks = [t for t in tasks if t.query not in seen][args.start : args.start + args.max_examples]
    args.training_queries = len(seen)
    manager = steering.SteeringVectorManager(args.steering_dir, target_layer=layer, device="cpu")
    manager.create_tokenized_contexts(tok)
    arms = {"default": dict(manager.pattern_strengths), "max": {p: 2.0 for p in manager.pattern_strengths}}
    wanted = set(args.arms.split(","))
    arms = {k: v for k, v in arms.items() if k in wanted}
    if args.control_vector and "control" in wanted:
        arms["control"] = "control"
    results: dict[str, list] = {name: [] for name in ("base", *arms)}
    matched = {name: 0 for name in arms}
    started = time.time()
    earlier = 0
    for path in args.combine or []:  # earlier runs on other questions (--start): pooled, pair by pair
        prior = json.loads(Path(path).read_text())
        earlier += prior["questions"]
        for arm in results:
            results[arm] += [tuple(r) for r in prior["results"][arm]]
        for arm in matched:
            matched[arm] += prior["arms"][arm]["responses_with_a_match"]
    # Questions outer, arms inner: a run cut short still has every arm on the same questions, and the report
    # is rewritten after each question.
    for done, task in enumerate(tasks, 1):
        prompt = build_prompt_ids(tok, task.prompt)
        for arm, strengths in [("base", None), *arms.items()]:
            hooks, installed = [], []
            if strengths == "control":
                installed = control_hooks(model, args.control_vector, args.control_scale)
            elif strengths is not None:
                for pattern, value in strengths.items():
                    manager.set_steering_strength(pattern, value)
                manager.default_strength = max(strengths.values()) if arm == "max" else 2.0
                installed = steering.install_steering_hooks(model, manager, tok)
                hooks = [h for h, _ in installed]
            try:
                for j in range(args.first_sample, args.first_sample + args.num_samples):
                    seed = stable_seed(args.seed, task.dataset_id, task.item_id, j)
                    text, n = generate(
                        model,
                        tok,
                        prompt,
                        seed=seed,
                        max_new_tokens=args.max_new_tokens,
                        stop=task.oracle.answer_complete,
                        hooks=hooks,
                    )
                    if hooks and hooks[0].match_found:
                        matched[arm] += 1
                    results[arm].append((task.item_id, j, bool(task.judge(text)), n))
            finally:
                if strengths == "control":
                    for handle in installed:
                        handle.remove()
                else:
                    steering.remove_steering_hooks(installed)
        report = summarise(args, results, arms, matched, layer, len(rows), earlier + done, started)
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
