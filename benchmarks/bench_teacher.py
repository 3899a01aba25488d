"""Teacher benchmark: llama.cpp's llama-server (new) against llama-cpp-python's server (baseline), same run.

For one local model (default the tiny profile's Qwen2.5-Coder-1.5B), each engine is started in
turn with the same model file and runs the same workloads:

* prompt processing: a ~500-token prompt with a fresh nonce (no prefix reuse), max_tokens=1;
* single-stream decoding: one 128-token generation;
* notebook 03/04's generation workload: `generate_passages` + `generate_exercises` (the stages'
  own request builders, greedy, `--gen-tokens` each) through `chat_many` -> aggregate generated tok/s;
* notebook 01's rating workload: the first `--snippets` labelled snippets of `rating_snippets.jsonl`, rated with the
  annotation prompt twice (rubric as is, and reversed, as the two-pass reliability check does)
  through `rate_many` -> ratings per minute, teacher-card AUC (95% bootstrap interval) and
  two-pass Spearman;
* greedy identity: the generation workload's texts of the two engines compared one by one;
* with `--draft MODEL`: the same server with a draft model (speculative decoding) against itself without.

The baseline is today's configuration (llama-cpp-python, concurrency 1); the new engine runs with
`--parallel` slots and as many requests in flight. The bounds: the arithmetic peak of the build's
AVX2 kernels on these cores (fp32 FMA and int8 multiply-add rate x clock) divided by the model's
FLOPs per token, and the memory bandwidth (measured here, a large numpy copy) divided by the weight
bytes one decoding step reads. Absolute numbers are inflated by other work on the machine (the load
average is printed); the ratios are measured in one run.

The baseline needs llama-cpp-python, which set-up compiles only on demand:
`PHI_LLAMA_CPP_PYTHON=1 bash scripts/setup.sh`.

    .venv/bin/python benchmarks/bench_teacher.py [--model qwen2.5-coder-1.5b] [--parallel 4,8] [--gen-n 4]
        [--draft qwen2.5-coder-0.5b] [--other-build ENGINE_DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from phi_utils.config import get_profile  # noqa: E402
from phi_utils.filtering.annotate import agreement_stats, build_prompt  # noqa: E402
from phi_utils.rundir import RunDir  # noqa: E402
from phi_utils.stats import bootstrap_auc  # noqa: E402
from phi_utils.synth.exercises import generate_exercises  # noqa: E402
from phi_utils.synth.textbooks import generate_passages  # noqa: E402
from phi_utils.teacher import Teacher, TeacherServerError  # noqa: E402
from phi_utils.teacher.card import load_snippets  # noqa: E402
from phi_utils.teacher.engine import build_info, llama_server_binary  # noqa: E402
from phi_utils.teacher.models import resolve_model  # noqa: E402

FILLER = "def add(a, b):\n    \"\"\"Return the sum of a and b.\"\"\"\n    return a + b\n\n"


def _msg(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


# --------------------------------------------------------------------------- bounds
def model_shapes(path: Path) -> dict[str, Any]:
    """Weight bytes read per decoding step and matmul FLOPs per token, from llama.cpp's own count
    (the token-embedding table is excluded from both: one row of it is read per token)."""
    import llama_cpp

    llama_cpp.llama_backend_init()
    params = llama_cpp.llama_model_default_params()
    m = llama_cpp.llama_model_load_from_file(str(path).encode(), params)  # mmap: no weights are computed on
    try:
        size, n = int(llama_cpp.llama_model_size(m)), int(llama_cpp.llama_model_n_params(m))
        emb = int(llama_cpp.llama_model_n_embd(m)) * int(llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(m)))
    finally:
        llama_cpp.llama_model_free(m)
    return {"weight_bytes_per_step": size * (n - emb) / n, "flops_per_token": 2 * (n - emb), "params": n,
            "model_bytes": size}


def memory_bandwidth_gbs(mib: int = 512, reps: int = 5) -> float:
    """Best-of-`reps` bandwidth of one thread copying a large array (read + write bytes), per second
    of *CPU* time (wall time on a shared machine measures the load, not the memory)."""
    a = np.ones(mib * (1 << 20) // 8)
    b = np.empty_like(a)
    np.copyto(b, a)  # touch every page first
    best = 0.0
    for _ in range(reps):
        t = time.process_time()
        np.copyto(b, a)
        best = max(best, 2 * a.nbytes / max(time.process_time() - t, 1e-9) / 1e9)
    return best


def cpu_ghz() -> float:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                return float(line.split(":")[1]) / 1000
    except OSError:
        pass
    return 2.0


def bounds(model: Path, cores: int) -> dict[str, float]:
    """Upper bounds on these cores for this model (AVX2 build: 2 FMA ports x 8 fp32 lanes x 2 FLOPs;
    int8: 2 ports x 32 byte-multiply-adds x 2 ops per cycle and core)."""
    s = model_shapes(model)
    ghz = cpu_ghz()
    fp32 = cores * ghz * 1e9 * 32
    int8 = cores * ghz * 1e9 * 128
    bw = memory_bandwidth_gbs() * 1e9
    flags = next((x for x in Path("/proc/cpuinfo").read_text().splitlines() if x.startswith("flags")), "").split()
    # a native build's int8 rate: AVX-512 VNNI 2 ports x 64 multiply-adds; AMX's tile unit 1024 per cycle and core
    native = cores * ghz * 1e9 * (2048 if "amx_int8" in flags else 256 if "avx512_vnni" in flags else 128)
    return {**s, "ghz": ghz, "cores": cores, "fp32_flops": fp32, "int8_ops": int8, "bandwidth_Bps": bw,
            "int8_ops_native": native, "prompt_bound_native_tok_s": native / s["flops_per_token"],
            "prompt_bound_int8_tok_s": int8 / s["flops_per_token"],
            "prompt_bound_fp32_tok_s": fp32 / s["flops_per_token"],
            "decode_bound_bw_tok_s": bw / s["weight_bytes_per_step"]}


# --------------------------------------------------------------------------- one engine
def run_engine(model: str, engine: str, parallel: int, concurrency: int, gen_n: int, gen_tokens: int,
               threads: int, n_snippets: int, work: Path, draft: str | None = None,
               draft_max: int = 8) -> dict[str, Any]:
    os.environ.pop("PHI_TEACHER_BASE_URL", None)
    prof = get_profile("tiny")
    rd = RunDir.open(prof, work / engine)
    cfg = dataclasses.replace(prof.teacher, local_model=model, engine=engine, parallel=parallel,
                              concurrency=concurrency, threads=threads, temperature=0.0, n_ctx=2048,
                              draft_model=draft, draft_max=draft_max)
    t0 = time.perf_counter()
    teacher = Teacher.from_config(cfg, rd)
    out: dict[str, Any] = {"engine": teacher.engine, "startup_s": time.perf_counter() - t0,
                           "parallel": parallel, "concurrency": concurrency}
    assert teacher.engine == engine, f"asked for {engine}, got {teacher.engine}"
    try:
        teacher.chat(_msg("Say hi."), max_tokens=4)  # warm-up
        prompt = f"[{time.time_ns()}] Summarise this code in one word.\n" + FILLER * 20
        s = time.perf_counter()
        r = teacher.chat(_msg(prompt), max_tokens=1)
        out["prompt_tok_s"] = r.prompt_tokens / (time.perf_counter() - s)
        s = time.perf_counter()
        r = teacher.chat(_msg(f"[{time.time_ns()}] Write a long Python tutorial about lists."), max_tokens=128)
        out["single_gen_tok_s"] = r.completion_tokens / (time.perf_counter() - s)

        before = teacher.stats["completion_tokens"]
        s = time.perf_counter()
        half = max(1, gen_n // 2)
        tb = generate_passages(teacher, half, 7, 3, gen_tokens, desc=f"{engine}: passages")
        ex = generate_exercises(teacher, gen_n - half, 7, gen_tokens, desc=f"{engine}: exercises")
        wall = time.perf_counter() - s
        out["gen_tokens"] = int(teacher.stats["completion_tokens"] - before)
        out["gen_wall_s"] = wall
        out["gen_agg_tok_s"] = out["gen_tokens"] / wall
        out["gen_texts"] = [row["text"] for row in tb] + [row["reply"] for row in ex]
        out["gen_errors"] = sum(bool(row["error"]) for row in tb + ex)

        snippets = load_snippets(n_snippets)  # interleaved good/bad: any prefix is balanced
        jobs = []
        for variant in ("main", "repeat"):
            for sn in snippets:
                system, user, _ = build_prompt(sn["code"], prof.annotation.max_prompt_chars, variant)
                jobs.append((system, user))
        s = time.perf_counter()
        ratings = teacher.rate_many(jobs, desc=f"{engine}: ratings", max_tokens=prof.annotation.reason_tokens)
        wall = time.perf_counter() - s
        out["ratings"] = len(jobs)
        out["ratings_per_min"] = len(jobs) / wall * 60
        scores = [r.score for r in ratings]
        out["rating_methods"] = sorted({r.method for r in ratings})
        main, rep = scores[:len(snippets)], scores[len(snippets):]
        labels = [1 if sn["label"] == "good" else 0 for sn in snippets]
        ok = [i for i, v in enumerate(main) if v is not None]
        auc = bootstrap_auc([labels[i] for i in ok], [main[i] for i in ok])
        out["auc"], out["auc_ci"], out["auc_n"] = auc.mean, auc.ci95, auc.n
        pairs = [(a, b) for a, b in zip(main, rep) if a is not None and b is not None]
        out["spearman"] = agreement_stats([a for a, _ in pairs], [b for _, b in pairs]).get("spearman")
        out["spearman_n"] = len(pairs)
        out["scores"] = scores
        out["requests"] = int(teacher.stats["requests"])
    finally:
        teacher.close()
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="qwen2.5-coder-1.5b")
    p.add_argument("--parallel", default="4",
                   help="llama-server slot counts to measure (as many requests in flight), e.g. 4,8")
    p.add_argument("--threads", default="0", help="llama-server thread counts to measure, e.g. 1,2 (0 = its default)")
    p.add_argument("--gen-n", type=int, default=8, help="generation requests (half passages, half exercises)")
    p.add_argument("--gen-tokens", type=int, default=128, help="completion cap per generation request")
    p.add_argument("--snippets", type=int, default=12, help="labelled snippets rated (x2 passes)")
    p.add_argument("--draft", metavar="MODEL",
                   help="also run llama-server (default build, default threads) with this draft model for "
                        "speculative decoding, e.g. qwen2.5-coder-0.5b, and print it against the same server without")
    p.add_argument("--draft-max", type=int, default=8, help="most tokens drafted per step (with --draft)")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--other-build", type=Path, metavar="ENGINE_DIR",
                   help="also run the llama-server built in this engine directory (e.g. a native build beside "
                        "the portable one) and print it against the default build")
    args = p.parse_args()
    if llama_server_binary() is None:
        print("llama-server is not built: run `bash scripts/build_teacher_engine.sh` first", file=sys.stderr)
        return 1
    if importlib.util.find_spec("llama_cpp") is None:
        print("the baseline, llama-cpp-python, is not installed (set-up compiles it only as the fallback): run "
              "`PHI_LLAMA_CPP_PYTHON=1 bash scripts/setup.sh` first", file=sys.stderr)
        return 1
    path, _, label = resolve_model(args.model)
    b = bounds(path, os.cpu_count() or 1)
    with tempfile.TemporaryDirectory(prefix="bench-teacher-") as tmp:
        base = run_engine(args.model, "llama-cpp-python", 1, 1, args.gen_n, args.gen_tokens, 0, args.snippets,
                          Path(tmp))
        slot_counts = [int(x) for x in args.parallel.split(",")]  # the draft and --other-build runs use the first
        runs = {(int(sl), int(th)): run_engine(args.model, "llama-server", sl, sl, args.gen_n, args.gen_tokens,
                                               int(th), args.snippets, Path(tmp) / f"p{sl}-t{th}")
                for sl in slot_counts for th in args.threads.split(",")}
        drafted = None
        if args.draft:
            resolve_model(args.draft)  # fetched and verified before the clock starts
            drafted = run_engine(args.model, "llama-server", slot_counts[0], slot_counts[0], args.gen_n,
                                 args.gen_tokens, 0, args.snippets, Path(tmp) / "draft", draft=args.draft,
                                 draft_max=args.draft_max)
        other, other_error = None, None
        if args.other_build:
            saved = os.environ.get("PHI_ENGINE_DIR")
            os.environ["PHI_ENGINE_DIR"] = str(args.other_build)
            try:
                if llama_server_binary() is None:
                    print(f"--other-build {args.other_build}: no usable llama-server there", file=sys.stderr)
                    return 1
                other_info = build_info()
                try:
                    other = run_engine(args.model, "llama-server", slot_counts[0], slot_counts[0], args.gen_n,
                                       args.gen_tokens, 0, args.snippets, Path(tmp) / "other")
                except TeacherServerError as e:  # e.g. a native build that dies at start: report, keep the rest
                    other_error = str(e).splitlines()[0]
            finally:
                if saved is None:
                    os.environ.pop("PHI_ENGINE_DIR", None)
                else:
                    os.environ["PHI_ENGINE_DIR"] = saved
    for (sl, th), r in runs.items():
        print(f"llama-server {sl} slots, threads={th or 'default'}: NB 03/04 {r['gen_agg_tok_s']:.1f} tok/s, "
              f"NB 01 {r['ratings_per_min']:.1f} ratings/min, prompt {r['prompt_tok_s']:.0f} tok/s, "
              f"single stream {r['single_gen_tok_s']:.1f} tok/s")
    best = max(runs, key=lambda k: runs[k]["gen_agg_tok_s"] / base["gen_agg_tok_s"]
               + runs[k]["ratings_per_min"] / base["ratings_per_min"])
    new = runs[best]
    best_slots, best_threads = best
    same = sum(a == c for a, c in zip(base["gen_texts"], new["gen_texts"]))
    print(f"\n{label}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs at the end "
          f"(other work on the machine slows the absolute numbers; the ratios are from this one run)\n")
    print(f"bounds: {b['cores']} cores x {b['ghz']:.2f} GHz (AVX2 build): fp32 {b['fp32_flops'] / 1e9:.0f} GFLOP/s, "
          f"int8 {b['int8_ops'] / 1e9:.0f} Gop/s; memory bandwidth {b['bandwidth_Bps'] / 1e9:.1f} GB/s (one thread, per CPU-second); "
          f"{b['flops_per_token'] / 1e9:.2f} GFLOP/token, {b['weight_bytes_per_step'] / 1e9:.3f} GB weights/step")
    print(f"  prompt bound: {b['prompt_bound_int8_tok_s']:.0f} tok/s (int8 AVX2; "
          f"{b['prompt_bound_native_tok_s']:.0f} with this CPU's own int8 units), {b['prompt_bound_fp32_tok_s']:.0f} "
          f"(fp32); single-stream decode bound: {b['decode_bound_bw_tok_s']:.1f} tok/s (bandwidth); "
          f"aggregate decode bound with {best_slots} slots: "
          f"{min(best_slots * b['decode_bound_bw_tok_s'], b['prompt_bound_int8_tok_s']):.1f} tok/s\n")
    print(f"| measure | llama-cpp-python, 1 at a time (baseline) | llama-server, {best_slots} slots, "
          f"threads={best_threads or 'default'} | ratio new/baseline | "
          "fraction of bound (baseline -> new) |")
    print("|---|---|---|---|---|")

    def row(name: str, key: str, fmt: str, bound: float | None = None) -> None:
        a, c = base[key], new[key]
        frac = f"{a / bound:.1%} -> {c / bound:.1%}" if bound else ""
        print(f"| {name} | {a:{fmt}} | {c:{fmt}} | {c / a:.2f}x | {frac} |")

    row("prompt tok/s (fresh prompt)", "prompt_tok_s", ".0f", b["prompt_bound_int8_tok_s"])
    row("single-stream generated tok/s", "single_gen_tok_s", ".1f", b["decode_bound_bw_tok_s"])
    row(f"NB 03/04 workload: aggregate generated tok/s ({args.gen_n} requests)", "gen_agg_tok_s", ".1f",
        min(best_slots * b["decode_bound_bw_tok_s"], b["prompt_bound_int8_tok_s"]))
    row(f"NB 01 workload: ratings per minute ({base['ratings']} ratings)", "ratings_per_min", ".1f")
    print(f"| teacher-card AUC (n={base['auc_n']}, 95% CI) | {base['auc']:.3f} [{base['auc_ci'][0]:.2f}, "
          f"{base['auc_ci'][1]:.2f}] | {new['auc']:.3f} [{new['auc_ci'][0]:.2f}, {new['auc_ci'][1]:.2f}] | | |")
    sp = (lambda v: "n/a" if v is None else f"{v:.3f}")
    print(f"| two-pass Spearman (n={base['spearman_n']}) | {sp(base['spearman'])} | {sp(new['spearman'])} | | |")
    print(f"| requests sent | {base['requests']} | {new['requests']} | | |")
    print(f"| startup s | {base['startup_s']:.1f} | {new['startup_s']:.1f} | | |")
    diffs = [abs(a - c) for a, c in zip(base["scores"], new["scores"]) if a is not None and c is not None]
    print(f"\ngreedy generation texts identical: {same}/{len(base['gen_texts'])}; "
          f"rating scores: max |difference| {max(diffs, default=float('nan')):.4f} over {len(diffs)} ratings; "
          f"errors: {base['gen_errors']} / {new['gen_errors']}")
    if other_error:
        print(f"\nthe build in {args.other_build} did not serve: {other_error}")
    if other is not None:
        default = runs.get((slot_counts[0], 0), new)
        print(f"\nthe build in {args.other_build} ({other_info.get('flags', '?')}) against the default build "
              f"({build_info().get('flags', '?')}), both llama-server with {slot_counts[0]} slots, default threads:")
        print("| measure | default build | other build | ratio other/default |")
        print("|---|---|---|---|")
        for name, key in (("prompt tok/s (fresh prompt)", "prompt_tok_s"), ("single-stream tok/s", "single_gen_tok_s"),
                          ("NB 03/04 aggregate tok/s", "gen_agg_tok_s"), ("NB 01 ratings per minute", "ratings_per_min")):
            print(f"| {name} | {default[key]:.1f} | {other[key]:.1f} | {other[key] / default[key]:.2f}x |")
        print(f"| NB 01 ratings per minute against the baseline | {default['ratings_per_min'] / base['ratings_per_min']:.2f}x "
              f"| {other['ratings_per_min'] / base['ratings_per_min']:.2f}x | |")
        print(f"| teacher-card AUC | {default['auc']:.3f} | {other['auc']:.3f} [{other['auc_ci'][0]:.2f}, "
              f"{other['auc_ci'][1]:.2f}] | |")
        print(f"| two-pass Spearman | {sp(default['spearman'])} | {sp(other['spearman'])} | |")
        same_o = sum(a == c for a, c in zip(default["gen_texts"], other["gen_texts"]))
        print(f"greedy texts identical to the default build: {same_o}/{len(other['gen_texts'])}")
    if drafted is not None:
        plain = runs.get((slot_counts[0], 0), new)
        print(f"\nspeculative decoding: llama-server with draft {args.draft} (up to {args.draft_max} tokens a step) "
              f"against the same build without a draft, {slot_counts[0]} slots, default threads:")
        print("| measure | no draft | draft | ratio draft/no draft | draft against the baseline |")
        print("|---|---|---|---|---|")
        for name, key in (("prompt tok/s (fresh prompt)", "prompt_tok_s"), ("single-stream tok/s", "single_gen_tok_s"),
                          ("NB 03/04 aggregate tok/s", "gen_agg_tok_s"), ("NB 01 ratings per minute", "ratings_per_min")):
            print(f"| {name} | {plain[key]:.1f} | {drafted[key]:.1f} | {drafted[key] / plain[key]:.2f}x "
                  f"| {drafted[key] / base[key]:.2f}x |")
        print(f"| teacher-card AUC | {plain['auc']:.3f} | {drafted['auc']:.3f} | | |")
        print(f"| two-pass Spearman | {sp(plain['spearman'])} | {sp(drafted['spearman'])} | | |")
        same_d = sum(a == c for a, c in zip(plain["gen_texts"], drafted["gen_texts"]))
        print(f"greedy texts identical with and without the draft: {same_d}/{len(drafted['gen_texts'])}")
    if args.json:
        args.json.write_text(json.dumps({"bounds": b, "baseline": base,
                                         "new": {f"{sl} slots, threads {th}": r for (sl, th), r in runs.items()},
                                         "other": other,
                                         "draft": drafted}, indent=1,
                                        default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
