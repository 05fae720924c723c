"""End-to-end `pts run` against a baseline that samples the way the original PTS tool does.

Run (defaults: the first 4 queries of the default dataset, 10 samples, 10 solutions per query,
512 new tokens; about 20-25 minutes on 2 idle cores with the third mode, most of it the baseline):

    python bench/end_to_end.py --modes pts,baseline,pts-no-early-stop

On a busy machine pass ``--threads 1``: two torch threads per process on oversubscribed cores
slowed HF ``generate`` about tenfold (OpenMP spin-waits), which distorts the baseline most.
``--report-only`` rebuilds the table and JSON from an output directory without running anything.
``--judge F.jsonl ...`` runs no mode: it judges the pivots of existing ``pts run`` outputs (e.g. of
``make run``: ``--queries 6`` covers the default dataset) and prints how many held.

Modes, each in its own subprocess (fresh model load, peak RSS of that process alone):

* ``pts``: ``pts run`` as shipped: HF engine (prefix sharing, batching across prefixes and
  queries), ``--dtype auto`` (bf16 on a CPU with bf16), early stop by the oracle,
  ``--parallel``, ``--confidence`` and ``--batch-size`` at the defaults of ``RunConfig``.
* ``baseline``: the same search on ``OriginalStyleEngine`` (bench/baseline_engine.py): HF
  ``generate`` with ``num_return_sequences=5``, prefixes decoded and re-encoded, one prefix per
  call, no early stop, fixed samples (``confidence=None``), one query at a time
  (``parallel=1``), fp32 weights (the original loads the model with ``from_pretrained``'s
  default dtype, which is float32 in the transformers 4.x it was written for, on CPU).
* ``pts-today``: ``pts`` as it was before pooled evidence and verification (``pool=False,
  verify=False``): every candidate the subdivision flags is written, with the search's numbers.
* ``pts-no-early-stop`` (optional): ``pts`` with ``early_stop=False``, to count the rollout
  tokens that early stop saves (rollouts draw the same tokens until the stop point, so the
  searches mostly follow the same path).

All modes get the same tasks, seeds and search settings. A first process measures the
prefill ceiling of ``bench/engine_throughput.py`` (8x256 fp32 forward, best of 3), so each
mode's rollout tokens/s can be read as a share of what the CPU can do in the same run
(``--no-ceiling`` skips it: a minute on 2 cores, when only the modes' ratios matter). Then a judge process re-estimates every reported pivot with ``--judge-samples``
fresh rollouts before and after the pivot token (the pts HF engine in ``--judge-dtype``, the
task's oracle, seeds unrelated to the searches'), and a pivot counts as precise when
|p_after - p_before| is still at least
``--prob-threshold`` (``precision``) and, stricter, with the same sign as reported
(``precision_same_sign``).

Writes into ``--output-dir``: ``<mode>.jsonl`` (the pivot records), ``<mode>.summary.json``
(counts, times, peak RSS, per-query results), ``verify.json`` (per-pivot re-estimates) and the
result file ``--json`` (default ``<output-dir>/end_to_end.json``). Prints a table with ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

MODES = ("pts", "pts-today", "baseline", "pts-no-early-stop")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--queries", type=int, default=4, help="first N queries of --dataset (default 4)")
    ap.add_argument(
        "--offset", type=int, default=0, help="skip this many queries first (to judge more queries in several runs)"
    )
    ap.add_argument("--dataset", default=None, help="dataset spec (default: pts.tasks.sources.DEFAULT_DATASET)")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--num-samples", type=int, default=10)
    ap.add_argument("--max-new-tokens", type=int, default=512)
    ap.add_argument("--max-generations", type=int, default=10)
    ap.add_argument("--prob-threshold", type=float, default=0.2)
    ap.add_argument("--min-prob", type=float, default=0.2)
    ap.add_argument("--max-prob", type=float, default=0.8)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument(
        "--modes", default="pts,baseline", help=f"comma-separated, from {', '.join(MODES)} (default pts,baseline)"
    )
    ap.add_argument(
        "--confidence", type=float, default=None, help="--confidence of the pts modes (default: RunConfig's default)"
    )
    ap.add_argument("--baseline-dtype", default="float32", help="dtype of the baseline model (default float32)")
    ap.add_argument("--pts-dtype", default="auto", help="dtype of the pts modes (default auto, as `pts run`)")
    ap.add_argument("--judge-dtype", default="float32", help="dtype of the judge's HF engine (default float32)")
    ap.add_argument("--judge-samples", type=int, default=64, help="fresh rollouts per end when judging a pivot")
    ap.add_argument(
        "--verify-max",
        type=int,
        default=0,
        help="judge at most this many pivots per mode, a seeded random subset (0 = all)",
    )
    ap.add_argument("--no-verify", action="store_true", help="skip the pivot precision step")
    ap.add_argument(
        "--no-ceiling", action="store_true", help="skip the prefill ceiling (the table's share of ceiling is n/a)"
    )
    ap.add_argument(
        "--judge",
        nargs="+",
        default=None,
        metavar="RECORDS",
        help="run no mode: judge the pivots of these `pts run` outputs (their queries must be among --dataset's "
        "--offset/--queries) and write verify.json and --json",
    )
    ap.add_argument(
        "--report-only",
        action="store_true",
        help="run nothing: rebuild the table and --json from the files already in --output-dir",
    )
    ap.add_argument("--threads", type=int, default=None, help="torch threads in every process (default: torch's)")
    ap.add_argument("--output-dir", default="bench-out/end_to_end")
    ap.add_argument("--json", default=None, help="result file (default <output-dir>/end_to_end.json)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)  # internal: run one mode / the judge
    args = ap.parse_args(argv)
    args.mode_list = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in args.mode_list if m not in MODES]
    if bad or not args.mode_list:
        ap.error(f"--modes: unknown {bad or 'empty'}; choose from {', '.join(MODES)}")
    if args.queries < 1 or args.num_samples < 1 or args.max_new_tokens < 1 or args.judge_samples < 1:
        ap.error("--queries, --num-samples, --max-new-tokens and --judge-samples must be at least 1")
    return args


# ---------------------------------------------------------------- helpers used by every process


def load_bench_tasks(args: argparse.Namespace):
    from pts.errors import PTSError
    from pts.tasks.sources import DEFAULT_DATASET, load_tasks

    spec = args.dataset or DEFAULT_DATASET
    tasks = load_tasks(spec, max_examples=args.offset + args.queries, seed=args.seed)[args.offset :]
    if len(tasks) < args.queries:
        raise PTSError(f"{spec} has too few rows for --offset {args.offset} --queries {args.queries}")
    return spec, tasks


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (Linux reports KiB, macOS bytes)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def write_json(path: Path, data: Any) -> None:
    from pts.store import atomic_write

    with atomic_write(path) as f:
        json.dump(data, f, indent=2)
        f.write("\n")


# ---------------------------------------------------------------- child: one search mode


def run_config(args: argparse.Namespace, mode: str, spec: str, output: Path):
    """The RunConfig of ``mode``; everything the bench does not set is RunConfig's default (what `pts run` does)."""
    from pts.jobs.run import RunConfig

    common = {
        "model": args.model,
        "dataset": spec,
        "max_examples": args.queries,
        "num_samples": args.num_samples,
        "max_new_tokens": args.max_new_tokens,
        "max_generations": args.max_generations,
        "prob_threshold": args.prob_threshold,
        "min_prob": args.min_prob,
        "max_prob": args.max_prob,
        "seed": args.seed,
        "output_path": str(output),
        "overwrite": True,
        "progress": False,
    }
    if mode == "baseline":
        return RunConfig(**common, dtype=args.baseline_dtype, early_stop=False, parallel=1, confidence=None)
    pts = dict(common, dtype=args.pts_dtype)
    if args.confidence is not None:
        pts["confidence"] = args.confidence
    if mode == "pts-no-early-stop":
        pts["early_stop"] = False
    if mode == "pts-today":
        pts.update(pool=False, verify=False)
    return RunConfig(**pts)


def child_mode(args: argparse.Namespace, mode: str) -> None:
    import torch

    from pts.models import load_model

    out_dir = Path(args.output_dir)
    spec, tasks = load_bench_tasks(args)
    config = run_config(args, mode, spec, out_dir / f"{mode}.jsonl")
    config.validate()
    t0 = time.perf_counter()
    loaded = load_model(config.model, device="cpu", dtype=config.dtype)
    if mode == "baseline":
        from baseline_engine import OriginalStyleEngine  # bench/baseline_engine.py, beside this script

        engine = OriginalStyleEngine.from_loaded(loaded)
    else:
        from pts.engines.hf import HFEngine

        engine = HFEngine.from_loaded(loaded, batch_size=config.batch_size)
    load_s = time.perf_counter() - t0

    from pts.jobs.run import run

    cpu0 = cpu_seconds()
    summary = run(config, engine=engine, tasks=tasks)
    result = {
        "mode": mode,
        "engine": type(engine).__name__,
        "model_id": engine.model_id,
        "dtype": loaded.dtype,
        "torch_threads": torch.get_num_threads(),
        "config": asdict(config),
        "records": str(out_dir / f"{mode}.jsonl"),
        "run_s": summary.seconds,
        "load_s": load_s,
        "cpu_s": cpu_seconds() - cpu0,
        "candidates": summary.candidates,
        "dropped": summary.dropped,
        "peak_rss_bytes": peak_rss_bytes(),
        "searched": summary.searched,
        "skipped": summary.skipped,
        "pivots": summary.pivots,
        "positive": summary.positive,
        "negative": summary.negative,
        "rollouts": summary.rollouts,
        "rollout_tokens": summary.rollout_tokens,
        "engine_calls": sum(r.engine_calls for r in summary.results),
        "generate_calls": getattr(engine, "calls", None) if mode == "baseline" else None,
        "items": {r.item_id: dict(r.summary(), engine_calls=r.engine_calls) for r in summary.results},
    }
    write_json(out_dir / f"{mode}.summary.json", result)


def child_ceiling(args: argparse.Namespace) -> None:
    """The prefill ceiling of bench/engine_throughput.py, in its own process (so no mode's peak RSS holds it)."""
    from engine_throughput import ceiling

    from pts.models import load_model

    model = load_model(args.model, device="cpu", dtype="float32").model
    write_json(Path(args.output_dir) / "ceiling.json", {"ceiling_tok_s": ceiling(model, keep=0)})


# ---------------------------------------------------------------- child: the judge


def child_verify(args: argparse.Namespace) -> None:
    """Re-estimate each reported pivot with --judge-samples fresh rollouts per end on the pts HF engine."""
    import random

    from pts.engines.hf import HFEngine
    from pts.jobs.run import RunConfig
    from pts.models import load_model
    from pts.records import stable_seed
    from pts.search.estimate import SuccessEstimator
    from pts.search.searcher import SearchSettings, opens_think_block
    from pts.stats import wilson_interval
    from pts.store import read_jsonl
    from pts.work import LocalPool, Work

    out_dir = Path(args.output_dir)
    _, tasks = load_bench_tasks(args)
    by_id = {t.item_id: t for t in tasks}
    picked: dict[str, list[dict]] = {}
    files = {p: Path(p) for p in args.judge} if args.judge else {m: out_dir / f"{m}.jsonl" for m in args.mode_list}
    for mode, path in files.items():
        rows = read_jsonl(path) if path.exists() else []
        if args.verify_max and len(rows) > args.verify_max:
            rows = random.Random(stable_seed(args.seed, "verify-subset", mode)).sample(rows, args.verify_max)
        picked[mode] = rows

    t0 = time.perf_counter()
    loaded = load_model(args.model, device="cpu", dtype=args.judge_dtype)
    engine = HFEngine.from_loaded(loaded, batch_size=RunConfig().batch_size)
    tok = engine.tokenizer
    samples = args.judge_samples
    sampling = SearchSettings(seed=args.seed).sampling()  # the search's temperature/top-p/top-k/min-p

    # One estimator per query, shared by both modes' pivots (memo by prefix ids); each asks for all its
    # prefixes at once and the calls of all queries merge into one engine call.
    wanted: dict[str, set[tuple[int, ...]]] = {}
    prompts: dict[str, list[int]] = {}
    for rows in picked.values():
        for r in rows:
            ids, n = r["pivot_context_ids"], r["prompt_length"]
            prompt = prompts.setdefault(r["dataset_item_id"], ids[:n])
            if prompt != ids[:n]:
                raise RuntimeError(f"item {r['dataset_item_id']}: the modes' prompts differ")
            response = tuple(ids[n:])
            wanted.setdefault(r["dataset_item_id"], set()).update({response, response + (r["pivot_token_id"],)})
    pool = LocalPool(
        Work(
            lambda: engine,
            lambda shared: shared,
            lambda shared, item: judge(item),
            concurrency=max(1, len(prompts)),
            merge=True,
        ),
        engine,
    )
    estimators = {}
    for item, prompt in prompts.items():
        prompt_text = tok.decode(prompt, skip_special_tokens=False)
        estimators[item] = SuccessEstimator(
            pool.state,
            by_id[item],
            prompt,
            sampling,
            num_samples=samples,
            max_new_tokens=args.max_new_tokens,
            seed=stable_seed(args.seed, "independent judge", by_id[item].dataset_id, item),
            judge_prefix="<think>" if opens_think_block(prompt_text) else "",
            early_stop=True,
        )

    def judge(item: str):
        prefixes = sorted(wanted[item], key=lambda p: (len(p), p))
        estimates, _ = estimators[item].estimate(prefixes, samples=samples)
        return dict(zip(prefixes, estimates))

    found: dict[str, Any] = {}
    pool.map(list(estimators), found.__setitem__)
    judge_s = time.perf_counter() - t0

    result: dict[str, Any] = {
        "samples": samples,
        "judge_dtype": loaded.dtype,
        "judge_s": judge_s,
        "rollouts": sum(e.rollouts for e in estimators.values()),
        "rollout_tokens": sum(e.rollout_tokens for e in estimators.values()),
        "peak_rss_bytes": peak_rss_bytes(),
        "modes": {},
    }
    for mode, rows in picked.items():
        checked = []
        for r in rows:
            ids, n = r["pivot_context_ids"], r["prompt_length"]
            response = tuple(ids[n:])
            before = found[r["dataset_item_id"]][response]
            after = found[r["dataset_item_id"]][response + (r["pivot_token_id"],)]
            delta = after.p - before.p
            checked.append(
                {
                    "id": r["id"],
                    "dataset_item_id": r["dataset_item_id"],
                    "position": r["position"],
                    "pivot_token": r["pivot_token"],
                    "prob_delta": r["prob_delta"],
                    "verify_before": [before.successes, before.samples],
                    "verify_after": [after.successes, after.samples],
                    "verify_delta": delta,
                    "holds": abs(delta) >= args.prob_threshold - 1e-9,
                    "holds_same_sign": abs(delta) >= args.prob_threshold - 1e-9
                    and (delta > 0) == (r["prob_delta"] > 0),
                }
            )
        k, held = len(checked), sum(c["holds"] for c in checked)
        result["modes"][mode] = {
            "judged": k,
            "precision": held / k if k else None,
            "precision_ci95": list(wilson_interval(held, k, 0.95)) if k else None,
            "precision_same_sign": sum(c["holds_same_sign"] for c in checked) / k if k else None,
            "pivots": checked,
        }
    write_json(out_dir / "verify.json", result)


# ---------------------------------------------------------------- parent: orchestration and report


def spawn(argv: list[str], child: str) -> float:
    """Run this script as ``--child child`` with the same options; return its wall time."""
    cmd = [sys.executable, os.path.abspath(__file__), *argv, "--child", child]
    env = dict(os.environ, HF_HUB_OFFLINE=os.environ.get("HF_HUB_OFFLINE", "1"))
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, check=False)
    if proc.returncode != 0:
        sys.exit(f"end_to_end: the {child} process failed with exit status {proc.returncode}")
    return time.perf_counter() - t0


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def searched(mode: dict) -> set[str]:
    return {i for i, r in mode["items"].items() if r["status"] == "searched"}


def report(args: argparse.Namespace, modes: dict[str, dict], verify: dict | None) -> dict[str, Any]:
    """The result document: per-mode numbers, ratios and the early-stop saving."""
    out: dict[str, Any] = {"modes": modes, "verify": None, "ratios": {}}
    if verify is not None:
        out["verify"] = {k: v for k, v in verify.items() if k != "modes"}
        for mode, v in verify["modes"].items():
            modes[mode]["precision"] = v["precision"]
            modes[mode]["precision_ci95"] = v.get("precision_ci95")
            modes[mode]["precision_same_sign"] = v["precision_same_sign"]
            modes[mode]["judged"] = v["judged"]
    pts, base = modes.get("pts"), modes.get("baseline")
    if pts and base:
        both = sorted(set(pts["items"]) & set(base["items"]))
        matched = [i for i in both if pts["items"][i]["status"] == base["items"][i]["status"] == "searched"]
        tokens = {m: sum(modes[m]["items"][i]["rollout_tokens"] for i in matched) for m in ("pts", "baseline")}
        out["ratios"] = {
            "run_time_baseline_over_pts": ratio(base["run_s"], pts["run_s"]),
            "cpu_time_baseline_over_pts": ratio(base["cpu_s"], pts["cpu_s"]),
            "rollout_tokens_baseline_over_pts": ratio(base["rollout_tokens"], pts["rollout_tokens"]),
            "rollouts_baseline_over_pts": ratio(base["rollouts"], pts["rollouts"]),
            "peak_rss_baseline_over_pts": ratio(base["peak_rss_bytes"], pts["peak_rss_bytes"]),
            "searched_by_both": matched,
            "same_queries_searched": searched(pts) == searched(base),
            "rollout_tokens_baseline_over_pts_on_queries_searched_by_both": ratio(tokens["baseline"], tokens["pts"]),
        }
    today = modes.get("pts-today")
    if pts and today:
        out["new_over_today"] = {
            "rollout_tokens": ratio(pts["rollout_tokens"], today["rollout_tokens"]),
            "rollouts": ratio(pts["rollouts"], today["rollouts"]),
            "run_time": ratio(pts["run_s"], today["run_s"]),
            "same_queries_searched": searched(pts) == searched(today),
        }
    free = modes.get("pts-no-early-stop")
    if pts and free:
        out["early_stop"] = {
            "rollout_tokens_with": pts["rollout_tokens"],
            "rollout_tokens_without": free["rollout_tokens"],
            "tokens_saved": free["rollout_tokens"] - pts["rollout_tokens"],
            "fraction_saved": 1 - pts["rollout_tokens"] / free["rollout_tokens"] if free["rollout_tokens"] else None,
            "run_time_without_over_with": ratio(free["run_s"], pts["run_s"]),
        }
    return out


def fmt(v: Any, kind: str = "") -> str:
    if v is None:
        return "-"
    if kind == "gib":
        return f"{v / 2**30:.2f}"
    if kind == "ci":
        return f"{100 * v[0]:.0f}-{100 * v[1]:.0f}%"
    if kind == "pct":
        return f"{100 * v:.0f}%"
    if kind == "x":
        return f"{v:.2f}x"
    if isinstance(v, float):
        return f"{v:.1f}"
    return str(v)


def print_table(args: argparse.Namespace, doc: dict[str, Any]) -> None:
    modes = doc["modes"]
    names = list(modes)
    rows = [
        ("engine", lambda m: m["engine"], ""),
        ("dtype", lambda m: m["dtype"], ""),
        ("early stop / parallel", lambda m: f"{m['config']['early_stop']} / {m['config']['parallel']}", ""),
        ("queries searched / skipped", lambda m: f"{m['searched']} / {m['skipped']}", ""),
        ("run time (s)", lambda m: m["run_s"], ""),
        ("cpu time (s)", lambda m: m["cpu_s"], ""),
        ("model load (s)", lambda m: m["load_s"], ""),
        ("rollouts", lambda m: m["rollouts"], ""),
        ("rollout tokens", lambda m: m["rollout_tokens"], ""),
        ("rollout tokens/s", lambda m: m["rollout_tokens"] / m["run_s"], ""),
        ("prefill ceiling (tok/s)", lambda m: m.get("ceiling_tok_s"), ""),
        ("  share of ceiling", lambda m: ratio(m["rollout_tokens"] / m["run_s"], m.get("ceiling_tok_s")), "pct"),
        ("cpu / wall", lambda m: ratio(m["cpu_s"], m["run_s"]), "x"),
        ("candidates (dropped)", lambda m: f"{m.get('candidates', '-')} ({m.get('dropped', '-')})", ""),
        ("engine calls", lambda m: m["engine_calls"], ""),
        ("pivots (+/-)", lambda m: f"{m['pivots']} ({m['positive']}/{m['negative']})", ""),
        ("peak RSS (GiB)", lambda m: m["peak_rss_bytes"], "gib"),
        ("pivot precision", lambda m: m.get("precision"), "pct"),
        ("  95% interval", lambda m: m.get("precision_ci95"), "ci"),
        ("  same sign", lambda m: m.get("precision_same_sign"), "pct"),
        ("  pivots judged", lambda m: m.get("judged"), ""),
    ]
    width = max(14, *(len(n) + 2 for n in names), *(len(str(modes[n]["engine"])) + 2 for n in names))
    print(f"\n{'':<28}" + "".join(f"{n:>{width}}" for n in names))
    for label, get, kind in rows:
        print(f"{label:<28}" + "".join(f"{fmt(get(modes[n]), kind):>{width}}" for n in names))
    r = doc.get("ratios") or {}
    if r:
        print("\nbaseline / pts:")
        print(
            f"  run time {fmt(r['run_time_baseline_over_pts'], 'x')}, cpu time {fmt(r['cpu_time_baseline_over_pts'], 'x')}, "
            f"rollout tokens {fmt(r['rollout_tokens_baseline_over_pts'], 'x')}, rollouts {fmt(r['rollouts_baseline_over_pts'], 'x')}, "
            f"peak RSS {fmt(r['peak_rss_baseline_over_pts'], 'x')}"
        )
        print(
            f"  precision: pts {fmt(modes['pts'].get('precision'), 'pct')}, "
            f"baseline {fmt(modes['baseline'].get('precision'), 'pct')}"
        )
        if not r["same_queries_searched"]:
            print(
                f"  note: the modes searched different queries (their initial estimates differ); on the "
                f"{len(r['searched_by_both'])} searched by both, rollout tokens baseline/pts = "
                f"{fmt(r['rollout_tokens_baseline_over_pts_on_queries_searched_by_both'], 'x')}"
            )
    nt = doc.get("new_over_today")
    if nt:
        print(
            f"\npts (pooled + verified) / pts-today: rollout tokens {fmt(nt['rollout_tokens'], 'x')}, "
            f"rollouts {fmt(nt['rollouts'], 'x')}, run time {fmt(nt['run_time'], 'x')}; "
            f"same queries searched: {nt['same_queries_searched']}"
        )
    es = doc.get("early_stop")
    if es:
        print(
            f"\nearly stop: {es['rollout_tokens_with']} rollout tokens with, {es['rollout_tokens_without']} without "
            f"({fmt(es['fraction_saved'], 'pct')} saved), run time without/with {fmt(es['run_time_without_over_with'], 'x')}"
        )
    if doc.get("verify"):
        v = doc["verify"]
        print(
            f"\njudge: {v['samples']} rollouts per estimate, {v['judge_dtype']}, {v['rollouts']} rollouts, {v['judge_s']:.0f} s"
        )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    from pts.errors import PTSError

    if args.child and args.threads:
        import torch

        torch.set_num_threads(args.threads)

    try:
        if args.child == "verify":
            child_verify(args)
        elif args.child == "ceiling":
            child_ceiling(args)
        elif args.child:
            child_mode(args, args.child)
        else:
            parent(args, argv)
    except PTSError as e:
        print(f"end_to_end: error: {e}", file=sys.stderr)
        return 2
    return 0


def parent(args: argparse.Namespace, argv: list[str]) -> None:
    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = Path(args.json) if args.json else out_dir / "end_to_end.json"
    from pts.errors import PTSError
    from pts.store import check_output_path

    check_output_path(json_path)
    load_bench_tasks(args)  # fail on a bad dataset before spending minutes
    if args.judge:
        judge_files(args, argv, out_dir, json_path)
        return
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    wall: dict[str, float] = {}
    modes: dict[str, dict] = {}
    ceiling_path = out_dir / "ceiling.json"
    ceiling_tok_s = None  # with --no-ceiling, a ceiling file of an earlier run is not this run's
    if not args.no_ceiling:
        if not args.report_only:
            print("[end_to_end] measuring the prefill ceiling ...", file=sys.stderr, flush=True)
            wall["ceiling"] = spawn(argv, "ceiling")
        if ceiling_path.exists():
            ceiling_tok_s = json.loads(ceiling_path.read_text())["ceiling_tok_s"]
    for mode in args.mode_list:
        summary = out_dir / f"{mode}.summary.json"
        if not args.report_only:
            print(f"[end_to_end] running {mode} ...", file=sys.stderr, flush=True)
            summary.unlink(missing_ok=True)
            wall[mode] = spawn(argv, mode)
        elif not summary.exists():
            raise PTSError(f"--report-only: {summary} does not exist (run the bench first)")
        modes[mode] = json.loads(summary.read_text())
        modes[mode]["process_wall_s"] = wall.get(mode)
        modes[mode]["ceiling_tok_s"] = ceiling_tok_s
        print(
            f"[end_to_end] {mode}: {modes[mode]['run_s']:.0f} s, {modes[mode]['pivots']} pivots",
            file=sys.stderr,
            flush=True,
        )
    verify = None
    verify_path = out_dir / "verify.json"
    if not args.no_verify and any(modes[m]["pivots"] for m in modes):
        if not args.report_only:
            print("[end_to_end] judging pivots ...", file=sys.stderr, flush=True)
            verify_path.unlink(missing_ok=True)
            wall["verify"] = spawn(argv, "verify")
        if verify_path.exists():
            verify = json.loads(verify_path.read_text())
    doc = report(args, modes, verify)
    doc = {
        "started": started,
        "command": [os.path.basename(sys.executable), "bench/end_to_end.py", *argv],
        "settings": {k: v for k, v in vars(args).items() if k not in ("child", "mode_list")},
        "process_wall_s": wall,
        **doc,
    }
    write_json(json_path, doc)
    print_table(args, doc)
    print(f"\nresults: {json_path}; records and per-pivot checks in {out_dir}/")


def judge_files(args: argparse.Namespace, argv: list[str], out_dir: Path, json_path: Path) -> None:
    """``--judge``: the independent judge alone, on records files written elsewhere (e.g. by ``make run``)."""
    from pts.errors import PTSError

    for path in args.judge:
        if not Path(path).is_file():
            raise PTSError(f"--judge: {path} is not a file")
    wall = spawn(argv, "verify")
    verify = json.loads((out_dir / "verify.json").read_text())
    write_json(
        json_path,
        {
            "command": [os.path.basename(sys.executable), "bench/end_to_end.py", *argv],
            "process_wall_s": {"verify": wall},
            "verify": verify,
        },
    )
    for path, m in verify["modes"].items():
        held = sum(c["holds"] for c in m["pivots"])
        ci = m["precision_ci95"] or [None, None]
        print(f"{path}: {held} of {m['judged']} pivots held (precision {m['precision']}, 95% CI {ci})")
    print(f"\nresults: {json_path}; per-pivot checks in {out_dir}/verify.json")


if __name__ == "__main__":
    sys.exit(main())
