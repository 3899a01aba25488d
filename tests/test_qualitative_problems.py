"""The unconventional problem set (notebook 10): format, and - in the real sandbox - every
reference solution passes its hidden tests and every deliberately broken variant fails them."""

from __future__ import annotations

import doctest

import pytest

from phi_utils.qualitative.problems import ProblemFormatError, load_problems, parse_problems
from phi_utils.qualitative.stages import check_problem_set


def test_problem_set_shape():
    problems = load_problems()
    assert len(problems) >= 30
    names = [p.entry_point for p in problems]
    assert len(set(names)) == len(names)
    assert any(p.entry_point == "sort_concat_square_deduplicate" for p in problems)  # the paper's example
    for p in problems:
        assert p.broken, f"{p.entry_point} has no broken variant"
        assert f"def {p.entry_point}(" in p.prompt and '"""' in p.prompt
        assert set(p.as_humaneval()) == {"task_id", "prompt", "canonical_solution", "test", "entry_point"}
    assert len(load_problems(limit=5)) == 5


def test_docstring_examples_match_the_reference():
    # the examples in the prompts are what a model sees: they must agree with the reference
    for p in load_problems():
        g: dict = {}
        exec(p.prompt + p.canonical_solution, g)  # our own reference code, not model output
        runner = doctest.DocTestRunner(verbose=False)
        for test in doctest.DocTestFinder().find(g[p.entry_point], p.entry_point, globs=g):
            runner.run(test)
        result = runner.summarize(verbose=False)
        assert result.attempted >= 1 and result.failed == 0, p.entry_point


def test_every_reference_passes_and_every_broken_variant_fails_in_the_sandbox():
    problems = load_problems()
    rows = check_problem_set(problems, timeout_s=10.0, workers=2)
    assert len(rows) == sum(1 + len(p.broken) for p in problems)
    refs_failing = [(r["entry_point"], r["detail"]) for r in rows if r["variant"] == "reference" and not r["passed"]]
    broken_passing = [(r["entry_point"], r["variant"]) for r in rows if r["variant"] != "reference" and r["passed"]]
    assert refs_failing == []
    assert broken_passing == []


def test_malformed_problem_files_name_the_line():
    with pytest.raises(ProblemFormatError, match=r":2: text outside a section"):
        parse_problems("=== f\nstray text\n", "x.txt")
    with pytest.raises(ProblemFormatError, match="no '--- test' section"):
        parse_problems('=== f\n--- prompt\ndef f():\n    """d"""\n--- solution\n    return 1\n', "x.txt")
    with pytest.raises(ProblemFormatError, match="does not exist"):
        load_problems("/nonexistent/problems.txt")
