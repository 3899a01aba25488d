"""Grade parsing, the reliability statistics, and grading through the real local teacher."""

from __future__ import annotations

import pytest

from phi_utils.qualitative.grading import (grade_solutions, grader_messages, parse_grade, pearson, resolve_grade_method,
                                           reliability_summary, roc_auc)


@pytest.mark.parametrize("text, grade", [
    ("The solution is correct.\nGrade: 9/10", 9.0),
    ("**Grade:** 7", 7.0),
    ("Misses the empty case. The grade is 6 out of 10.", 6.0),
    ("Score: 6.5", 6.5),
    ("Works for all cases. 10/10", 10.0),
    ("It handles 3 of the 4 cases.\n4", 4.0),                 # bare number on the last line
    ("First I thought Grade: 3/10, but final Grade: 8/10", 8.0),  # the last explicit grade wins
    ("grade - 0", 0.0),
])
def test_parse_grade_accepts_common_formats(text, grade):
    assert parse_grade(text) == grade


@pytest.mark.parametrize("text", ["", None, "No grade at all.", "Grade: 11/10", "It is about 42."])
def test_parse_grade_rejects_missing_or_out_of_range(text):
    assert parse_grade(text) is None


def test_auc_and_correlation():
    assert roc_auc([9, 8, 2, 1], [1, 1, 0, 0]) == 1.0
    assert roc_auc([1, 2, 8, 9], [1, 1, 0, 0]) == 0.0
    assert roc_auc([5, 5], [1, 0]) == 0.5
    assert roc_auc([5], [1]) is None
    assert pearson([1, 2, 3], [1, 2, 3]) == pytest.approx(1.0)
    assert pearson([1, 1, 1], [0, 1, 0]) is None
    s = reliability_summary([9.0, None, 2.0, 3.0], [True, True, False, False])
    assert s["parsed"] == 3 and s["unparsed"] == 1 and s["auc"] == 1.0
    assert s["mean_grade_passing"] == 9.0 and s["mean_grade_failing"] == 2.5


def test_grader_prompt_holds_the_exercise_and_the_solution():
    prompt = 'def f(x):\n    """Double x."""\n'
    msgs = grader_messages(prompt, prompt + "    return 2 * x\n")
    assert msgs[0]["role"] == "system" and "Grade: N/10" in msgs[1]["content"]
    assert msgs[1]["content"].count("Double x.") == 1 and "return 2 * x" in msgs[1]["content"]
    # a solution that rewrote the signature is shown beside the exercise
    other = grader_messages(prompt, "def f(y):\n    return y + y\n")[1]["content"]
    assert "Double x." in other and "return y + y" in other


def test_grading_through_the_local_teacher(local_teacher):
    # SmolLM2-135M: the reply is real but carries little signal, so only the contract is asserted
    prompt = 'def add(a: int, b: int) -> int:\n    """Return a + b."""\n'
    grades = grade_solutions(local_teacher, [(prompt, prompt + "    return a + b\n"),
                                             (prompt, prompt + "    return a - b\n")], max_tokens=48)
    assert len(grades) == 2
    for g in grades:
        assert g.error is None and g.evaluation.strip()
        assert g.method in ("parsed", "follow-up", "failed")
        assert (g.grade is None) == (g.method == "failed")
        if g.method == "parsed":
            assert g.grade == parse_grade(g.evaluation)
        if g.method != "parsed":  # the grade-only follow-up turn was asked and recorded
            assert "\n---\n" in g.evaluation
        assert g.grade is None or 0.0 <= g.grade <= 10.0


def test_logprob_grading_through_the_local_teacher(local_teacher):
    # the grade-first path: a grade on 0-10 read from the grade token's probabilities
    prompt = 'def add(a: int, b: int) -> int:\n    """Return a + b."""\n'
    assert resolve_grade_method("auto", local_teacher) == "logprobs"
    assert resolve_grade_method("verbal", local_teacher) == "verbal"
    grades = grade_solutions(local_teacher, [(prompt, prompt + "    return a + b\n"),
                                             (prompt, "def add(x, y):\n    return x - y\n")], max_tokens=16,
                             method="logprobs")
    assert [g.method for g in grades] == ["logprobs", "logprobs"]
    for g in grades:
        assert g.error is None and 0.0 <= g.grade <= 10.0
        assert g.grade != round(g.grade)  # an expected value over the digits, not one parsed digit
