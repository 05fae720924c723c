"""Per line of a steering file: does optillm's own hook, at optillm's own strengths, raise the success-side token?

    python bench/steering_lines.py --steering-dir DIR --model smollm2-135m [--json out.json]

For every line, optillm 0.4.0's ``SteeringVectorManager`` loads DIR (``datasets.load_dataset``) and
``install_steering_hooks`` hooks its ``target_layer`` (the file's ``steering_layer``); the hook is fed
the line's context as AutoThink's processor feeds it (reset, the ids, the text, ``try_match``) and one
float32 forward pass over the context gives the next-token distribution at the pivot's position, with
and without the hook. Reported per line: p(success-side token) before and after (for lines whose
success side was not measured: p(failure-side token), which should fall), and whether the hook
matched the line's own context. ``--compare-caa`` also scores, with the same hook, contrastive
activation addition (the residual after the success-side token minus that after the failure-side
token at the same context) in place of each line's vector.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # consumers.optillm_steering: optillm's steering module, unmodified


def score(model, tok, steering, folder: str, rows: list[dict]) -> list[dict]:
    """Per row: p(target) without and with optillm's hook, and which line the hook matched."""
    import torch

    layer = rows[0]["steering_layer"]
    manager = steering.SteeringVectorManager(folder, target_layer=layer, device="cpu")
    manager.create_tokenized_contexts(tok)
    out = []
    for row in rows:
        ids = row["pivot_context_ids"]
        target = row["success_token_id"] if row["success_token_id"] is not None else row["failure_token_id"]
        rises = row["success_token_id"] is not None
        with torch.inference_mode():
            base = torch.softmax(model(input_ids=torch.tensor([ids]), logits_to_keep=1).logits[0, -1].float(), -1)
        installed = steering.install_steering_hooks(model, manager, tok)
        try:
            hook = installed[0][0]
            hook.reset()
            hook.update_token_history(list(ids))
            hook.update_context(tok.decode(ids))
            hook.try_match()
            matched = hook.current_vector is not None and hook.current_vector["pivot_context"] == row["pivot_context"]
            with torch.inference_mode():
                steered = torch.softmax(
                    model(input_ids=torch.tensor([ids]), logits_to_keep=1).logits[0, -1].float(), -1
                )
        finally:
            steering.remove_steering_hooks(installed)
        p0, p1 = float(base[target]), float(steered[target])
        strength = manager.get_steering_strength(row["reasoning_pattern"])
        added = min(max(min(max(strength, 0.1), 2.0) * min(max(abs(row["prob_delta"]), 0.1), 2.0), 0.0), 3.0)
        out.append(
            {
                "target": "success" if rises else "failure",
                "p_before": p0,
                "p_after": p1,
                "moved_right_way": (p1 > p0) if rises else (p1 < p0),
                "matched_own_line": bool(matched),
                "added_norm": added,
                "pattern": row["reasoning_pattern"],
            }
        )
    return out


def summary(scored: list[dict]) -> dict:
    import numpy as np

    n = len(scored)
    right = sum(r["moved_right_way"] for r in scored)
    ratio = [np.log(max(r["p_after"], 1e-30) / max(r["p_before"], 1e-30)) for r in scored]
    signed = [x if r["target"] == "success" else -x for x, r in zip(ratio, scored)]
    return {
        "lines": n,
        "moved_right_way": right,
        "share": right / n if n else float("nan"),
        "success_side_lines": sum(r["target"] == "success" for r in scored),
        "matched_own_line": sum(r["matched_own_line"] for r in scored),
        "median_log_ratio_toward_success": float(np.median(signed)),
        "median_abs_change_in_p": float(np.median([abs(r["p_after"] - r["p_before"]) for r in scored])),
        "median_added_norm": float(np.median([r["added_norm"] for r in scored])),
        "patterns": sorted({r["pattern"] for r in scored}),
    }


def main() -> None:
    from consumers import optillm_steering

    from pts.models import load_model

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steering-dir", required=True, help="folder holding the steering JSONL")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--compare-caa", action="store_true")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    started = time.time()
    steering = optillm_steering()
    rows = [json.loads(line) for p in Path(args.steering_dir).glob("*.jsonl") for line in open(p) if line.strip()]
    loaded = load_model(args.model, device="cpu", dtype="float32")
    model, tok = loaded.model, loaded.tokenizer
    report = {"model": args.model, "steering_layer": rows[0]["steering_layer"]}
    report["file"] = summary(score(model, tok, steering, args.steering_dir, rows))
    if args.compare_caa:
        from pts.export.steering import context_activations

        both = [r for r in rows if r["success_token_id"] is not None and r["failure_token_id"] is not None]
        layer = rows[0]["steering_layer"]
        s, _ = context_activations(model, [[*r["pivot_context_ids"], r["success_token_id"]] for r in both], [layer])
        f, _ = context_activations(model, [[*r["pivot_context_ids"], r["failure_token_id"]] for r in both], [layer])
        caa = [dict(r, steering_vector=(s[layer][i] - f[layer][i]).tolist()) for i, r in enumerate(both)]
        grad_only = summary(score(model, tok, steering, args.steering_dir, both))
        with tempfile.TemporaryDirectory() as tmp:
            with open(Path(tmp) / "caa.jsonl", "w") as fh:
                fh.writelines(json.dumps(r) + "\n" for r in caa)
            report["caa_same_lines"] = summary(score(model, tok, steering, tmp, caa))
            shutil.rmtree(Path(tmp) / ".cache", ignore_errors=True)
        report["gradient_same_lines"] = grad_only
    report["seconds"] = round(time.time() - started, 1)
    print(json.dumps(report, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
