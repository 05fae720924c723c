"""What the sequential rule and verification cost against the fixed 100-rollout protocol, where the truth is known.

Each seed plants a response of random sentences on :class:`pts.engines.fake.SentenceFakeEngine` with binomial
rollouts (``exact=False``): at each sentence a rollout keeps it with probability ``keep`` (0.3-0.95) or writes a
different one and passes with ``p_different`` (0-1); the true counterfactual importance of sentence i is
acc(i+1) - p_different[i] (chain rule, ``true_accuracy``). Every seed is measured twice on the same engine:

- ``fixed``: every sentence sampled to 100 draws (the paper's protocol, pooled), no verification;
- ``sequential``: looks of 16, 32, 64, 100 draws, a sentence stopping once its interval settles it, then the
  candidates verified on fresh rollouts (up to 64 draws per end).

Reported: Spearman rank correlation of the counterfactual importance (sequential vs fixed, and each vs the
truth), recall of the fixed protocol's top-10% sentences (by |importance|) among the sequential's top 10%,
rollouts per sentence, and the precision / recall of anchors (|true importance| >= 0.2) for fixed (point
estimate >= 0.2) and verified.

    python bench/anchors_cost.py --seeds 100 --json bench-out/anchors_cost.json
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time

from pts.engines.base import SamplingParams
from pts.engines.fake import PassFailOracle, SentenceFakeEngine
from pts.search.anchors.analysis import analyse_trace, sentences_of
from pts.search.anchors.settings import AnchorSettings
from pts.search.anchors.similarity import ExactFilter
from pts.search.estimate import SuccessEstimator
from pts.tasks.task import Task

PROMPT = [50, 51]
WORDS = "alpha beta gamma delta omega sigma kappa theta lambda zeta".split()
THRESHOLD = 0.2


def scenario(rng: random.Random, sentences: int) -> SentenceFakeEngine:
    texts = [" " + " ".join(rng.choice(WORDS) for _ in range(4)) + f" step {i}." for i in range(sentences)]
    texts[0] = texts[0][1:]
    alternatives = [" " + " ".join(rng.choice(WORDS) for _ in range(4)) + f" other {i}." for i in range(sentences)]
    keep = [rng.uniform(0.3, 0.95) for _ in range(sentences)]
    p_different = [rng.choice([rng.uniform(0, 1), rng.uniform(0, 0.2), rng.uniform(0.8, 1)]) for _ in texts]
    return SentenceFakeEngine(
        texts,
        alternatives,
        keep,
        p_different,
        rng.choice([0.0, 1.0]),
        prompt_length=len(PROMPT),
        exact=False,
        seed=rng.randrange(1 << 30),
    )


def measure(engine: SentenceFakeEngine, settings: AnchorSettings, seed: int):
    task = Task("q", "a", "0", "fake", "fake", PassFailOracle())
    solution = engine.solution(engine.p_end > 0.5)

    def estimator_for(phase: str) -> SuccessEstimator:
        return SuccessEstimator(
            engine, task, PROMPT, SamplingParams(), num_samples=16, max_new_tokens=400, seed=hash((seed, phase)) % 10**9
        )

    sentences = sentences_of(solution, lambda ids: engine.tok.decode(ids, skip_special_tokens=True))
    assert len(sentences) == len(engine.sentences) + 1, "planted sentences must split as planted"
    verdict = lambda text, ok: "PASS" if ok else "FAIL"  # noqa: E731
    return analyse_trace(estimator_for, solution, sentences, settings, ExactFilter(), verdict, seed)


def ranks(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2
        i = j + 1
    return out


def spearman(a: list[float], b: list[float]) -> float:
    ra, rb = ranks(a), ranks(b)
    ma, mb = sum(ra) / len(ra), sum(rb) / len(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    var = math.sqrt(sum((x - ma) ** 2 for x in ra) * sum((y - mb) ** 2 for y in rb))
    return cov / var if var else 0.0


def top(values: list[float], share: float = 0.1) -> set[int]:
    k = max(1, round(share * len(values)))
    return set(sorted(range(len(values)), key=lambda i: -abs(values[i]))[:k])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--sentences", type=int, default=10)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    fixed_settings = AnchorSettings(rollouts=100, sequential=False, verify=False)
    sequential_settings = AnchorSettings(rollouts=100, first_rollouts=16, verify=True, verify_samples=64)
    truth, fixed, sequential = [], [], []
    cost = {"fixed": 0, "sequential": 0, "verify": 0}
    anchors = {"fixed": [0, 0], "verified": [0, 0]}  # [records, correct]
    true_anchors = 0
    found = {"fixed": 0, "verified": 0}
    start = time.perf_counter()
    for seed in range(args.seeds):
        rng = random.Random(seed)
        engine = scenario(rng, args.sentences)
        acc = engine.true_accuracy()
        true_cf = [acc[i + 1] - p for i, p in enumerate(engine.p_different)]
        f = measure(engine, fixed_settings, seed)
        s = measure(engine, sequential_settings, seed)
        n = args.sentences  # the verdict sentence (last) has no planted alternative: left out
        fv = [r.importance.counterfactual or 0.0 for r in f.sentences[:n]]
        sv = [r.importance.counterfactual or 0.0 for r in s.sentences[:n]]
        truth.append(true_cf)
        fixed.append(fv)
        sequential.append(sv)
        cost["fixed"] += sum(r.rollouts for r in f.sentences)
        cost["sequential"] += sum(r.rollouts for r in s.sentences)
        cost["verify"] += s.verify_rollouts
        for i in range(n):
            real = abs(true_cf[i]) >= THRESHOLD
            true_anchors += real
            if abs(fv[i]) >= THRESHOLD:
                anchors["fixed"][0] += 1
                anchors["fixed"][1] += real and fv[i] * true_cf[i] > 0
                found["fixed"] += real
            if s.sentences[i].verified:
                v = s.sentences[i].verification.counterfactual
                anchors["verified"][0] += 1
                anchors["verified"][1] += real and v * true_cf[i] > 0
                found["verified"] += real
    sentences = args.seeds * (args.sentences + 1)
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    result = {
        "seeds": args.seeds,
        "sentences_per_response": args.sentences + 1,
        "spearman_sequential_vs_fixed": mean([spearman(a, b) for a, b in zip(sequential, fixed)]),
        "spearman_fixed_vs_truth": mean([spearman(a, b) for a, b in zip(fixed, truth)]),
        "spearman_sequential_vs_truth": mean([spearman(a, b) for a, b in zip(sequential, truth)]),
        "top10_recall_sequential_of_fixed": mean(
            [len(top(a) & top(b)) / len(top(b)) for a, b in zip(sequential, fixed)]
        ),
        "rollouts_per_sentence_fixed": cost["fixed"] / sentences,
        "rollouts_per_sentence_sequential": cost["sequential"] / sentences,
        "rollouts_per_sentence_sequential_with_verification": (cost["sequential"] + cost["verify"]) / sentences,
        "true_anchors": true_anchors,
        "fixed_anchors": anchors["fixed"][0],
        "fixed_precision": anchors["fixed"][1] / max(1, anchors["fixed"][0]),
        "fixed_recall": found["fixed"] / max(1, true_anchors),
        "verified_anchors": anchors["verified"][0],
        "verified_precision": anchors["verified"][1] / max(1, anchors["verified"][0]),
        "verified_recall": found["verified"] / max(1, true_anchors),
        "seconds": time.perf_counter() - start,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
