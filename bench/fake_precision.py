"""Precision and recall of the search where the truth is known: planted pivots on the branching fake engine.

Each seed plants pivots whose true changes span the threshold (0.05 to 0.6 by
default) in a random script; rollouts leave the script at random positions and
verdicts are binomial. Every mode searches the same queries with the same root
rollouts (so the same solutions). A record is correct when the true change
across its token (``BranchingFakeEngine.true_p``) is at least the threshold in
size and has the record's sign; recall is over the true pivots of the searched
solutions. Pivotal spans (records of several tokens) are counted apart: one is
correct when the true change across the whole span is at least the threshold
with its sign and no single token in it moves p by the threshold.

    python bench/fake_precision.py --seeds 300 --json bench-out/fake_precision.json
    python bench/fake_precision.py --spans --seeds 300   # spans on (--max-span 4) vs off, planted spans
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import dataclass, field

from pts.engines.fake import (
    BranchingFakeEngine,
    PassFailOracle,
    planted_follow,
    planted_scenario,
    realistic_follow,
    token,
)
from pts.search.searcher import PivotalTokenSearcher, SearchSettings
from pts.tasks.task import Task

PROMPT = "q?"
MODES = {
    "original (--no-pool --no-verify)": dict(pool=False, verify=False),
    "pooled": dict(pool=True, verify=False, bound=False),
    "pooled+verified, no bound (dca1e4c defaults)": dict(pool=True, verify=True, bound=False),
    "verified (no pooling), no bound": dict(pool=False, verify=True, bound=False),
    "bound, bisection (defaults: direct 0)": dict(pool=True, verify=True, direct_at_most=0),
    "bound, verified from both ends (--no-verify-strata)": dict(pool=True, verify=True, verify_strata=False),
    "bound, direct <= 2": dict(pool=True, verify=True, direct_at_most=2),
    "bound, direct <= 4": dict(pool=True, verify=True, direct_at_most=4),
    "bound, direct always": dict(pool=True, verify=True, direct_at_most=10**6),
}
SPAN_MODES = {
    "--max-span 4 (spans on)": dict(pool=True, verify=True, max_span=4),
    "defaults (--max-span 1, spans off)": dict(pool=True, verify=True),
    "spans on, --num-samples 40 --verify-samples 256": dict(
        pool=True, verify=True, num_samples=40, verify_samples=256, max_span=4
    ),
    "spans off, --num-samples 40 --verify-samples 256": dict(
        pool=True, verify=True, num_samples=40, verify_samples=256, max_span=1
    ),
}
SCENARIOS = {
    "planted (flat pi 0.9, uniform filler off script)": {},
    "realistic pi (flat and off-script steps as on the embedded model)": dict(
        flat_follow=realistic_follow, filler_like_script=True
    ),
}


@dataclass
class Tally:
    records: int = 0
    correct: int = 0
    true_pivots: int = 0
    found: int = 0
    rollouts: int = 0
    queries: int = 0
    candidates: int = 0
    spans: int = 0
    spans_correct: int = 0
    true_spans: int = 0
    spans_found: int = 0
    spans_hiding: int = 0
    spans_split: int = 0
    per_seed: list[tuple[int, int]] = field(default_factory=list)

    @property
    def precision(self) -> float:
        return self.correct / self.records if self.records else float("nan")

    @property
    def recall(self) -> float:
        return self.found / self.true_pivots if self.true_pivots else float("nan")


def true_pivots(engine: BranchingFakeEngine, solution: list[int], threshold: float) -> set[tuple]:
    out = set()
    for i in range(len(solution)):
        before, after = engine.true_p(solution[:i]), engine.true_p(solution[: i + 1])
        if abs(after - before) >= threshold - 1e-9:
            out.add((tuple(solution[:i]), solution[i], after > before))
    return out


def true_spans(engine: BranchingFakeEngine, solution: list[int], threshold: float, max_span: int = 4) -> set[tuple]:
    """The shortest runs of 2..max_span tokens of ``solution`` whose true change reaches the threshold while no
    token in them does: ``(context, tokens, rises)``."""
    p = [engine.true_p(solution[:i]) for i in range(len(solution) + 1)]
    single = [abs(p[i + 1] - p[i]) >= threshold - 1e-9 for i in range(len(solution))]
    out = set()
    for a in range(len(solution)):
        for b in range(a + 2, min(len(solution), a + max_span) + 1):
            if any(single[a:b]) or abs(p[b] - p[a]) < threshold - 1e-9:
                continue
            if not any(
                abs(p[d] - p[c]) >= threshold - 1e-9
                for c in range(a, b)
                for d in range(c + 2, b + 1)
                if (c, d) != (a, b)
            ):
                out.add((tuple(solution[:a]), tuple(solution[a:b]), p[b] > p[a]))
    return out


def planted_span_scenario(
    rng: random.Random, length: int = 24, pivots: int = 2, flat_follow: float = 0.9
) -> tuple[list[int], list[float], list[float]]:
    """A random script with ``pivots`` planted single pivots (as :func:`planted_scenario`) and one planted span:
    2 or 3 adjacent steps of one sign, each under the 0.2 threshold (0.1-0.15, or 0.07-0.1 for three), together
    over it."""
    script = [token(rng.choice("abcdefgh")) for _ in range(length)]
    width = rng.choice((2, 3))
    start = rng.randrange(0, length - width)
    sign = rng.choice((-1, 1))
    steps = {start + j: sign * (rng.uniform(0.1, 0.15) if width == 2 else rng.uniform(0.07, 0.1)) for j in range(width)}
    free = [i for i in range(length) if i < start - 1 or i > start + width]
    for i in rng.sample(free, pivots):
        steps[i] = rng.choice((-1, 1)) * rng.uniform(0.05, 0.6)
    p = rng.uniform(0.3, 0.7)
    p_script, follow = [p], []
    for i in range(length):
        delta = steps.get(i, 0.0)
        if delta and not 0.02 <= p + delta <= 0.98:
            delta = -delta if 0.02 <= p - delta <= 0.98 else 0.0
        if delta:
            follow.append(planted_follow(p, delta))
            p += delta
        else:
            follow.append(flat_follow)
        p_script.append(p)
    return script, p_script, follow


def search_one(seed: int, settings: SearchSettings, **scenario):
    """The engine of one planted scenario and the search's result on it."""
    filler = scenario.pop("filler_like_script", False)
    plant = planted_span_scenario if scenario.pop("spans", False) else planted_scenario
    script, p_script, follow = plant(random.Random(seed), **scenario)
    engine = BranchingFakeEngine(
        p_script, script, prompt_length=len(PROMPT), follow=follow, seed=seed, filler_like_script=filler
    )
    result = PivotalTokenSearcher(engine, settings).search(
        Task(PROMPT, "PASS", str(seed), "fake", "fake", PassFailOracle())
    )
    return engine, result


def measure(
    seeds: range,
    modes: dict[str, dict],
    *,
    num_samples: int = 10,
    max_generations: int = 3,
    threshold: float = 0.2,
    **scenario,
) -> dict[str, Tally]:
    """Precision and recall of each mode over ``seeds`` (the same queries and solutions for every mode)."""
    tallies = {name: Tally() for name in modes}
    for seed in seeds:
        for name, mode in modes.items():
            settings = SearchSettings(
                **{
                    "num_samples": num_samples,
                    "max_generations": max_generations,
                    "split_at": "middle",
                    "prob_threshold": threshold,
                    "min_prob": 0.0,
                    "max_prob": 1.0,
                    "seed": seed,
                    "max_new_tokens": scenario.get("length", 24) + 16,
                    **mode,
                }
            )
            engine, result = search_one(seed, settings, **dict(scenario))
            solutions = [trace["solution_ids"] for trace in result.traces]
            truth = set().union(*(true_pivots(engine, s, threshold) for s in solutions)) if solutions else set()
            got = {
                (tuple(r.pivot_context_ids[len(PROMPT) :]), r.pivot_token_id, r.is_positive)
                for r in result.pivots
                if not r.is_span
            }
            spans_truth = set().union(*(true_spans(engine, s, threshold) for s in solutions)) if solutions else set()
            spans = [r for r in result.pivots if r.is_span]
            t = tallies[name]
            t.spans += len(spans)
            t.spans_correct += sum(_span_correct(engine, r, threshold) for r in spans)
            t.spans_hiding += sum(_span_hides_a_pivot(engine, r, threshold) for r in spans)
            t.spans_split += getattr(result, "spans_split", 0)  # 0 for versions before spans were split
            t.true_spans += len(spans_truth)
            t.spans_found += len(
                {(tuple(r.pivot_context_ids[len(PROMPT) :]), tuple(r.span_token_ids), r.is_positive) for r in spans}
                & spans_truth
            )
            t.records += len(got)
            t.correct += len(got & truth)
            t.true_pivots += len(truth)
            t.found += len(got & truth)
            t.rollouts += result.rollouts
            t.candidates += result.candidates
            t.queries += 1
            t.per_seed.append((len(got), len(got & truth)))
    return tallies


def _span_correct(engine: BranchingFakeEngine, record, threshold: float) -> bool:
    """The true change across the span reaches the threshold with the record's sign, and no token in it does."""
    context = list(record.pivot_context_ids[len(PROMPT) :])
    run = context + list(record.span_token_ids)
    p = [engine.true_p(run[:i]) for i in range(len(context), len(run) + 1)]
    change = p[-1] - p[0]
    single = any(abs(p[i + 1] - p[i]) >= threshold - 1e-9 for i in range(len(p) - 1))
    return abs(change) >= threshold - 1e-9 and (change > 0) == record.is_positive and not single


def _span_hides_a_pivot(engine: BranchingFakeEngine, record, threshold: float) -> bool:
    """A token inside the span moves p by the threshold on its own: the span should have been that token."""
    context = list(record.pivot_context_ids[len(PROMPT) :])
    run = context + list(record.span_token_ids)
    p = [engine.true_p(run[:i]) for i in range(len(context), len(run) + 1)]
    return any(abs(p[i + 1] - p[i]) >= threshold - 1e-9 for i in range(len(p) - 1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=300)
    parser.add_argument("--num-samples", type=int, default=10)
    parser.add_argument("--max-generations", type=int, default=3)
    parser.add_argument(
        "--sweep",
        action="store_true",
        help="also measure the search with and without the bound at other --verify-samples caps, and with --confidence",
    )
    parser.add_argument("--scenario", default=None, help="only the scenarios whose name contains this")
    parser.add_argument("--modes", nargs="+", default=None, help="only the modes whose name contains one of these")
    parser.add_argument(
        "--spans", action="store_true", help="only spans on vs off, on planted spans and on the planted scenario"
    )
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    modes = dict(SPAN_MODES) if args.spans else dict(MODES)
    scenarios = dict(SCENARIOS)
    if args.spans:
        scenarios = {
            "planted spans (one span of 2-3 steps under 0.2, two single pivots)": dict(spans=True),
            **scenarios,
        }
    if args.sweep:  # the recall/rollouts curve: each search at several verification caps
        for cap in (16, 32, 48, 96, 128):
            modes[f"no bound, cap {cap}"] = dict(pool=True, verify=True, bound=False, verify_samples=cap)
            modes[f"bound (defaults), cap {cap}"] = dict(pool=True, verify=True, verify_samples=cap)
        for level in (0.8, 0.9):  # sequential estimates in the subdivision (--confidence)
            modes[f"bound, --confidence {level}"] = dict(pool=True, verify=True, confidence=level)
    if args.modes:
        modes = {name: m for name, m in modes.items() if any(part in name for part in args.modes)}
    rows = []
    for scenario, kwargs in scenarios.items():
        if args.scenario and args.scenario not in scenario:
            continue
        tallies = measure(
            range(args.seeds), modes, num_samples=args.num_samples, max_generations=args.max_generations, **kwargs
        )
        print(f"\n{scenario}\n")
        print(
            "| mode | token records | precision | true pivots | recall | span records | spans correct "
            "| spans hiding a pivot | true spans | spans found | spans split | candidates | rollouts per query |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for name, t in tallies.items():
            print(
                f"| {name} | {t.records} | {t.precision:.3f} | {t.true_pivots} | {t.recall:.3f} | {t.spans} "
                f"| {t.spans_correct} | {t.spans_hiding} | {t.true_spans} | {t.spans_found} | {t.spans_split} "
                f"| {t.candidates} "
                f"| {t.rollouts / t.queries:.0f} |"
            )
            rows.append(
                {
                    "scenario": scenario,
                    "mode": name,
                    "records": t.records,
                    "correct": t.correct,
                    "precision": t.precision,
                    "true_pivots": t.true_pivots,
                    "found": t.found,
                    "recall": t.recall,
                    "candidates": t.candidates,
                    "spans": t.spans,
                    "spans_correct": t.spans_correct,
                    "true_spans": t.true_spans,
                    "spans_found": t.spans_found,
                    "spans_hiding": t.spans_hiding,
                    "spans_split": t.spans_split,
                    "rollouts": t.rollouts,
                    "queries": t.queries,
                }
            )
    print(f"{args.seeds} seeds in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "modes": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
