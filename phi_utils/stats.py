"""95% intervals for every measured number: Wilson for rates, bootstrap for means and paired differences.

Conventions (used by every notebook and sidecar):
- an interval is a `(lo, hi)` pair named `ci95`, always reported with its `n`;
- comparisons between arms are *paired*: the same problems under both arms, resampled together;
- several training seeds per arm are resampled together with the problems (`bootstrap_mean_seeds`),
  so an interval covers both seed-to-seed and problem-to-problem variation.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np

Z95 = 1.959963984540054  # two-sided 95% normal quantile


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its 95% interval and the number of units it was computed over."""

    mean: float
    """The point estimate (a mean over problems, or a difference of means)."""
    lo: float
    """Lower end of the 95% interval."""
    hi: float
    """Upper end of the 95% interval."""
    n: int
    """How many units (problems, files, pairs) the estimate averages over."""
    method: str
    """How the interval was computed (`wilson`, `bootstrap`, `paired-bootstrap`, ...)."""
    n_seeds: int = 1
    """How many training seeds were resampled together with the units (1 = none)."""

    @property
    def ci95(self) -> tuple[float, float]:
        return (self.lo, self.hi)

    def excludes(self, value: float = 0.0) -> bool:
        """Whether the interval excludes `value` (a difference "resolved at 95%" excludes 0)."""
        return not (self.lo <= value <= self.hi)

    def to_dict(self) -> dict[str, float | int | str | list[float]]:
        d = asdict(self)
        d["ci95"] = [self.lo, self.hi]
        return d

    def __str__(self) -> str:
        return f"{self.mean:.4g} [{self.lo:.4g}, {self.hi:.4g}] (n={self.n})"


def wilson_interval(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a rate of `successes` out of `n` (successes may be fractional).

    Unlike the normal approximation it stays inside [0, 1] and is informative at 0 of n:
    0/164 gives [0, 0.023]. At 0 and n successes the bound on that side is exactly 0 or 1 (the formula
    gives it up to a rounding error, which would leave the rate itself outside its interval).
    """
    if n <= 0:
        raise ValueError("wilson_interval needs n >= 1")
    if not 0 <= successes <= n:
        raise ValueError(f"wilson_interval needs 0 <= successes <= n, got {successes} of {n}")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return lo, hi


def rate_estimate(values: Sequence[float]) -> Estimate:
    """Mean of per-problem rates in [0, 1] (pass/fail, or unbiased pass@k) with a Wilson interval.

    Exact for 0/1 outcomes (greedy pass@1). For fractional per-problem pass@k it is conservative:
    a [0, 1] variable with mean p has variance at most p(1 - p), the binomial's.
    """
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        raise ValueError("rate_estimate needs at least one value")
    if arr.min() < 0 or arr.max() > 1:
        raise ValueError("rate_estimate needs values in [0, 1]")
    lo, hi = wilson_interval(float(arr.sum()), arr.size)
    return Estimate(float(arr.mean()), lo, hi, int(arr.size), "wilson")


def _percentile_interval(samples: np.ndarray, alpha: float = 0.05) -> tuple[float, float]:
    lo, hi = np.quantile(samples, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def bootstrap_mean(values: Sequence[float], n_boot: int = 10_000, seed: int = 0,
                   statistic: Callable[[np.ndarray], np.ndarray] | None = None) -> Estimate:
    """Percentile-bootstrap 95% interval of the mean (or of `statistic`, applied along axis 1 of the
    resample matrix) over the units in `values`."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        raise ValueError("bootstrap_mean needs at least one value")
    stat = statistic or (lambda m: m.mean(axis=1))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, arr.size, size=(n_boot, arr.size))
    boots = stat(arr[idx])
    lo, hi = _percentile_interval(boots)
    point = float(stat(arr[None, :])[0])
    return Estimate(point, lo, hi, int(arr.size), "bootstrap")


def paired_difference(a: Sequence[float], b: Sequence[float], n_boot: int = 10_000, seed: int = 0) -> Estimate:
    """Mean of a - b over the same units, with a paired percentile-bootstrap 95% interval
    (units resampled once, both arms together)."""
    a_arr, b_arr = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a_arr.shape != b_arr.shape or a_arr.ndim != 1:
        raise ValueError(f"paired_difference needs two 1-d arrays over the same units, got {a_arr.shape} and {b_arr.shape}")
    est = bootstrap_mean(a_arr - b_arr, n_boot=n_boot, seed=seed)
    return Estimate(est.mean, est.lo, est.hi, est.n, "paired-bootstrap")


def bootstrap_mean_seeds(matrix: Sequence[Sequence[float]], n_boot: int = 10_000, seed: int = 0) -> Estimate:
    """Mean of a (seeds x units) matrix with a two-level bootstrap: seeds and units are resampled
    independently, so the interval carries seed-to-seed and unit-to-unit spread together."""
    m = np.asarray(matrix, dtype=float)
    if m.ndim != 2 or m.size == 0:
        raise ValueError(f"bootstrap_mean_seeds needs a non-empty (seeds x units) matrix, got shape {m.shape}")
    n_seeds, n_units = m.shape
    rng = np.random.default_rng(seed)
    boots = np.empty(n_boot)
    # Chunked so that 10k resamples of 3 x 664 never build a 10k x 3 x 664 index array at once.
    for start in range(0, n_boot, 500):
        stop = min(n_boot, start + 500)
        s = rng.integers(0, n_seeds, size=(stop - start, n_seeds))
        u = rng.integers(0, n_units, size=(stop - start, n_units))
        boots[start:stop] = m[s[:, :, None], u[:, None, :]].mean(axis=(1, 2))
    lo, hi = _percentile_interval(boots)
    return Estimate(float(m.mean()), lo, hi, n_units, "seed-and-unit-bootstrap", n_seeds=n_seeds)


def paired_difference_seeds(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]], n_boot: int = 10_000,
                            seed: int = 0) -> Estimate:
    """Mean of arm a minus arm b, each a (seeds x units) matrix over the same units: units are
    resampled once for both arms (paired), each arm's seeds independently (its models are distinct)."""
    a_m, b_m = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a_m.ndim != 2 or b_m.ndim != 2 or a_m.shape[1] != b_m.shape[1]:
        raise ValueError(f"paired_difference_seeds needs (seeds x units) matrices over the same units, "
                         f"got {a_m.shape} and {b_m.shape}")
    n_units = a_m.shape[1]
    rng = np.random.default_rng(seed)
    boots = np.empty(n_boot)
    for start in range(0, n_boot, 500):
        stop = min(n_boot, start + 500)
        u = rng.integers(0, n_units, size=(stop - start, n_units))
        sa = rng.integers(0, a_m.shape[0], size=(stop - start, a_m.shape[0]))
        sb = rng.integers(0, b_m.shape[0], size=(stop - start, b_m.shape[0]))
        boots[start:stop] = (a_m[sa[:, :, None], u[:, None, :]].mean(axis=(1, 2))
                             - b_m[sb[:, :, None], u[:, None, :]].mean(axis=(1, 2)))
    lo, hi = _percentile_interval(boots)
    return Estimate(float(a_m.mean() - b_m.mean()), lo, hi, n_units, "paired-seed-and-unit-bootstrap",
                    n_seeds=min(a_m.shape[0], b_m.shape[0]))


def auc_rows(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """ROC AUC of each row of binary `labels` (the larger value positive) and `scores`, as sklearn's
    `roc_auc_score` computes it: the Mann-Whitney statistic with tied scores sharing their mean rank.
    One vectorised pass over all rows (a bootstrap's resamples), not one sklearn call each."""
    from scipy.stats import rankdata

    y, s = np.atleast_2d(labels), np.atleast_2d(np.asarray(scores, dtype=float))
    pos = y == np.max(y, axis=1, keepdims=True)
    n_pos = pos.sum(axis=1)
    n_neg = y.shape[1] - n_pos
    ranks = rankdata(s, axis=1)
    return ((ranks * pos).sum(axis=1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def bootstrap_auc(labels: Sequence[int], scores: Sequence[float], n_boot: int = 2_000, seed: int = 0) -> Estimate:
    """ROC AUC with a percentile-bootstrap 95% interval over examples (resamples holding one class
    only are drawn again)."""
    y, s = np.asarray(labels), np.asarray(scores, dtype=float)
    if len(set(y.tolist())) < 2:
        raise ValueError("bootstrap_auc needs both classes among the labels")
    y = (y == y.max()).astype(np.int8)  # the larger label is the positive class, as in roc_auc_score
    rng = np.random.default_rng(seed)
    draws = []
    while len(draws) < n_boot:
        idx = rng.integers(0, y.size, size=y.size)
        if y[idx].min() != y[idx].max():
            draws.append(idx)
    idx = np.stack(draws)
    lo, hi = _percentile_interval(auc_rows(y[idx], s[idx]))
    return Estimate(float(auc_rows(y, s)[0]), lo, hi, int(y.size), "bootstrap")


def verdict(diff: Estimate, name: str, unit: str = "") -> str:
    """One generated sentence on a paired difference: resolved at 95% or not, with its interval."""
    unit = f" {unit}" if unit else ""
    seeds = f", {diff.n_seeds} seeds per arm" if diff.n_seeds > 1 else ""
    span = f"{diff.mean:+.4f}{unit}, 95% CI [{diff.lo:+.4f}, {diff.hi:+.4f}] over {diff.n} problems{seeds}"
    if diff.excludes(0.0):
        direction = "lower" if diff.mean < 0 else "higher"
        return f"{name}: {span}; resolved at 95% ({direction})."
    return f"{name}: {span}; not resolved at 95% (the interval contains 0)."
