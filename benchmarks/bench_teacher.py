"""Teacher benchmark: local llama.cpp server throughput and the response cache.

For each local model (default SmolLM2-135M; add the 1.5B with `--models smollm2-135m,qwen2.5-coder-1.5b`):

* prompt processing tok/s: a ~500-token prompt with a fresh nonce (no prefix reuse), max_tokens=1;
* generation tok/s: end-to-end completion tokens / wall time on a short prompt;
* 4 requests with concurrency 1 (baseline) vs concurrency 4: aggregate generation tok/s and ratio;
* cache-hit latency vs a real request (the baseline): ratio.

    .venv/bin/python benchmarks/bench_teacher.py [--models ...] [--gen-tokens 128] [--reps 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from phi_utils.config import get_profile  # noqa: E402
from phi_utils.rundir import RunDir  # noqa: E402
from phi_utils.teacher import Teacher  # noqa: E402

FILLER = ("def add(a, b):\n    \"\"\"Return the sum of a and b.\"\"\"\n    return a + b\n\n")


def _msg(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def bench_model(name: str, gen_tokens: int, reps: int) -> dict[str, float | str]:
    os.environ.pop("PHI_TEACHER_BASE_URL", None)
    prof = get_profile("smoke")
    with tempfile.TemporaryDirectory(prefix="bench-teacher-") as tmp:
        rd = RunDir.open(prof, Path(tmp) / "run")
        t0 = time.perf_counter()
        cfg = dataclasses.replace(prof.teacher, local_model=name, n_ctx=4096, temperature=0.7, concurrency=1)
        teacher = Teacher.from_config(cfg, rd)
        startup = time.perf_counter() - t0
        try:
            teacher.chat(_msg("Say hi."), max_tokens=4)  # warm-up
            pp = []
            for i in range(reps):
                prompt = f"[{time.time_ns()}-{i}] Summarise this code in one word.\n" + FILLER * 20
                s = time.perf_counter()
                r = teacher.chat(_msg(prompt), max_tokens=1, temperature=0)
                pp.append(r.prompt_tokens / (time.perf_counter() - s))
            gen, real_lat = [], []
            for i in range(reps):
                s = time.perf_counter()
                r = teacher.chat(_msg(f"[{time.time_ns()}] Write a short Python tutorial about lists."),
                                 max_tokens=gen_tokens, temperature=0.7, seed=i)
                dt = time.perf_counter() - s
                gen.append(r.completion_tokens / dt)
                real_lat.append(dt)
            # cache hit: an identical request again (its first call was a real one)
            hit = []
            last = f"[{time.time_ns()}] Write a short Python tutorial about tuples."
            teacher.chat(_msg(last), max_tokens=gen_tokens, seed=99)
            for _ in range(20):
                s = time.perf_counter()
                rr = teacher.chat(_msg(last), max_tokens=gen_tokens, seed=99)
                hit.append(time.perf_counter() - s)
                assert rr.cached
            conc = {}
            for c in (1, 4):
                teacher.cfg = dataclasses.replace(cfg, concurrency=c)
                nonce = time.time_ns()
                reqs = [{"messages": _msg(f"[{nonce}-{j}] Explain Python dictionaries briefly."),
                         "max_tokens": gen_tokens, "temperature": 0.7, "seed": j} for j in range(4)]
                s = time.perf_counter()
                res = teacher.chat_many(reqs, desc=f"{name} x{c}")
                conc[c] = sum(r.completion_tokens for r in res) / (time.perf_counter() - s)
        finally:
            teacher.close()
    return {
        "model": name, "startup_s": startup,
        "prompt_tok_s": statistics.median(pp), "gen_tok_s": statistics.median(gen),
        "agg_c1": conc[1], "agg_c4": conc[4], "c4_over_c1": conc[4] / conc[1],
        "real_ms": statistics.median(real_lat) * 1000, "hit_ms": statistics.median(hit) * 1000,
        "real_over_hit": statistics.median(real_lat) / statistics.median(hit),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="smollm2-135m", help="comma-separated known model names")
    p.add_argument("--gen-tokens", type=int, default=128)
    p.add_argument("--reps", type=int, default=2)
    args = p.parse_args()
    rows = [bench_model(m.strip(), args.gen_tokens, args.reps) for m in args.models.split(",") if m.strip()]
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs "
          f"(other work on the machine slows every number below)\n")
    print("| model | startup s | prompt tok/s | gen tok/s | 4 req, concurrency 1 (baseline) tok/s | "
          "4 req, concurrency 4 tok/s | ratio c4/c1 | real request ms (baseline) | cache hit ms | ratio real/hit |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['startup_s']:.1f} | {r['prompt_tok_s']:.0f} | {r['gen_tok_s']:.1f} | "
              f"{r['agg_c1']:.1f} | {r['agg_c4']:.1f} | {r['c4_over_c1']:.2f} | {r['real_ms']:.0f} | "
              f"{r['hit_ms']:.3f} | {r['real_over_hit']:,.0f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
