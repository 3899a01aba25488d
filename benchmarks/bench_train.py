"""Training throughput: this repository's loop (`phi_utils.train.Trainer` on `phi_utils.model`) against a
named baseline in the same run: `transformers.PhiForCausalLM` of the identical shape trained by a
plain PyTorch loop (AdamW, `model(input_ids, labels=...)`, backward, clip, step) - what a
Hugging Face-style script does.

    python benchmarks/bench_train.py                 # CPU, tiny preset, seq 256, micro-batch 8
    python benchmarks/bench_train.py --gpu           # + CUDA: phi-1-small, bf16, seq 2048 (MFU)

Prints a markdown table and the ratio ours / baseline. The GPU part is skipped without CUDA.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _data(directory: Path, vocab: int, seq: int, n: int) -> Path:
    from phi_utils.train.data import write_packed_arrays

    rng = np.random.default_rng(0)
    tok = rng.integers(0, vocab, size=(n, seq))
    mask = np.ones_like(tok, dtype=np.uint8)
    write_packed_arrays(directory, {"train": (tok, mask), "val": (tok[:4], mask[:4])}, vocab, 0)
    return directory


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def bench_ours(model: str, vocab: int, seq: int, micro: int, accum: int, steps: int, device: str, precision: str,
               compile_: bool) -> dict:
    from phi_utils.config import TrainConfig
    from phi_utils.model.config import training_model_config
    from phi_utils.train import PackedData, Trainer
    from phi_utils.train.dist import DistEnv, resolve_device

    with tempfile.TemporaryDirectory() as tmp:
        d = _data(Path(tmp) / "data", vocab, seq, micro * accum * 4)
        tc = TrainConfig(model=model, max_steps=steps + 2, global_batch_size=micro * accum, micro_batch_size=micro,
                         seq_len=seq, warmup_steps=1, precision=precision, dropout=0.1, eval_interval=10_000,
                         checkpoint_interval=10_000, compile=compile_)
        mc = training_model_config(model, vocab, tc.dropout, seq)
        env = DistEnv(device=resolve_device(device))
        t = Trainer(tc, mc, PackedData.open(d, "train"), None, Path(tmp) / "out", env, progress=False)
        for _ in range(2):  # warm-up (allocation, compilation)
            t.train_step()
        _sync(device)
        t0 = time.perf_counter()
        recs = [t.train_step() for _ in range(steps)]
        _sync(device)
        dt = time.perf_counter() - t0
        tps = steps * tc.global_batch_size * seq / dt
        return {"tokens_per_s": tps, "mfu": t.mfu(tps),
                "loss": recs[-1]["loss"], "params": t.n_params}


def bench_hf_baseline(model: str, vocab: int, seq: int, micro: int, accum: int, steps: int, device: str,
                      precision: str) -> dict:
    from transformers import PhiForCausalLM

    from phi_utils.model.config import training_model_config
    from phi_utils.model.flops import device_peak_flops, mfu

    mc = training_model_config(model, vocab, 0.1, seq)
    torch.manual_seed(0)
    m = PhiForCausalLM(mc.to_hf_config()).to(device)
    m.train()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3, weight_decay=0.1, betas=(0.9, 0.95),
                            **({"fused": True} if device == "cuda" else {}))
    rng = np.random.default_rng(0)
    data = torch.from_numpy(rng.integers(0, vocab, size=(micro * accum * 4, seq))).to(device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)

    def step(i: int) -> float:
        tot = 0.0
        for j in range(accum):
            x = data[((i * accum + j) * micro) % len(data):][:micro]
            with torch.autocast(device, dtype=dtype, enabled=dtype is not None):
                loss = m(input_ids=x, labels=x).loss / accum
            loss.backward()
            tot += float(loss.detach())
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return tot

    for i in range(2):
        step(i)
    _sync(device)
    t0 = time.perf_counter()
    for i in range(steps):
        step(i)
    _sync(device)
    dt = time.perf_counter() - t0
    tps = steps * micro * accum * seq / dt
    return {"tokens_per_s": tps, "mfu": mfu(tps, mc, seq, peak_flops=device_peak_flops(device, precision)),
            "params": sum(p.numel() for p in m.parameters())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--gpu", action="store_true", help="also run the CUDA phi-1-small bf16 seq-2048 MFU benchmark")
    ap.add_argument("--gpu-model", default="phi-1-small")
    ap.add_argument("--compile", action="store_true", help="torch.compile our model on GPU")
    args = ap.parse_args()

    rows = []
    cfg = dict(model="tiny", vocab=4096, seq=256, micro=8, accum=2, steps=args.steps, device="cpu", precision="fp32")
    base = bench_hf_baseline(**cfg)
    ours = bench_ours(**cfg, compile_=False)
    rows.append(("CPU tiny fp32 seq 256 x 16", ours, base))

    if args.gpu or torch.cuda.is_available():
        if torch.cuda.is_available():
            g = dict(model=args.gpu_model, vocab=51200, seq=2048, micro=8, accum=1, steps=args.steps, device="cuda",
                     precision="bf16")
            gbase = bench_hf_baseline(**g)
            gours = bench_ours(**g, compile_=args.compile)
            rows.append((f"{torch.cuda.get_device_name()} {args.gpu_model} bf16 seq 2048 x 8", gours, gbase))
        else:
            print("GPU benchmark skipped: CUDA is not available")

    print(f"\ntorch {torch.__version__}, {torch.get_num_threads()} CPU threads\n")
    print("| setting | ours tokens/s | baseline (transformers PhiForCausalLM + plain loop) tokens/s | ratio | ours MFU | baseline MFU |")
    print("|---|---|---|---|---|---|")
    for name, o, b in rows:
        fm = lambda x: "-" if x is None else f"{x:.1%}"  # noqa: E731
        print(f"| {name} | {o['tokens_per_s']:,.0f} | {b['tokens_per_s']:,.0f} | "
              f"{o['tokens_per_s'] / b['tokens_per_s']:.2f}x | {fm(o['mfu'])} | {fm(b['mfu'])} |")
    print("\nCPU MFU is relative to a measured fp32 matmul rate of this CPU; GPU MFU to the data-sheet bf16 peak.")


if __name__ == "__main__":
    main()
