"""The scaling step's generated words follow the numbers: grow, shrink, flip, unresolved."""

from __future__ import annotations

from phi_utils.evaluation.scaling import Difference, ScalingResult, trend_sentences
from phi_utils.arms import COMPARISONS

FILTER = COMPARISONS[0][2]


def _d(div: int, mean: float, resolved: bool) -> Difference:
    half = 0.01 if resolved else abs(mean) + 0.01
    return Difference(FILTER, "filtered", "raw", div, mean, [mean - half, mean + half], resolved)


def _trend(*diffs: Difference) -> str:
    (line,) = trend_sentences(diffs)
    return line


def test_trends_are_generated_from_the_numbers():
    assert "grows in size with compute (0.020 -> 0.080" in _trend(_d(9, -0.02, True), _d(3, -0.05, True), _d(1, -0.08, True))
    assert "shrinks with compute (0.080 -> 0.020" in _trend(_d(9, -0.08, True), _d(1, -0.02, True))
    assert "flips sign (resolved both ways)" in _trend(_d(9, -0.05, True), _d(1, 0.04, True))
    assert "changes sign with compute (not resolved both ways)" in _trend(_d(9, -0.05, True), _d(1, 0.01, False))
    assert "is not resolved at any budget" in _trend(_d(9, -0.01, False), _d(1, 0.01, False))
    assert "grows in size with compute (0.020 -> 0.050 nats/token), resolved at budget 1/9 only" in \
        _trend(_d(9, -0.02, True), _d(1, -0.05, False))
    one = _trend(_d(1, -0.03, True))
    assert "one budget only" in one and "1/1: -0.030" in one
    # smallest budget first in the sentence
    line = _trend(_d(1, -0.08, True), _d(9, -0.02, True))
    assert line.index("1/9") < line.index("1/1")


def test_the_result_round_trips_through_json(tmp_path):
    import json
    from dataclasses import asdict

    from phi_utils.evaluation.scaling import ArmPoint
    from phi_utils.rundir import read_result

    r = ScalingResult(budgets=[1, 3], points=[ArmPoint("raw", "A", 1, "nano", 223488, 100, 1e12, [0, 1], 5.0,
                                                       [4.9, 5.1], 664)],
                      differences=[_d(1, -0.02, True)], baselines={"raw": {"unigram": 6.3, "bigram": 5.1}},
                      trends=["x"], not_covered="y", n_problems=664)
    (tmp_path / "s.json").write_text(json.dumps(asdict(r)))
    assert read_result(ScalingResult, tmp_path / "s.json") == r
