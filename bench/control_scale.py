"""How strong is a control vector at each scale? Next-token agreement with the unsteered model, in float32.

    python bench/control_scale.py --control-vector cv.gguf --dataset eval.jsonl --max-examples 20 \
        [--model smollm2-135m] [--scales 1,2,4,8,16,32]

For each question, the unsteered model's greedy reply (32 new tokens) is fed back with the control vector
added as llama.cpp adds it (``scale * direction.L`` to the output of layer L at every position); reported
per scale: the share of reply positions whose greedy next token is unchanged, the mean KL divergence
(unsteered || steered) of the next-token distributions there, and the added norm as a share of the median
residual norm at each layer.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    import numpy as np
    import torch
    from steering_accuracy import control_hooks

    from pts.models import load_model
    from pts.search.searcher import build_prompt_ids
    from pts.steering.layers import decoder_layers
    from pts.steering.vectors import ControlVector
    from pts.tasks.sources import load_tasks

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--control-vector", required=True)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--max-examples", type=int, default=20)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--scales", default="1,2,4,8,16,32")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    loaded = load_model(args.model, device="cpu", dtype="float32")
    model, tok = loaded.model, loaded.tokenizer
    tasks = load_tasks(args.dataset, max_examples=args.max_examples, seed=args.seed)
    vector = ControlVector.from_gguf(args.control_vector)
    blocks = decoder_layers(model)
    norms: dict[int, list[float]] = {layer: [] for layer in vector.directions}

    def measure(_m, _i, output, layer):
        h = output[0] if isinstance(output, tuple) else output
        norms[layer] += h[0].norm(dim=-1).tolist()

    sequences = []
    for task in tasks:
        prompt = build_prompt_ids(tok, task.prompt)
        with torch.inference_mode():
            out = model.generate(
                torch.tensor([prompt]), max_new_tokens=32, do_sample=False, pad_token_id=tok.pad_token_id
            )
        sequences.append((len(prompt), out[0].tolist()))
    handles = [
        blocks[layer].register_forward_hook(lambda m, i, o, layer=layer: measure(m, i, o, layer))
        for layer in vector.directions
    ]
    base = []
    with torch.inference_mode():
        for n, ids in sequences:
            base.append(torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0, n - 1 : -1].float(), -1))
    for h in handles:
        h.remove()
    residual = {layer: float(np.median(v)) for layer, v in norms.items()}
    report = {"model": args.model, "questions": len(tasks), "median_residual_norm": residual, "scales": {}}
    for scale in [float(x) for x in args.scales.split(",")]:
        handles = control_hooks(model, args.control_vector, scale)
        same, kl, total = 0, 0.0, 0
        try:
            with torch.inference_mode():
                for (n, ids), lp in zip(sequences, base):
                    steered = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0, n - 1 : -1].float(), -1)
                    same += int((steered.argmax(-1) == lp.argmax(-1)).sum())
                    kl += float((lp.exp() * (lp - steered)).sum())
                    total += lp.shape[0]
        finally:
            for h in handles:
                h.remove()
        report["scales"][str(scale)] = {
            "greedy_token_unchanged": same / total,
            "mean_kl": kl / total,
            "added_over_residual": {str(k): scale / v for k, v in residual.items()},
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
