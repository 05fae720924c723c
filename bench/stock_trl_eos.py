"""What stock TRL's appended EOS weighs in a single-token DPO pair, in float32.

    python bench/stock_trl_eos.py --dpo dpo_dataset.jsonl [--model smollm2-135m]

For each pair of a ``pts export --format dpo`` file, and each side (chosen, rejected): the log-probability
of the measured token after the prompt, and of the end-of-sequence token right after it, which TRL 1.16's
``DPOTrainer`` appends to every completion of a plain-text row. Prints the means and the share of the EOS
in each completion's log-probability (what DPO's implicit reward sums over), with the dtype used.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    import numpy as np
    import torch

    from pts.models import load_model

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dpo", required=True)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--dtype", default="float32")
    args = ap.parse_args()
    loaded = load_model(args.model, device="cpu", dtype=args.dtype)
    model, tok = loaded.model, loaded.tokenizer
    eos = tok.eos_token_id
    rows = [json.loads(line) for line in Path(args.dpo).read_text().splitlines() if line.strip()]
    token_lp, eos_lp, share = [], [], []
    for row in rows:
        ids = row["prompt_ids"]
        for side in ("chosen_ids", "rejected_ids"):
            (t,) = row[side]
            if t == eos:
                continue  # TRL appends nothing to a completion that already ends with EOS
            with torch.inference_mode():
                logp = torch.log_softmax(model(input_ids=torch.tensor([[*ids, t]])).logits[0, -2:].float(), -1)
            a, b = float(logp[0, t]), float(logp[1, eos])
            token_lp.append(a)
            eos_lp.append(b)
            share.append(b / (a + b))
    print(
        json.dumps(
            {
                "model": args.model,
                "dtype": args.dtype,
                "pairs": len(rows),
                "completions": len(share),
                "mean_logp_token": float(np.mean(token_lp)),
                "mean_logp_eos_after_token": float(np.mean(eos_lp)),
                "median_logp_eos_after_token": float(np.median(eos_lp)),
                "mean_eos_share_of_completion_logp": float(np.mean(share)),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
