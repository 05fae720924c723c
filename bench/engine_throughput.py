"""Rollout throughput of HFEngine on the embedded model against the prefill ceiling and HF generate.

Run: python bench/engine_throughput.py [--batches 32 64 128] [--dtypes float32 bfloat16] [--skip-generate]

Prints generated tokens/s and the ratio to the ceiling of the same dtype: tokens/s
of one forward pass over an 8x256 batch with logits for every position, in the
dtype the engine runs in (what a generated token costs at best; the rate
without the LM head is printed too). A bf16 engine on a CPU with bf16 units is
held to a bf16 ceiling, not an fp32 one it would beat. Engine runs
ignore EOS so every row makes exactly ``--new`` tokens, like HF generate with
``min_new_tokens``; the shrink-vs-mask and many-prefix runs keep EOS.
"""

from __future__ import annotations

import argparse
import time

import torch

from pts.engines.base import RolloutRequest, SamplingParams
from pts.engines.hf import HFEngine
from pts.models import load_model

QUESTION = (
    "A farmer has 17 sheep and buys 8 more, then sells 5 of them at the market on Saturday. "
    "How many sheep does the farmer have now? Explain your reasoning step by step."
)


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def ceiling(model, keep: int) -> float:
    """Tokens/s of one forward over 8x256 tokens in ``model``'s dtype; ``keep=1`` skips the LM head for all but the
    last position."""
    x = torch.randint(100, 20000, (8, 256))
    with torch.inference_mode():
        model(x, logits_to_keep=keep)
        dt = min(timed(lambda: model(x, logits_to_keep=keep))[1] for _ in range(3))  # best of 3: the machine is noisy
    return x.numel() / dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--batches", type=int, nargs="+", default=[32, 64, 128])
    ap.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--skip-generate", action="store_true")
    ap.add_argument(
        "--vllm",
        action="store_true",
        help="measure only the vLLM engine against the same ceiling (run with .venv-vllm/bin/python)",
    )
    args = ap.parse_args()
    torch.manual_seed(0)

    lm = load_model(args.model, device="cpu", dtype="float32")
    tok = lm.tokenizer

    def chat(text: str) -> tuple[int, ...]:
        return tuple(
            tok.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True, return_dict=False)
        )

    prompt = chat(QUESTION)
    params = SamplingParams(temperature=0.6, top_p=0.95, top_k=20, seed=0)
    print(f"threads={torch.get_num_threads()} prompt={len(prompt)} tokens, new={args.new}")
    ceilings: dict[str, float] = {}
    for dtype in dict.fromkeys(["float32", *args.dtypes]):
        model = lm.model if dtype == "float32" else load_model(args.model, device="cpu", dtype=dtype).model
        ceilings[dtype] = ceiling(model, 0)
        print(
            f"ceiling {dtype} (forward 8x256, all logits): {ceilings[dtype]:.0f} tok/s; "
            f"last logits only: {ceiling(model, 1):.0f} tok/s"
        )
        del model

    def report(name: str, tokens: int, dt: float, dtype: str) -> None:
        share = tokens / dt / ceilings[dtype]
        print(f"{name:<44} {tokens / dt:7.1f} tok/s  {share:6.1%} of {dtype} ceiling  ({tokens} tokens, {dt:.1f}s)")

    if args.vllm:
        from pts.engines.vllm import VLLMEngine

        for dtype in args.dtypes:
            for b in args.batches:
                eng = VLLMEngine.from_spec(args.model, device="cpu", dtype=dtype, max_num_seqs=b)
                eng.sample([RolloutRequest(prompt, 4, 4)], params)  # warm-up
                res, dt = timed(lambda: eng.sample([RolloutRequest(prompt, b, args.new)], params))  # noqa: B023 (called at once)
                report(f"vLLM B={b} {dtype} (EOS on)", sum(len(r.token_ids) for r in res[0]), dt, dtype)
                del eng
        return

    if not args.skip_generate:
        ids = torch.tensor([prompt])
        with torch.inference_mode():
            out, dt = timed(
                lambda: lm.model.generate(
                    ids,
                    attention_mask=torch.ones_like(ids),
                    do_sample=True,
                    temperature=0.6,
                    top_p=0.95,
                    top_k=20,
                    max_new_tokens=args.new,
                    min_new_tokens=args.new,
                    num_return_sequences=64,
                    pad_token_id=tok.pad_token_id,
                )
            )
        report("HF generate num_return_sequences=64 fp32", (out.shape[1] - len(prompt)) * 64, dt, "float32")

    for dtype in args.dtypes:
        lm = load_model(args.model, device="cpu", dtype=dtype)
        for b in args.batches:
            eng = HFEngine.from_loaded(lm, batch_size=b)
            eng.eos_token_ids = frozenset()  # every row runs to max_new_tokens
            eng.sample([RolloutRequest(prompt, 4, 4)], params)  # warm-up
            res, dt = timed(lambda: eng.sample([RolloutRequest(prompt, b, args.new)], params))  # noqa: B023 (called at once)
            report(f"engine B={b} {dtype}", sum(len(r.token_ids) for r in res[0]), dt, dtype)
    lm = load_model(args.model, device="cpu", dtype="float32")

    # Rows finishing at different times: drop them at once (shrink), when 1/8 are done (default), or never (mask).
    stop = SamplingParams(temperature=0.6, top_p=0.95, top_k=20, seed=1)
    req = [RolloutRequest(prompt, 64, 2 * args.new, stop=lambda s: s.count("\n") >= 2)]
    for name, below in [("shrink at once", 1.0), ("shrink at 1/8 done", 7 / 8), ("mask (never shrink)", 0.0)]:
        eng = HFEngine.from_loaded(lm, batch_size=64, compact_below=below)
        res, dt = timed(lambda: eng.sample(req, stop))  # noqa: B023 (called at once)
        n = sum(len(r.token_ids) for r in res[0])
        print(f"{name:<20} 64 rows, stop at 2nd newline: {dt:5.1f}s for {n} tokens ({n / dt:.0f} tok/s)")

    # Many prefixes, EOS on: 8 prompts x 32 samples through a 64-row batch with continuous refill.
    pairs = [(3, 4), (12, 9), (25, 17), (8, 8), (41, 2), (6, 13), (30, 30), (7, 5)]
    prompts = [chat(f"What is {a} + {b}? Answer briefly.") for a, b in pairs]
    eng = HFEngine.from_loaded(lm, batch_size=64)
    res, dt = timed(lambda: eng.sample([RolloutRequest(p, 32, args.new) for p in prompts], params))
    n = sum(len(r.token_ids) for rs in res for r in rs)
    report("engine 8 prefixes x 32, B=64, EOS on, fp32", n, dt, "float32")


if __name__ == "__main__":
    main()
