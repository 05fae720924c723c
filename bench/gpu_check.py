"""The checks a lent GPU machine can run in one call (see bench/gpu_check.sh and docs/engines.md, "GPU check").

Nothing can be downloaded on that machine and the embedded GGUF is too large to carry, so the model is
SmolLM2-135M's architecture and tokenizer with random weights (seeded, the same on every run). Two steps:

    python bench/gpu_check.py prepare                      # here: config, tokenizer, a 2-query dataset
    python bench/gpu_check.py check --out "$OUT"           # there (bench/gpu_check.sh does this)

``check`` prints, in one run on the GPU:
1. pts's HF engine tokens/s at several batch sizes against HF ``generate`` (``num_return_sequences``) on the
   same prompt, in bfloat16 and float32, every row making exactly ``--new`` tokens;
2. the same seeded rollouts drawn in float32 on the GPU and on the CPU: the share with identical tokens and
   the largest log-prob difference;
3. ``pts run`` on the random model and the 2-query dataset, float32, on the GPU and on the CPU, and whether
   the two wrote the same records (bench/compare_records.py);
4. only where ``vllm`` is importable: the vLLM engine's tokens/s against raw vLLM ``LLM.generate`` on the same
   prompt, and ``pts run --engine vllm`` on the same dataset (its samples differ from the HF engine's by design:
   different random streams, so only the counts are printed).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ASSETS = Path("build/gpu-check")
PROMPT = "A farmer has 17 sheep and buys 8 more, then sells 5. How many sheep does the farmer have now?"
SUMS = [("2 + 6", 8), ("7 + 5", 12)]


def prepare(assets: Path) -> None:
    """Write the model's config and tokenizer (no weights) and a 2-query dataset into ``assets`` (a few MB)."""
    from pts.models import gguf_cache_dir, load_model, resolve_alias

    alias = resolve_alias("smollm2-135m")
    load_model("smollm2-135m", device="cpu", dtype="float32")  # makes sure the dequantized cache exists
    source = gguf_cache_dir(alias.locate())
    model_dir = assets / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    for f in source.iterdir():
        if f.is_file() and not f.name.endswith((".safetensors", ".bin")):
            shutil.copy(f, model_dir / f.name)
    with open(assets / "sums.jsonl", "w", encoding="utf-8") as out:
        for question, answer in SUMS:
            out.write(json.dumps({"question": f"What is {question}? Answer with the number.", "answer": answer}) + "\n")
    size = sum(f.stat().st_size for f in assets.rglob("*") if f.is_file())
    print(f"wrote {assets} ({size / 2**20:.1f} MiB): carry it with the run (carry: [{str(assets)!r}])")


def random_model(assets: Path, where: Path, layers: int | None) -> Path:
    """A HF directory at ``where`` with the config and tokenizer of ``assets`` and seeded random weights."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(assets / "model")
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the cache was dequantized from GGUF; the random model is plain
    if layers:
        config.num_hidden_layers = layers
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    where.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(where)
    for f in (assets / "model").iterdir():
        if f.name != "config.json":
            shutil.copy(f, where / f.name)
    return where


def timed(fn):
    torch_sync()
    t = time.perf_counter()
    out = fn()
    torch_sync()
    return out, time.perf_counter() - t


def torch_sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def engine_vs_generate(model_dir: Path, device: str, batches: list[int], new: int) -> None:
    """Step 1: pts's HF engine against HF generate on the same prompt, each dtype in one process."""
    import torch

    from pts.engines.base import RolloutRequest, SamplingParams
    from pts.engines.hf import HFEngine
    from pts.models import load_model

    params = SamplingParams(temperature=0.6, top_p=0.95, top_k=20, seed=0)
    for dtype in ("bfloat16", "float32"):
        lm = load_model(str(model_dir), device=device, dtype=dtype)
        prompt = tuple(lm.tokenizer(PROMPT)["input_ids"])
        for b in batches:
            gen_rate = generate_rate(lm, prompt, b, new)
            eng = HFEngine.from_loaded(lm, batch_size=b)
            eng.eos_token_ids = frozenset()  # every row runs to `new` tokens, like min_new_tokens
            eng.sample([RolloutRequest(prompt, 4, 4)], params)  # warm-up
            res, dt = timed(lambda: eng.sample([RolloutRequest(prompt, b, new)], params))  # noqa: B023
            rate = sum(len(r.token_ids) for r in res[0]) / dt
            print(
                f"[engine] {device} {dtype} B={b}: pts HF engine {rate:8.0f} tok/s, HF generate {gen_rate:8.0f} tok/s, "
                f"ratio {rate / gen_rate:.2f}"
            )
        del lm
        torch.cuda.empty_cache() if torch.cuda.is_available() else None


def generate_rate(lm, prompt: tuple[int, ...], b: int, new: int) -> float:
    """Tokens/s of HF ``generate`` drawing ``b`` samples of exactly ``new`` tokens from ``prompt`` (after a warm-up)."""
    import torch

    ids = torch.tensor([prompt], device=lm.model.device)
    kwargs = dict(
        attention_mask=torch.ones_like(ids),
        do_sample=True,
        temperature=0.6,
        top_p=0.95,
        top_k=20,
        max_new_tokens=new,
        min_new_tokens=new,
        num_return_sequences=b,
        pad_token_id=lm.tokenizer.pad_token_id or 0,
    )
    with torch.inference_mode():
        lm.model.generate(ids, **kwargs)
        out, dt = timed(lambda: lm.model.generate(ids, **kwargs))
    return (out.shape[1] - len(prompt)) * b / dt


def same_rollouts(model_dir: Path, device: str) -> None:
    """Step 2: seeded float32 rollouts on ``device`` and on the CPU."""
    from pts.engines.base import RolloutRequest, SamplingParams
    from pts.engines.hf import HFEngine
    from pts.models import load_model

    params = SamplingParams(temperature=0.6, top_p=0.95, top_k=20)
    drawn = {}
    for where in (device, "cpu"):
        lm = load_model(str(model_dir), device=where, dtype="float32")
        prompts = [tuple(lm.tokenizer(f"What is {q}?")["input_ids"]) for q, _ in SUMS * 4]
        requests = [RolloutRequest(p, 8, 32, seed=1000 + i) for i, p in enumerate(prompts)]
        drawn[where] = HFEngine.from_loaded(lm, batch_size=64).sample(requests, params)
    pairs = [(a, b) for ra, rb in zip(drawn[device], drawn["cpu"]) for a, b in zip(ra, rb)]
    same = sum(a.token_ids == b.token_ids for a, b in pairs)
    worst = max(
        (abs(x - y) for a, b in pairs if a.token_ids == b.token_ids for x, y in zip(a.logprobs, b.logprobs)),
        default=0.0,
    )
    print(
        f"[rollouts] float32 {device} against cpu: {same}/{len(pairs)} rollouts with identical tokens; "
        f"largest log-prob difference on those {worst:.2e}"
    )


def pts_run(model_dir: Path, assets: Path, out: Path, device: str, engine: str = "hf", label: str = "") -> Path:
    """``pts run`` on the random model and the 2-query dataset; returns the output path."""
    path = out / f"records-{engine}-{label or device}.jsonl"
    cmd = [
        sys.executable, "-m", "pts", "run", "--engine", engine, "--model", str(model_dir), "--device", device,
        "--dtype", "float32", "--dataset", str(assets / "sums.jsonl"), "--oracle", "math",
        "--min-prob", "0", "--max-prob", "1", "--num-samples", "4", "--max-generations", "2",
        "--max-new-tokens", "24", "--verify-samples", "8", "--output-path", str(path), "--no-progress", "--overwrite",
    ]  # fmt: skip
    t = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    print(
        f"[pts run] --engine {engine} --device {device} float32: exit {done.returncode}, {time.perf_counter() - t:.0f} s"
    )
    print("  " + (done.stdout.strip() or done.stderr.strip()[-1500:]).replace("\n", "\n  "))
    return path


def vllm_checks(model_dir: Path, assets: Path, out: Path, new: int) -> None:
    """Step 4 (only with vllm importable): the vLLM engine against raw vLLM, then pts run --engine vllm."""
    from vllm import LLM
    from vllm import SamplingParams as VSamplingParams

    from pts.engines.base import RolloutRequest, SamplingParams
    from pts.engines.vllm import VLLMEngine

    eng = VLLMEngine.from_spec(str(model_dir), device="cuda", dtype="bfloat16", max_num_seqs=64)
    prompt = tuple(eng.tokenizer(PROMPT)["input_ids"])
    params = SamplingParams(temperature=0.6, top_p=0.95, top_k=20, seed=0)
    eng.eos_token_ids = frozenset()
    eng.sample([RolloutRequest(prompt, 4, 4)], params)
    res, dt = timed(lambda: eng.sample([RolloutRequest(prompt, 64, new)], params))
    rate = sum(len(r.token_ids) for r in res[0]) / dt
    llm: LLM = eng.llm
    raw = VSamplingParams(n=64, max_tokens=new, min_tokens=new, ignore_eos=True, temperature=0.6, top_p=0.95, top_k=20)
    outs, dt_raw = timed(lambda: llm.generate([{"prompt_token_ids": list(prompt)}], raw, use_tqdm=False))
    raw_rate = sum(len(c.token_ids) for o in outs for c in o.outputs) / dt_raw
    print(
        f"[vllm] bf16 n=64: pts vLLM engine {rate:.0f} tok/s, raw vLLM {raw_rate:.0f} tok/s, ratio {rate / raw_rate:.2f}"
    )
    eng.close()
    pts_run(model_dir, assets, out, "cuda", engine="vllm")


def importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:
        return False


def check(assets: Path, out: Path, device: str, layers: int | None, batches: list[int], new: int) -> None:
    import torch

    if not (assets / "model" / "config.json").is_file():
        sys.exit(f"gpu_check: {assets}/model is missing: run 'python bench/gpu_check.py prepare' here and carry it")
    if device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA device here (pass --device cpu to try the script on a CPU)")
    out.mkdir(parents=True, exist_ok=True)
    name = torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"
    print(f"[machine] {name}; torch {torch.__version__}; python {sys.version.split()[0]}")
    model_dir = random_model(assets, Path("/tmp/pts-gpu-check/random-smollm2"), layers)
    engine_vs_generate(model_dir, device, batches, new)
    same_rollouts(model_dir, device)
    here, cpu = pts_run(model_dir, assets, out, device, label="device"), pts_run(model_dir, assets, out, "cpu")
    sys.path.insert(0, str(Path(__file__).parent))
    from compare_records import compare

    diff = compare(here, cpu) if here.is_file() and cpu.is_file() else ["an output is missing"]
    print(f"[records] {device} against cpu, float32: " + ("the same" if not diff else f"{len(diff)} differences"))
    for line in diff[:10]:
        print(f"  {line}")
    if not importable("vllm"):
        print("[vllm] not importable here: vLLM checks not run")
    else:
        vllm_checks(model_dir, assets, out, new)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="step", required=True)
    p = sub.add_parser("prepare", help="write the assets to carry (here, before the device run)")
    p.add_argument("--assets", type=Path, default=ASSETS)
    c = sub.add_parser("check", help="run the checks (on the GPU machine)")
    c.add_argument("--assets", type=Path, default=ASSETS)
    c.add_argument("--out", type=Path, default=Path("bench-out/gpu-check"))
    c.add_argument("--device", default="cuda")
    c.add_argument("--layers", type=int, help="fewer layers (a quick try of the script on a CPU)")
    c.add_argument("--batches", type=int, nargs="+", default=[64, 256])
    c.add_argument("--new", type=int, default=64)
    args = ap.parse_args()
    if args.step == "prepare":
        prepare(args.assets)
    else:
        check(args.assets, args.out, args.device, args.layers, args.batches, args.new)


if __name__ == "__main__":
    main()
