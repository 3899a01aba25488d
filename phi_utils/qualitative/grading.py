"""LLM grading of solutions 0-10 (the paper's §4, GPT-4's role) and the grader's reliability.

The paper asks GPT-4 for "a short verbal evaluation followed by grades 0-10" (exact prompt not
published). We do the same through the teacher layer, with a rubric, at temperature 0 (`verbal`).
A small local grader writes "The solution is correct ... Grade: 10/10" for anything (measured:
Qwen2.5-Coder-1.5B gave 10/10 to every reference, broken variant and garbage completion), so on a
local teacher the grade is asked for first and read from the grade token's probabilities
(`logprobs`, the teacher's `rate`; the evaluation sentence follows it). The paper
does not check the grader; we grade reference solutions and deliberately broken variants (whose
correctness the tests establish) and report how well the grade separates them (ROC AUC) and how
it correlates with the tests.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Sequence

GRADER_SYSTEM = ("You are a strict but fair teacher grading a student's Python solution to a programming "
                 "exercise. You check whether the code does exactly what the docstring asks, including "
                 "edge cases, and you never run the code.")
"""System message of the grading prompt."""

VERBAL_INSTRUCTION = """Write a short verbal evaluation of the solution (one or two sentences: is it correct, what is wrong).
Then, on the last line, give the grade as "Grade: N/10", where 10 means fully correct, 5 means partly
correct and 0 means wrong or missing."""
"""The paper's form: a short verbal evaluation followed by a grade 0-10 (`verbal` grading)."""

GRADE_FIRST_INSTRUCTION = """Grade the solution from 0 to 9: 9 = fully correct, 5 = partly correct, 0 = wrong, missing or not working Python.
Answer with the grade digit first, then one short sentence of evaluation."""
"""`logprobs` grading: the grade token comes first, so its probabilities are the grade."""

_EXERCISE_WHOLE = """Exercise: the function signature and docstring below state the task; the body is the student's solution.
```python
{solution}
```

"""
"""`{solution}` is the whole function (prompt + student's body), so the docstring appears once
(prompt tokens are the teacher's main cost on CPU)."""

_EXERCISE_SEPARATE = """Exercise (the function signature and docstring):
```python
{prompt}```

Student's solution:
```python
{solution}
```

"""
"""Used when the solution does not start with the exercise's prompt (e.g. a rewritten signature)."""

_NUM = r"(\d{1,2}(?:\.\d+)?)"
_PATTERNS = (
    re.compile(rf"grade\W{{0,6}}(?:is\W{{0,3}})?{_NUM}\s*(?:/\s*10|out\s+of\s+10)?", re.I),
    re.compile(rf"score\W{{0,6}}(?:is\W{{0,3}})?{_NUM}\s*(?:/\s*10|out\s+of\s+10)?", re.I),
    re.compile(rf"{_NUM}\s*(?:/\s*10|out\s+of\s+10)\b", re.I),
)


def grader_messages(prompt: str, solution: str, instruction: str = VERBAL_INSTRUCTION) -> list[dict[str, str]]:
    """Chat messages asking the teacher to grade `solution` (the whole function) for `prompt`."""
    if solution.startswith(prompt):
        user = _EXERCISE_WHOLE.format(solution=solution.rstrip())
    else:
        user = _EXERCISE_SEPARATE.format(prompt=prompt, solution=solution.rstrip())
    return [{"role": "system", "content": GRADER_SYSTEM}, {"role": "user", "content": user + instruction}]


def parse_grade(text: str | None) -> float | None:
    """The 0-10 grade in a grader reply, or None when there is none.

    Accepts "Grade: 7/10", "**Grade:** 7", "grade is 7 out of 10", "Score: 6.5", "8/10"; the
    last explicit grade wins (an evaluation may quote other numbers first). Values outside
    0-10 are rejected rather than clipped.
    """
    if not text:
        return None
    for pattern in _PATTERNS:
        matches = pattern.findall(text)
        for raw in reversed(matches):
            value = float(raw)
            if 0.0 <= value <= 10.0:
                return value
    # a bare number on the last non-empty line ("... \n7")
    lines = [ln.strip(" *`.#\t") for ln in text.strip().splitlines() if ln.strip(" *`.#\t")]
    if lines and re.fullmatch(_NUM, lines[-1]):
        value = float(lines[-1])
        if 0.0 <= value <= 10.0:
            return value
    return None


FOLLOW_UP = 'Now give only your grade for the solution, in the form "Grade: N/10".'
"""Second turn sent when the first reply holds no grade (cut by the token cap, or a weak grader)."""

GRADE_GRAMMAR = 'root ::= "Grade: " ("10" | [0-9]) "/10"'
"""GBNF for the follow-up on a local llama.cpp teacher: the reply can only be a grade (other
endpoints ignore it and get the plain request). Constraining the *second* turn keeps the paper's
free verbal evaluation in the first turn while guaranteeing a grade even from a tiny grader."""


@dataclass
class Grade:
    grade: float | None
    """0-10, None when no grade could be obtained (or the request failed)."""
    evaluation: str
    """The grader's reply: verbal evaluation (+ grade); a follow-up reply is appended after `---`."""
    method: str = "failed"
    """`parsed` (grade in the first reply), `follow-up` (asked again for the grade alone) or `failed`."""
    cached: bool = False
    """Served from the teacher cache."""
    error: str | None = None
    """Request error, if any."""


def resolve_grade_method(method: str, teacher: Any) -> str:
    """`auto` -> `logprobs` on a local teacher, `verbal` on an API teacher (GPT-4, as the paper)."""
    if method == "auto":
        return "logprobs" if getattr(teacher, "is_local", False) else "verbal"
    return method


def grade_solutions(teacher: Any, items: Sequence[tuple[str, str]], max_tokens: int = 96,
                    desc: str = "grading", follow_up: bool = True, method: str = "verbal") -> list[Grade]:
    """Grade (prompt, full solution) pairs with the teacher at temperature 0; order kept.

    `verbal` (the paper): when a reply holds no parseable grade (the token cap cut it, or the grader
    ignored the format), one short follow-up turn asks for the grade alone (grammar-constrained on a
    local teacher, see `GRADE_GRAMMAR`); `Grade.method` records which path gave the grade.
    `logprobs`: the grade digit first, its expected value over 0-9 rescaled to 0-10 (`Grade.method`
    `logprobs`, or `parsed` where the endpoint returns no logprobs).
    """
    if not items:
        return []
    if method == "logprobs":
        return _grade_by_logprobs(teacher, items, max_tokens, desc)
    grader = getattr(getattr(teacher, "cfg", None), "rating_model", None)   # GPT-4's role, as the ratings
    calls = [dict(messages=grader_messages(p, s), temperature=0.0, max_tokens=max_tokens, seed=0, model=grader)
             for p, s in items]
    results = teacher.chat_many(calls, desc=desc)
    grades = []
    for r in results:
        text = getattr(r, "text", None) or ""
        g = parse_grade(text)
        grades.append(Grade(g, text, "parsed" if g is not None else "failed",
                            bool(getattr(r, "cached", False)), getattr(r, "error", None)))
    retry = [i for i, g in enumerate(grades) if g.grade is None and g.error is None] if follow_up else []
    if retry:
        second = teacher.chat_many(
            [dict(messages=calls[i]["messages"] + [{"role": "assistant", "content": grades[i].evaluation},
                                                   {"role": "user", "content": FOLLOW_UP}],
                  temperature=0.0, max_tokens=12, seed=0, grammar=GRADE_GRAMMAR, model=grader) for i in retry],
            desc=f"{desc} (grade only)")
        for i, r in zip(retry, second):
            text = getattr(r, "text", None) or ""
            g = parse_grade(text)
            grades[i].evaluation += "\n---\n" + text
            if g is not None:
                grades[i].grade, grades[i].method = g, "follow-up"
            grades[i].error = getattr(r, "error", None)
    return grades


def _grade_by_logprobs(teacher: Any, items: Sequence[tuple[str, str]], max_tokens: int, desc: str) -> list[Grade]:
    msgs = [grader_messages(p, s, GRADE_FIRST_INSTRUCTION) for p, s in items]
    ratings = teacher.rate_many([(m[0]["content"], m[1]["content"]) for m in msgs], desc=desc, max_tokens=max_tokens)
    out = []
    for r in ratings:
        grade = None if r.score is None else round(r.score * 10.0 / 9.0, 3)
        out.append(Grade(grade, (r.raw or r.reason or "").strip(), r.method if grade is not None else "failed",
                         False, None if grade is not None else (r.reason or "no grade in the reply")))
    return out


# ----------------------------------------------------------------------------- reliability statistics
def roc_auc(scores: Sequence[float], labels: Sequence[int]) -> float | None:
    """Probability that a random positive gets a higher score than a random negative (ties 1/2).

    None when one class is missing. Mann-Whitney form, so no dependency and exact for small sets.
    """
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    if not pos or not neg:
        return None
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Pearson correlation (point-biserial when y is 0/1); None when undefined (constant input)."""
    n = len(x)
    if n < 2 or n != len(y):
        return None
    mx, my = sum(x) / n, sum(y) / n
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    if sxx == 0 or syy == 0:
        return None
    return sum((a - mx) * (b - my) for a, b in zip(x, y)) / math.sqrt(sxx * syy)


def reliability_summary(grades: Sequence[float | None], passed: Sequence[bool]) -> dict[str, Any]:
    """How well LLM grades agree with the tests: AUC, correlation, mean grade per class, parse rate.

    `passed` is the test verdict of each graded solution (references pass, broken variants fail).
    Unparsed grades are excluded from AUC/correlation and counted in `unparsed`.
    """
    pairs = [(g, int(p)) for g, p in zip(grades, passed) if g is not None]
    gs = [g for g, _ in pairs]
    ys = [y for _, y in pairs]
    mean = lambda v: (sum(v) / len(v)) if v else None  # noqa: E731
    return {
        "n": len(grades),
        "parsed": len(pairs),
        "unparsed": len(grades) - len(pairs),
        "auc": roc_auc(gs, ys),
        "pearson_with_tests": pearson(gs, [float(y) for y in ys]),
        "mean_grade_passing": mean([g for g, y in pairs if y]),
        "mean_grade_failing": mean([g for g, y in pairs if not y]),
    }
