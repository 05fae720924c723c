"""How far pi, the sampling probability the bound uses, moves between two forward passes of one prefix.

The search reads pi(t | C) of a solution's token from the batch the solution was decoded in, and later
samples estimates from C in another batch (docs/search.md section 4). In float32 the two agree to
rounding; in bf16 the batch composition changes the logits a little. This bench measures by how much,
and how often it would move a position across the bound's cut (1 - pi >= threshold - margin):

    HF_HUB_OFFLINE=1 python bench/pi_drift.py --dtypes bfloat16 float32 --positions 400

For each dtype: sample ``--solutions`` rollouts per query for the first ``--queries`` queries of the
default dataset in ONE merged engine call (a batch of many rows, as the search decodes solutions), take
``--positions`` random (solution, position) pairs, and recompute pi of the solution's token at that
position from a prefill of the prefix alone (``HFEngine.next_token_distribution``, the same processing
the first token of a rollout from the prefix is drawn with). Prints the distribution of |delta pi| and
how many positions the margin of 0.02 would have to cover (|delta pi| > margin), and how many positions
would be closed by the bound on one pi and open on the other.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--dtypes", nargs="+", default=["bfloat16", "float32"])
    ap.add_argument("--queries", type=int, default=6)
    ap.add_argument("--solutions", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--positions", type=int, default=400)
    ap.add_argument("--threshold", type=float, default=0.2)
    ap.add_argument("--margin", type=float, default=0.02)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    from pts.engines import create_engine
    from pts.engines.base import RolloutRequest, SamplingParams
    from pts.search.searcher import build_prompt_ids
    from pts.tasks.sources import DEFAULT_DATASET, load_tasks

    tasks = load_tasks(DEFAULT_DATASET, max_examples=args.queries, seed=42)
    params = SamplingParams()  # the search's defaults: temperature 0.6, top-p 0.95, top-k 20
    results = {}
    for dtype in args.dtypes:
        engine = create_engine("hf", args.model, device="cpu", dtype=dtype, batch_size=128)
        prompts = [build_prompt_ids(engine.tokenizer, t.prompt) for t in tasks]
        requests = [
            RolloutRequest(tuple(p), n=args.solutions, max_new_tokens=args.max_new_tokens, seed=args.seed + i)
            for i, p in enumerate(prompts)
        ]
        rollouts = engine.sample(requests, params)
        pairs = [
            (qi, r, i)
            for qi, rs in enumerate(rollouts)
            for r in rs
            if r.sampling_logprobs is not None
            for i in range(len(r.token_ids))
        ]
        rng = random.Random(args.seed)
        chosen = rng.sample(pairs, min(args.positions, len(pairs)))
        deltas, crossings, near = [], 0, 0
        cut = args.threshold - args.margin
        for qi, r, i in chosen:
            pi_batch = math.exp(r.sampling_logprobs[i])
            prefix = list(prompts[qi]) + r.token_ids[:i]
            dist = engine.next_token_distribution([prefix], params)[0]
            pi_alone = dist.get(r.token_ids[i], 0.0)
            deltas.append(abs(pi_batch - pi_alone))
            # The bound closes a position when 1 - pi < threshold - margin; count positions where the two pis
            # disagree on that, and positions whose batch pi lies within the margin of the threshold.
            crossings += (1 - pi_batch < cut) != (1 - pi_alone < cut)
            near += abs((1 - pi_batch) - args.threshold) <= args.margin
        deltas.sort()
        n = len(deltas)

        def q(f, d=deltas, n=n):
            return d[min(n - 1, int(f * n))]

        results[dtype] = {
            "positions": n,
            "rows_in_decode_batch": sum(len(rs) for rs in rollouts),
            "mean": sum(deltas) / n,
            "median": q(0.5),
            "p99": q(0.99),
            "max": deltas[-1],
            "over_margin": sum(d > args.margin for d in deltas),
            "bound_decision_differs": crossings,
            "batch_pi_within_margin_of_threshold": near,
        }
        print(dtype, json.dumps(results[dtype]), flush=True)
        del engine
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": results}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
