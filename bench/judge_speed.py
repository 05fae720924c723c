"""Time of one math-oracle judgement on plain-number answers, against math-verify on the same answers.

Run: python bench/judge_speed.py [--n 500]

The texts are "a + b = c. The answer is N." with N right two times in three; prints microseconds per
judgement on the exact path (MathOracle.judge), per math-verify comparison of the same extracted answers, and
whether the verdicts agree.
"""

from __future__ import annotations

import argparse
import time

from pts.tasks.oracles.extract import extract_math_answer
from pts.tasks.oracles.math import MathOracle, _math_verify, _parse_math


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=500)
    n = ap.parse_args().n
    pairs = [(i % 17, i % 23) for i in range(n)]
    texts = [f"{a} + {b} = {a + b}. The answer is {a + b + (i % 3 == 0)}." for i, (a, b) in enumerate(pairs)]
    golds = [str(a + b) for a, b in pairs]
    oracle = MathOracle()
    _, verify, _ = _math_verify()  # imported before timing
    oracle.judge(texts[0], golds[0])
    t = time.perf_counter()
    fast = [oracle.judge(text, gold) for text, gold in zip(texts, golds)]
    fast_s = time.perf_counter() - t
    t = time.perf_counter()
    slow = [bool(verify(_parse_math(g), _parse_math(extract_math_answer(x)))) for x, g in zip(texts, golds)]
    slow_s = time.perf_counter() - t
    print(
        f"MathOracle.judge {fast_s / n * 1e6:.0f} us per judgement; math-verify on the same answers "
        f"{slow_s / n * 1e6:.0f} us per comparison; same verdicts: {fast == slow} ({sum(fast)} of {n} right)"
    )


if __name__ == "__main__":
    main()
