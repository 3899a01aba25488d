"""Benchmark of synthetic-data generation and validation (notebooks 03/04) on the real local teacher.

Measures, in one run:
* generation: textbook passages and exercises per minute from the real llama.cpp teacher (fresh
  requests = cache miss), against a named baseline: the same requests replayed from the response
  cache (cache hit) - the speed-up a resumed or re-run stage gets;
* validation: candidates checked per minute in the sandbox, `run_programs(workers=2)` against the
  baseline `workers=1`, on the open exercise sample (real GPT-3.5 exercises) when present;
* the share kept at each filter (reply, valid code, code runs, stated outputs / tests, dedup).

Usage: `python benchmarks/bench_synth.py [--model smollm2-135m] [--n 4] [--open 60]`
(the 1.5B teacher: `--model qwen2.5-coder-1.5b`, ~20 s per passage on 2 cores).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m", help="local teacher model name")
    ap.add_argument("--n", type=int, default=4, help="passages and exercises generated")
    ap.add_argument("--open", type=int, default=60, help="open exercises validated (0 = skip)")
    ap.add_argument("--max-tokens", type=int, default=160)
    args = ap.parse_args()

    from phi_utils.config import SHARED_DATA, get_profile
    from phi_utils.steps import open_run
    from phi_utils.synth import exercises, textbooks
    from phi_utils.synth.common import funnel, open_teacher, run_sandboxed
    from phi_utils.synth.exercises import _open_rows, exercise_program, generate_exercises, parse_rows, validate_programs
    from phi_utils.synth.textbooks import _check_rows, generate_passages

    cfg = get_profile("smoke")
    cfg.teacher.local_model = args.model
    rd = open_run(cfg, Path(tempfile.mkdtemp(prefix="bench_synth_")))
    results: list[tuple[str, int, float]] = []
    teacher = open_teacher(cfg, rd)
    print("teacher:", teacher.label)
    try:
        t0 = time.time()
        tb = generate_passages(teacher, args.n, 0, 3, args.max_tokens)
        results.append(("textbook passages, cache miss (generation)", args.n, time.time() - t0))
        t0 = time.time()
        generate_passages(teacher, args.n, 0, 3, args.max_tokens)
        results.append(("textbook passages, cache hit (baseline: replay)", args.n, time.time() - t0))
        t0 = time.time()
        ex = generate_exercises(teacher, args.n, 0, args.max_tokens)
        results.append(("exercises, cache miss (generation)", args.n, time.time() - t0))
        t0 = time.time()
        generate_exercises(teacher, args.n, 0, args.max_tokens)
        results.append(("exercises, cache hit (baseline: replay)", args.n, time.time() - t0))
    finally:
        teacher.close()

    _check_rows(tb, 10.0, "validating passages")
    parse_rows(ex)
    pend = [r for r in ex if r["status"] == "pending"]
    for r, (st, det) in zip(pend, validate_programs([exercise_program(r["prompt"], r["solution"], r["tests"]) for r in pend], 5.0)):
        r.update(status=st, detail=det)

    open_funnel = None
    src = SHARED_DATA / "synthetic" / "jina-code-exercises-sample"
    if args.open and src.exists():
        rows = _open_rows(str(src), args.open)
        ok = [r for r in rows if r["status"] == "pending"]
        progs = [exercise_program(r["prompt"], r["solution"], []) for r in ok]
        from phi_utils.sandbox import run_programs

        t0 = time.time()
        run_programs(progs, workers=1, timeout_s=5.0, progress=False)
        results.append(("open exercises validated, workers=1 (baseline)", len(progs), time.time() - t0))
        t0 = time.time()
        res = run_sandboxed(progs, 5.0, "validating open exercises")
        results.append(("open exercises validated, workers=2", len(progs), time.time() - t0))
        for r, x in zip(ok, res):
            r["status"] = "kept" if x.passed else ("timeout" if x.status == "timed out" else "failed_tests")
        open_funnel = funnel(rows, exercises.FILTERS)
    else:
        print(f"open exercise sample absent ({src}); validation speed-up skipped")

    print("\n| setting | items | wall s | items / min |\n|---|---:|---:|---:|")
    rate = {}
    for name, n, dt in results:
        rate[name] = 60 * n / dt if dt > 0 else float("inf")
        print(f"| {name} | {n} | {dt:.3f} | {rate[name]:,.1f} |")
    pairs = [("textbook passages, cache hit (baseline: replay)", "textbook passages, cache miss (generation)"),
             ("exercises, cache hit (baseline: replay)", "exercises, cache miss (generation)"),
             ("open exercises validated, workers=2", "open exercises validated, workers=1 (baseline)")]
    print()
    for a, b in pairs:
        if a in rate and b in rate:
            print(f"ratio  {a} / {b}: {rate[a] / rate[b]:.2f}x")

    def share_table(title: str, funnel: dict[str, int]) -> None:
        n = max(funnel["generated"], 1)
        print(f"\n{title}\n| after filter | kept | share |\n|---|---:|---:|")
        for k, v in funnel.items():
            print(f"| {k} | {v} | {v / n:.0%} |")

    share_table(f"textbook passages ({teacher.label})", funnel(tb, textbooks.FILTERS))
    share_table(f"exercises ({teacher.label}; contamination/dedup not run here)", funnel(ex, exercises.FILTERS))
    if open_funnel:
        share_table("open exercises (jinaai/code_exercises sample; no tests: kept when they run)", open_funnel)


if __name__ == "__main__":
    main()
