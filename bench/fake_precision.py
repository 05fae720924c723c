"""Precision and recall of the search where the truth is known: planted pivots on the branching fake engine.

Each seed plants pivots whose true changes span the threshold (0.05 to 0.6 by
default) in a random script; rollouts leave the script at random positions and
verdicts are binomial. Every mode searches the same queries with the same root
rollouts (so the same solutions). A record is correct when the true change
across its token (``BranchingFakeEngine.true_p``) is at least the threshold in
size and has the record's sign; recall is over the true pivots of the searched
solutions.

    python bench/fake_precision.py --seeds 300 --json bench-out/fake_precision.json
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import dataclass, field

from pts.engines.fake import BranchingFakeEngine, PassFailOracle, planted_scenario, realistic_follow
from pts.search.searcher import PivotalTokenSearcher, SearchSettings
from pts.tasks.task import Task

PROMPT = "q?"
MODES = {
    "original (--no-pool --no-verify)": dict(pool=False, verify=False),
    "pooled": dict(pool=True, verify=False, bound=False),
    "pooled+verified, no bound (dca1e4c defaults)": dict(pool=True, verify=True, bound=False),
    "verified (no pooling), no bound": dict(pool=False, verify=True, bound=False),
    "bound, bisection (defaults: direct 0)": dict(pool=True, verify=True, direct_at_most=0),
    "bound, direct <= 2": dict(pool=True, verify=True, direct_at_most=2),
    "bound, direct <= 4": dict(pool=True, verify=True, direct_at_most=4),
    "bound, direct always": dict(pool=True, verify=True, direct_at_most=10**6),
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


def search_one(seed: int, settings: SearchSettings, **scenario):
    """The engine of one planted scenario and the search's result on it."""
    filler = scenario.pop("filler_like_script", False)
    script, p_script, follow = planted_scenario(random.Random(seed), **scenario)
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
                num_samples=num_samples,
                max_generations=max_generations,
                split_at="middle",
                prob_threshold=threshold,
                min_prob=0.0,
                max_prob=1.0,
                seed=seed,
                max_new_tokens=scenario.get("length", 24) + 16,
                **mode,
            )
            engine, result = search_one(seed, settings, **dict(scenario))
            solutions = [trace["solution_ids"] for trace in result.traces]
            truth = set().union(*(true_pivots(engine, s, threshold) for s in solutions)) if solutions else set()
            got = {(tuple(r.pivot_context_ids[len(PROMPT) :]), r.pivot_token_id, r.is_positive) for r in result.pivots}
            t = tallies[name]
            t.records += len(got)
            t.correct += len(got & truth)
            t.true_pivots += len(truth)
            t.found += len(got & truth)
            t.rollouts += result.rollouts
            t.candidates += result.candidates
            t.queries += 1
            t.per_seed.append((len(got), len(got & truth)))
    return tallies


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
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    modes = dict(MODES)
    if args.sweep:  # the recall/rollouts curve: each search at several verification caps
        for cap in (16, 32, 48, 96, 128):
            modes[f"no bound, cap {cap}"] = dict(pool=True, verify=True, bound=False, verify_samples=cap)
            modes[f"bound (defaults), cap {cap}"] = dict(pool=True, verify=True, verify_samples=cap)
        for level in (0.8, 0.9):  # sequential estimates in the subdivision (--confidence)
            modes[f"bound, --confidence {level}"] = dict(pool=True, verify=True, confidence=level)
    rows = []
    for scenario, kwargs in SCENARIOS.items():
        if args.scenario and args.scenario not in scenario:
            continue
        tallies = measure(
            range(args.seeds), modes, num_samples=args.num_samples, max_generations=args.max_generations, **kwargs
        )
        print(f"\n{scenario}\n")
        print("| mode | records | precision | true pivots | recall | candidates | rollouts per query |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for name, t in tallies.items():
            print(
                f"| {name} | {t.records} | {t.precision:.3f} | {t.true_pivots} | {t.recall:.3f} | {t.candidates} "
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
