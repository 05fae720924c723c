"""Small statistics shared by search, evaluation and reports."""

from __future__ import annotations

import math
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


def newcombe_interval(p_before: float, ci_before: tuple[float, float],
                      p_after: float, ci_after: tuple[float, float]) -> tuple[float, float]:
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
