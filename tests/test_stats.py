"""Intervals against independent computations: scipy's Wilson and bootstrap, exact enumeration."""

import itertools

import numpy as np
import pytest
from scipy import stats as sps

from phi_utils import stats


@pytest.mark.parametrize("k,n", [(0, 164), (1, 164), (19, 20), (250, 500), (500, 500)])
def test_wilson_matches_scipy(k, n):
    ref = sps.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    lo, hi = stats.wilson_interval(k, n)
    assert lo == pytest.approx(ref.low, abs=1e-9)
    assert hi == pytest.approx(ref.high, abs=1e-9)


def test_rate_estimate_zero_of_n_is_informative():
    est = stats.rate_estimate([0.0] * 164)
    assert est.mean == 0 and est.lo == 0
    assert 0.02 < est.hi < 0.025  # 0/164: the upper end still says something
    assert not est.excludes(0.0)


def test_bootstrap_mean_matches_scipy_percentile():
    rng = np.random.default_rng(1)
    x = rng.normal(5.0, 1.0, size=200)
    ours = stats.bootstrap_mean(x, n_boot=20_000, seed=3)
    ref = sps.bootstrap((x,), np.mean, n_resamples=20_000, method="percentile", random_state=4).confidence_interval
    assert ours.mean == pytest.approx(x.mean())
    assert ours.lo == pytest.approx(ref.low, abs=0.02)
    assert ours.hi == pytest.approx(ref.high, abs=0.02)


def _exact_percentiles(values, q=(0.025, 0.975)):
    """The exact bootstrap distribution of the mean: all n^n equally likely resamples."""
    n = len(values)
    means = [np.mean([values[i] for i in idx]) for idx in itertools.product(range(n), repeat=n)]
    return np.quantile(means, q)


def test_paired_difference_matches_exact_enumeration():
    a = np.array([5.0, 4.2, 6.1, 5.5, 3.9, 4.8])
    b = np.array([4.1, 4.0, 5.0, 5.6, 3.1, 4.0])
    est = stats.paired_difference(a, b, n_boot=40_000, seed=0)
    lo, hi = _exact_percentiles(list(a - b))
    assert est.mean == pytest.approx((a - b).mean())
    assert est.lo == pytest.approx(lo, abs=0.03)
    assert est.hi == pytest.approx(hi, abs=0.03)
    assert est.excludes(0.0)
    # Unpaired resampling would be wider: pairing is what resolves this difference.
    assert est.hi - est.lo < 0.8 * (np.ptp(a) / 2)


def test_paired_difference_refuses_mismatched_arms():
    with pytest.raises(ValueError, match="same units"):
        stats.paired_difference([1.0, 2.0], [1.0, 2.0, 3.0])


def test_seed_bootstrap_exact_on_small_case():
    # 3 seeds x 5 units: enumerate all 27 x 3125 (seed resample, unit resample) pairs.
    m = np.array([[1.0, 2.0, 4.0, 3.1, 2.2], [2.0, 2.5, 3.0, 1.7, 2.9], [1.4, 3.3, 2.6, 2.0, 3.8]])
    est = stats.bootstrap_mean_seeds(m, n_boot=40_000, seed=1)
    seeds = np.array(list(itertools.product(range(3), repeat=3)))
    units = np.array(list(itertools.product(range(5), repeat=5)))
    means = m[seeds[:, None, :, None], units[None, :, None, :]].mean(axis=(2, 3)).ravel()
    lo, hi = np.quantile(means, [0.025, 0.975])
    assert est.mean == pytest.approx(m.mean())
    assert est.n == 5 and est.n_seeds == 3
    assert est.lo == pytest.approx(lo, abs=0.03)
    assert est.hi == pytest.approx(hi, abs=0.03)


def test_paired_seed_difference_covers_seed_spread():
    rng = np.random.default_rng(0)
    difficulty = rng.normal(5, 1, size=300)
    # Arm a is 0.1 better on every problem but its seeds shift by +-0.3: seed spread must widen the interval.
    a = np.stack([difficulty - 0.1 + off for off in (-0.3, 0.0, 0.3)])
    b = np.stack([difficulty + rng.normal(0, 0.01, size=300) for _ in range(3)])
    with_seeds = stats.paired_difference_seeds(a, b, n_boot=4000, seed=0)
    one_seed = stats.paired_difference(a[1], b[1], n_boot=4000, seed=0)
    assert with_seeds.mean == pytest.approx(-0.1, abs=0.01)
    assert (with_seeds.hi - with_seeds.lo) > 5 * (one_seed.hi - one_seed.lo)
    assert not with_seeds.excludes(0.0)
    assert one_seed.excludes(0.0)


def test_bootstrap_auc_interval_contains_point_and_is_strict_json_friendly():
    rng = np.random.default_rng(2)
    y = np.array([0] * 50 + [1] * 50)
    s = np.concatenate([rng.normal(0, 1, 50), rng.normal(1, 1, 50)])
    est = stats.bootstrap_auc(y, s, n_boot=1000)
    assert est.lo < est.mean < est.hi
    d = est.to_dict()
    assert d["ci95"] == [est.lo, est.hi] and d["n"] == 100


def test_verdict_is_generated_from_the_numbers():
    resolved = stats.Estimate(-0.05, -0.08, -0.02, 664, "paired-bootstrap", n_seeds=3)
    open_ = stats.Estimate(-0.01, -0.03, 0.01, 664, "paired-bootstrap", n_seeds=3)
    assert "resolved at 95% (lower)" in stats.verdict(resolved, "B - A", "nats/token")
    assert "not resolved" in stats.verdict(open_, "B - A")
    assert "664 problems, 3 seeds" in stats.verdict(open_, "B - A")


def test_vectorised_auc_equals_sklearn_with_ties_and_any_label_values():
    """`auc_rows` (the bootstrap's one pass over all resamples) against sklearn's `roc_auc_score`, row by
    row: tied scores, labels 0/1, booleans or any two values (the larger positive)."""
    from sklearn.metrics import roc_auc_score

    from phi_utils.stats import auc_rows

    rng = np.random.default_rng(0)
    checked = 0
    for t in range(300):
        n = int(rng.integers(2, 50))
        y = rng.choice([(0, 1), (False, True), (3, 7)][t % 3], n)
        if len(set(y.tolist())) < 2:
            continue
        s = rng.integers(0, 4, n).astype(float) if t % 2 else rng.normal(size=n)
        assert auc_rows(y, s)[0] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
        checked += 1
    assert checked > 250
    ys = rng.integers(0, 2, (5, 40))
    ys[:, 0], ys[:, 1] = 0, 1
    ss = rng.normal(size=(5, 40))
    assert auc_rows(ys, ss) == pytest.approx([roc_auc_score(a, b) for a, b in zip(ys, ss)], abs=1e-12)


@pytest.mark.parametrize("n", [1, 3, 7, 12, 164, 500])
def test_wilson_bounds_at_zero_and_n_are_exact_so_the_rate_is_inside(n):
    """At 0 of n the formula's lower bound comes out a rounding error above 0 for most n (5.6e-17 at
    n = 3), and at n of n the upper bound a rounding error below 1 (n = 164): the rate would sit outside
    its own interval."""
    assert stats.wilson_interval(0, n)[0] == 0.0 and stats.wilson_interval(n, n)[1] == 1.0
    for values in ([0.0] * n, [1.0] * n):
        e = stats.rate_estimate(values)
        assert e.lo <= e.mean <= e.hi
