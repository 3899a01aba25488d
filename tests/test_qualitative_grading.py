"""Grade parsing, the reliability statistics, and grading through a scripted teacher."""

from __future__ import annotations

import pytest

from phi_utils.qualitative.grading import (FOLLOW_UP, GRADE_FIRST_INSTRUCTION, GRADE_GRAMMAR, grade_solutions,
                                           grader_messages, parse_grade, pearson, reliability_summary,
                                           resolve_grade_method, roc_auc)
from stub_teacher import Reply


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


PROMPT = 'def add(a: int, b: int) -> int:\n    """Return a + b."""\n'
SOLUTIONS = {"correct": PROMPT + "    return a + b\n", "wrong": PROMPT + "    return a - b\n",
             "empty": PROMPT + "    pass\n", "refused": PROMPT + "    return 0\n"}


def _verbal_grader(req):
    """A grader that grades the correct body in its first reply, the wrong one only when asked again,
    the empty one never, and whose endpoint refuses the last request."""
    follow_up = req.messages[-1]["content"] == FOLLOW_UP
    if "return a + b" in req.user and not follow_up:
        return "The solution is correct.\nGrade: 9/10"
    if "return a - b" in req.user and not follow_up:
        return "It subtracts instead of adding."
    if "return 0" in req.user:
        return Reply.error(400, "request refused")
    if follow_up:
        return "Grade: 2/10" if "return a - b" in req.messages[1]["content"] else "No idea."
    return "It does nothing."


def test_verbal_grading_asks_again_for_a_missing_grade(stub_teacher, tmp_path):
    from phi_utils.config import get_profile
    from phi_utils.rundir import RunDir

    stub_teacher.script = _verbal_grader
    teacher = stub_teacher.teacher(RunDir.open(get_profile("smoke"), tmp_path / "run"))
    items = [(PROMPT, s) for s in SOLUTIONS.values()]
    grades = grade_solutions(teacher, items, max_tokens=48)
    correct, wrong, empty, refused = grades
    assert (correct.grade, correct.method) == (9.0, "parsed")
    assert correct.evaluation == "The solution is correct.\nGrade: 9/10"
    assert (wrong.grade, wrong.method) == (2.0, "follow-up")
    assert wrong.evaluation == "It subtracts instead of adding.\n---\nGrade: 2/10"
    assert (empty.grade, empty.method, empty.evaluation) == (None, "failed", "It does nothing.\n---\nNo idea.")
    assert refused.grade is None and refused.method == "failed" and "request refused" in refused.error
    assert all(g.error is None for g in (correct, wrong, empty))
    # the first turns: the grading prompt at temperature 0; the follow-ups: the reply, the question, the grammar
    first = [q.body for q in stub_teacher.requests if len(q.messages) == 2]
    assert sorted(b["messages"][1]["content"] for b in first) == sorted(grader_messages(p, s)[1]["content"]
                                                                        for p, s in items)
    assert all((b["temperature"], b["max_tokens"], b["seed"]) == (0.0, 48, 0) and "grammar" not in b for b in first)
    again = sorted((q.body for q in stub_teacher.requests if len(q.messages) == 4),
                   key=lambda b: b["messages"][2]["content"])
    assert [b["messages"] for b in again] == [grader_messages(PROMPT, SOLUTIONS[k]) + [
        {"role": "assistant", "content": e}, {"role": "user", "content": FOLLOW_UP}]
        for k, e in (("empty", "It does nothing."), ("wrong", "It subtracts instead of adding."))]
    assert all(b["grammar"] == GRADE_GRAMMAR and b["max_tokens"] == 12 for b in again)
    assert len(stub_teacher.requests) == 6  # no follow-up for a failed request
    assert [g.cached for g in grade_solutions(teacher, items[:1], max_tokens=48)] == [True]


def test_logprob_grading_reads_the_grade_digit(stub_teacher, tmp_path):
    # the grade-first path: a grade on 0-10 read from the grade token's probabilities
    from phi_utils.config import get_profile
    from phi_utils.rundir import RunDir

    stub_teacher.script = lambda req: (Reply.rating({8: 0.5, 9: 0.5}, "Correct.") if "return a + b" in req.user
                                       else Reply.rating({1: 0.9, 2: 0.1}, "Subtracts."))
    teacher = stub_teacher.teacher(RunDir.open(get_profile("smoke"), tmp_path / "run"))
    assert resolve_grade_method("auto", teacher) == "logprobs"
    assert resolve_grade_method("verbal", teacher) == "verbal"
    items = [(PROMPT, SOLUTIONS["correct"]), (PROMPT, "def add(x, y):\n    return x - y\n")]
    grades = grade_solutions(teacher, items, max_tokens=16, method="logprobs")
    assert [g.method for g in grades] == ["logprobs", "logprobs"] and all(g.error is None for g in grades)
    assert [g.grade for g in grades] == [round(8.5 * 10 / 9, 3), round(1.1 * 10 / 9, 3)]
    assert [g.evaluation for g in grades] == ["8 Correct.", "1 Subtracts."]
    sent = sorted(stub_teacher.requests, key=lambda q: q.user)
    assert [(q.system, q.user) for q in sent] == sorted(
        (m[0]["content"], m[1]["content"]) for m in (grader_messages(p, s, GRADE_FIRST_INSTRUCTION) for p, s in items))
    assert all(q.body["max_tokens"] == 16 and q.body["logprobs"] for q in sent)
