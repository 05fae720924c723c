"""Rollouts of `pts critical`'s scan and search, with and without the sampling-probability bound, on planted
failing trajectories where p(success) and pi are known exactly.

Each trajectory is the script of a :class:`BranchingFakeEngine` (the chain rule holds at every prefix, verdicts
are binomial, pi is exact): p starts in [0.3, 0.7], falls part of the way at 0 to 2 earlier tokens (by a factor
drawn from [0.05, 0.6], so it sometimes sits at a few percent, where zeros appear by sampling noise, as on the
real model) and to 0 at the planted critical token; then the script fails. Tokens where p changes get the
largest pi the chain rule allows (capped at 0.8); the others get a pi drawn as the scenario says. Lengths are
drawn from 3-64 tokens, as in the documented embedded-model experiment (docs/critical.md).

All four ways score the same trajectories with the same seeds (a position's rollouts are the same in every
way that samples it); agreement is with the scan without the bound (the paper's method): same critical token.

    python bench/critical_cost.py --trajectories 200 --json bench-out/critical_cost.json
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from collections.abc import Callable

from pts.engines.base import SamplingParams
from pts.engines.fake import EOS, FAIL, BranchingFakeEngine, PassFailOracle, realistic_follow, token
from pts.search.critical.bound import possible_critical_positions
from pts.search.critical.finder import CriticalTokenFinder
from pts.search.critical.settings import CriticalSettings
from pts.search.estimate import QueryRollouts
from pts.tasks.task import Task

PROMPT = "q?"
WAYS = {
    "scan": ("scan", False),
    "scan + bound": ("scan", True),
    "search": ("search", False),
    "search + bound": ("search", True),
}


def near_certain_follow(rng: random.Random) -> float:
    """An assumption, not a measurement: 39% of tokens at 1 - pi in [0.2, 0.95] as measured on the embedded
    model, the other 61% log-uniform in [1e-4, 0.2) (most of a language model's near-certain tokens have
    1 - pi far below 0.01; the embedded model's distribution below 0.2 was not measured)."""
    if rng.random() < 0.39:
        return 1 - rng.uniform(0.2, 0.95)
    return 1 - math.exp(rng.uniform(math.log(1e-4), math.log(0.2)))


SCENARIOS: dict[str, Callable[[random.Random], float]] = {
    "realistic pi (1 - pi uniform below 0.2)": realistic_follow,
    "near-certain pi (1 - pi log-uniform below 0.2)": near_certain_follow,
}


def failing_world(rng: random.Random, length: int, flat: Callable[[random.Random], float]):
    """``(script, p_script, follow, critical)``: a script whose p falls to 0 at token ``critical``."""
    script = [token(rng.choice("abcdefgh")) for _ in range(length)]
    critical = rng.randrange(length)
    falls = set(rng.sample(range(critical), min(critical, rng.randint(0, 2))))
    p = rng.uniform(0.3, 0.7)
    p_script, follow = [p], []
    for i in range(length):
        new = 0.0 if i == critical else p * rng.uniform(0.05, 0.6) if i in falls else p
        # A fall from p to new needs 1 - pi >= (p - new) / (1 - new); take a little less than the largest pi.
        follow.append(min(0.8, 0.95 * (1 - p) / (1 - new)) if new != p else flat(rng))
        p = new
        p_script.append(p)
    return script, p_script, follow, critical


def run(trajectories: int, ks: list[int], seed: int) -> dict:
    task = Task(PROMPT, "PASS", "0", "fake", "fake", PassFailOracle())
    prompt_ids = [token(c) for c in PROMPT]
    out: dict = {"trajectories": trajectories, "seed": seed, "rows": []}
    for scenario, flat in SCENARIOS.items():
        for k in ks:
            rng = random.Random(seed)
            tally = {w: {"rollouts": 0, "agree": 0, "planted": 0, "agree_possible": 0} for w in WAYS}
            scan_possible = 0  # trajectories whose scan token is one the bound allows (or that have none)
            skipped = positions = 0
            start = time.time()
            for n in range(trajectories):
                length = rng.randint(3, 64)
                script, p_script, follow, critical = failing_world(rng, length, flat)
                engine = BranchingFakeEngine(p_script, script, prompt_length=len(prompt_ids), follow=follow, seed=n)
                response = (*script, FAIL, EOS)  # p is 0 at the end: FAIL and EOS are certain (pi 1)
                logprobs = [math.log(f) for f in follow] + [0.0, 0.0]
                answers = {}
                for way, (mode, bound) in WAYS.items():
                    settings = CriticalSettings(rollouts=k, mode=mode, pass_at_k=0)
                    rollouts = QueryRollouts(engine, task, prompt_ids, SamplingParams(), len(response))
                    finder = CriticalTokenFinder(rollouts, settings, seed=n)
                    (result,) = finder.find([response], [logprobs if bound else None])
                    answers[way] = result.position
                    tally[way]["rollouts"] += result.rollouts
                    tally[way]["planted"] += result.position == critical
                possible = possible_critical_positions(logprobs, k)
                allowed = answers["scan"] is None or possible[answers["scan"]]
                scan_possible += allowed
                for way in WAYS:
                    tally[way]["agree"] += answers[way] == answers["scan"]
                    tally[way]["agree_possible"] += allowed and answers[way] == answers["scan"]
                possible = possible[:length]
                skipped += possible.count(False)
                positions += len(possible)
            scan_rollouts = tally["scan"]["rollouts"]
            for way, t in tally.items():
                out["rows"].append(
                    {
                        "scenario": scenario,
                        "k": k,
                        "way": way,
                        "rollouts": t["rollouts"],
                        "share_of_scan": t["rollouts"] / scan_rollouts,
                        "agreement": t["agree"] / trajectories,
                        "agreement_where_possible": t["agree_possible"] / scan_possible,
                        "scan_token_possible": scan_possible / trajectories,
                        "planted_found": t["planted"] / trajectories,
                        "skipped_positions": skipped / positions if "bound" in way else 0.0,
                    }
                )
            print(f"[{scenario}, K={k}: {time.time() - start:.0f} s]", file=sys.stderr, flush=True)
    return out


def table(result: dict) -> str:
    lines = [
        "| pi scenario | K | way | rollouts | share of the scan's | same token as the scan "
        "| same token, where the scan's is possible | planted token | tokens skipped |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['scenario']} | {r['k']} | {r['way']} | {r['rollouts']:,} | {100 * r['share_of_scan']:.1f}% "
            f"| {100 * r['agreement']:.1f}% | {100 * r['agreement_where_possible']:.1f}% "
            f"({100 * r['scan_token_possible']:.0f}% of trajectories) | {100 * r['planted_found']:.1f}% | {100 * r['skipped_positions']:.0f}% |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trajectories", type=int, default=200)
    parser.add_argument("--k", type=int, nargs="+", default=[64, 16])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    result = run(args.trajectories, args.k, args.seed)
    print(table(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
