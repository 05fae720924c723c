"""Small statistics shared by search, evaluation and reports."""

from __future__ import annotations


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
