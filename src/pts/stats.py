"""The statistics of pts, in one place: pass@k, binomial intervals, paired tests.

Search (Wilson, Newcombe), verification, evaluation (pass@k, paired mean
interval, sign test) and steering (paired bootstrap) all use these; nothing
here imports the rest of pts.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from statistics import NormalDist


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased Pass@k from ``c`` correct of ``n`` samples: 1 - C(n-c, k) / C(n, k) (Chen et al., 2021).

    Computed in product form, C(n-c, k) / C(n, k) = prod_{i=n-c+1}^{n} (1 - k / i),
    so large ``n`` never builds huge binomials.
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    miss = 1.0
    for i in range(n - c + 1, n + 1):
        miss *= 1.0 - k / i
    return 1.0 - miss


def pass_at_k_curve(n: int, c: int) -> list[float]:
    """``[pass_at_k(n, c, k) for k in 1..n]`` (empty when ``n`` is 0)."""
    return [pass_at_k(n, c, k) for k in range(1, n + 1)]


def wilson_interval(successes: int, samples: int, confidence: float) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; (0, 1) when there are no samples."""
    if samples == 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / samples
    denom = 1 + z * z / samples
    centre = (p + z * z / (2 * samples)) / denom
    half = z * math.sqrt(p * (1 - p) / samples + z * z / (4 * samples * samples)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_interval(
    p_before: float, ci_before: tuple[float, float], p_after: float, ci_after: tuple[float, float]
) -> tuple[float, float]:
    """Interval of ``p_after - p_before`` from each end's interval (Newcombe 1998, method 10).

    With Wilson intervals at level c for both ends this is the hybrid score
    interval at level c for a difference of independent proportions; it is
    conservative when the ends are positively correlated (as pooled estimates
    of a prefix and its extension are). An exactly known end has a point interval.
    """
    d = p_after - p_before
    lo = d - math.hypot(p_after - ci_after[0], ci_before[1] - p_before)
    hi = d + math.hypot(ci_after[1] - p_after, p_before - ci_before[0])
    return max(-1.0, lo), min(1.0, hi)


def paired_mean_interval(diffs: Sequence[float], confidence: float = 0.95) -> tuple[float, tuple[float, float]]:
    """Mean of paired differences and its normal-approximation interval (t-free; many pairs assumed)."""
    n = len(diffs)
    mean = sum(diffs) / n if n else 0.0
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1)) if n > 1 else 0.0
    half = NormalDist().inv_cdf(0.5 + confidence / 2) * sd / math.sqrt(n) if n else 0.0
    return mean, (mean - half, mean + half)


def sign_test(wins: int, losses: int) -> float:
    """Exact two-sided binomial sign test p-value for ``wins`` vs ``losses`` (ties dropped)."""
    m = wins + losses
    if m == 0:
        return 1.0
    tail = sum(math.comb(m, i) for i in range(min(wins, losses) + 1)) / 2**m
    return min(1.0, 2 * tail)


def paired_bootstrap_interval(
    groups: Sequence[tuple[float, int]], *, resamples: int, confidence: float, seed: int
) -> tuple[float, float]:
    """Percentile interval of a ratio of sums, resampling whole groups (e.g. queries with all their samples).

    ``groups`` holds (sum of the paired differences, number of samples) per group;
    the statistic is sum of differences / number of samples over the resample.
    """
    if not groups:
        return 0.0, 0.0
    rng = random.Random(seed)
    stats = []
    for _ in range(resamples):
        pick = [groups[rng.randrange(len(groups))] for _ in groups]
        stats.append(sum(s for s, _ in pick) / sum(c for _, c in pick))
    stats.sort()
    return (
        stats[math.floor((1 - confidence) / 2 * (resamples - 1))],
        stats[math.ceil((1 + confidence) / 2 * (resamples - 1))],
    )
