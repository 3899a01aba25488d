"""Training throughput of the compute-sized presets: this repository's loop (`phi_utils.train.Trainer`
on `phi_utils.model`) against two baselines trained on the same tokens, in one run, interleaved.

- **plain**: the same `phi_utils.model.PhiForCausalLM` (its fast paths installed, as the Trainer's) in the
  loop a straightforward script writes: `torch.optim.AdamW` with its default implementation
  (betas 0.9/0.95, weight decay 0.1 on every parameter), forward, `F.cross_entropy` on the logits,
  backward, clip to 1.0, step, `zero_grad(set_to_none=True)`.
- **nanoGPT-style**: a GPT written here in nanoGPT's style (not its code): learned absolute
  positions, pre-LN blocks (x + attn(ln_1(x)), then x + mlp(ln_2(x))), exact GELU, attention through
  `F.scaled_dot_product_attention(..., dropout_p, is_causal=True)`, dropout 0.1 on embeddings,
  attention and residuals, and an **untied** bias-free LM head (nanoGPT ties it; tied, the GPT would
  have ~25% fewer parameters than the phi-1 preset, untied it is within ~4%), same width, depth,
  heads, MLP width and vocabulary; trained by nanoGPT's loop (AdamW with decay on >= 2-D parameters,
  the default implementation on CPU, `loss / accum`, backward, clip, step), in eager mode.
- **hf** (`--hf`): transformers' `PhiForCausalLM` of the identical shape in the plain loop.

    python benchmarks/bench_train.py                        # micro, nano, pico; fp32, seq 256, batch 16
    python benchmarks/bench_train.py --presets micro --micro-sizes 16 --rounds 3
    python benchmarks/bench_train.py --compile              # also ours with train.compile (compile time too)
    python benchmarks/bench_train.py --gpu                  # + CUDA: phi-1-small, bf16, seq 2048 (MFU)

Every runner is built first; then `--rounds` rounds each time `--steps` optimizer steps of every
runner (the order rotates from round to round), after warm-up steps. Tokens/s is the median over
rounds, and a ratio is the median of the per-round ratios (A and B measured seconds apart, so load
from other processes on a shared machine hits both). MFU counts 6 x matmul parameters + 12 x L x C x T
FLOPs per token (PaLM's rule, `phi_utils.model.flops`, the same count for the GPT: same matmul shapes)
over a measured fp32 matmul rate of this CPU. The GPU part is skipped without CUDA.
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

LR, BETAS, WD, CLIP, DROPOUT = 1e-3, (0.9, 0.95), 0.1, 1.0, 0.1


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
        else:
            name = platform.processor() or platform.machine()
        flags = Path("/proc/cpuinfo").read_text()
        isa = "AVX-512 BF16" if "avx512_bf16" in flags else "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else ""
        return f"{name} ({isa})" if isa else name
    except OSError:
        return platform.processor() or platform.machine()


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _tokens(vocab: int, seq: int, n: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, vocab, size=(n, seq))


def _shifted(x: torch.Tensor, ignore: int) -> torch.Tensor:
    """Targets of each position: the next token; the last position has none (`ignore`)."""
    return F.pad(x[:, 1:], (0, 1), value=ignore)


# --------------------------------------------------------------------------- runners
class Runner:
    """One training setup; `step()` does one optimizer step over the global batch."""

    name: str
    tokens_per_step: int
    mfu_cfg: Any

    def step(self) -> None:
        raise NotImplementedError


class Ours(Runner):
    def __init__(self, tmp: Path, model: str, vocab: int, seq: int, batch: int, micro: int, device: str,
                 precision: str, threads: int, compile_: bool = False, name: str = "ours") -> None:
        from phi_utils.config import TrainConfig
        from phi_utils.model.config import training_model_config
        from phi_utils.train import PackedData, Trainer, build_model
        from phi_utils.train.data import write_packed_arrays
        from phi_utils.train.dist import DistEnv, resolve_device

        d = tmp / f"data_{model}_{seq}"
        if not d.exists():
            tok = _tokens(vocab, seq, batch * 8)
            mask = np.ones_like(tok, dtype=np.uint8)
            write_packed_arrays(d, {"train": (tok, mask), "val": (tok[:4], mask[:4])}, vocab, 0)
        tc = TrainConfig(model=model, max_steps=100_000, global_batch_size=batch, micro_batch_size=micro, seq_len=seq,
                         warmup_steps=1, precision=precision, dropout=DROPOUT, eval_interval=10**9,
                         checkpoint_interval=10**9, compile=compile_, num_threads=threads if device == "cpu" else 0,
                         lr=LR, betas=BETAS, weight_decay=WD, grad_clip=CLIP)
        self.mfu_cfg = training_model_config(model, vocab, tc.dropout, seq)
        self.trainer = Trainer(build_model(self.mfu_cfg), tc, PackedData.open(d, "train"), None,
                               tmp / f"out_{name}_{model}", DistEnv(device=resolve_device(device)), progress=False)
        self.trainer.model.train()
        self.name, self.tokens_per_step, self.device = name, batch * seq, device

    def step(self) -> None:
        self.trainer.train_step()  # reads the loss and grad norm back (a sync), as every step of a run does


class PlainPhi(Runner):
    """`phi_utils.model.PhiForCausalLM` (or transformers' with `hf=True`) in a straightforward loop."""

    def __init__(self, model: str, vocab: int, seq: int, batch: int, micro: int, device: str, precision: str,
                 hf: bool = False, name: str = "plain") -> None:
        from phi_utils.model import PhiForCausalLM
        from phi_utils.model.config import training_model_config
        from phi_utils.model.fast import install

        self.mfu_cfg = mc = training_model_config(model, vocab, DROPOUT, seq)
        torch.manual_seed(0)
        if hf:
            from transformers import PhiForCausalLM as HFPhi

            self.model = HFPhi(mc.to_hf_config()).to(device)
        else:
            self.model = install(PhiForCausalLM(mc)).to(device)
        self.model.train()
        self.hf, self.vocab = hf, mc.vocab_size
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=LR, betas=BETAS, weight_decay=WD,
                                     **({"fused": True} if device == "cuda" else {}))
        self.data = torch.from_numpy(_tokens(vocab, seq, batch * 8)).to(device)
        self.batch, self.micro, self.i = batch, micro, 0
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        self.name, self.tokens_per_step, self.device = name, batch * seq, device

    def step(self) -> None:
        accum = self.batch // self.micro
        total = 0.0
        for _ in range(accum):
            x = self.data[(self.i * self.micro) % len(self.data):][:self.micro]
            self.i += 1
            with torch.autocast(self.device, dtype=self.dtype, enabled=self.dtype is not None):
                if self.hf:
                    loss = self.model(input_ids=x, labels=x).loss
                else:
                    logits = self.model(x)
                    loss = F.cross_entropy(logits.view(-1, self.vocab).float(), _shifted(x, -100).reshape(-1))
            (loss / accum).backward()
            total += float(loss.detach()) / accum
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), CLIP)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)


# nanoGPT-style GPT (written here in its style)
class _SelfAttention(nn.Module):
    def __init__(self, n_embd: int, n_head: int, dropout: float) -> None:
        super().__init__()
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)
        self.resid_dropout = nn.Dropout(dropout)
        self.n_head, self.n_embd, self.dropout = n_head, n_embd, dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True)
        return self.resid_dropout(self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C)))


class _MLP(nn.Module):
    def __init__(self, n_embd: int, inner: int, dropout: float) -> None:
        super().__init__()
        self.c_fc, self.gelu, self.c_proj = nn.Linear(n_embd, inner), nn.GELU(), nn.Linear(inner, n_embd)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class _Block(nn.Module):
    def __init__(self, n_embd: int, n_head: int, inner: int, dropout: float) -> None:
        super().__init__()
        self.ln_1, self.attn = nn.LayerNorm(n_embd), _SelfAttention(n_embd, n_head, dropout)
        self.ln_2, self.mlp = nn.LayerNorm(n_embd), _MLP(n_embd, inner, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, vocab: int, block_size: int, n_layer: int, n_embd: int, n_head: int, inner: int,
                 dropout: float) -> None:
        super().__init__()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(vocab, n_embd), wpe=nn.Embedding(block_size, n_embd), drop=nn.Dropout(dropout),
            h=nn.ModuleList([_Block(n_embd, n_head, inner, dropout) for _ in range(n_layer)]),
            ln_f=nn.LayerNorm(n_embd)))
        self.lm_head = nn.Linear(n_embd, vocab, bias=False)  # untied (see the module docstring)
        self.apply(self._init_weights)
        for pn, p in self.named_parameters():  # GPT-2's scaled init of the residual projections
            if pn.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pos = torch.arange(idx.size(1), device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x)
        logits = self.lm_head(self.transformer.ln_f(x))
        return logits, F.cross_entropy(logits.view(-1, logits.size(-1)).float(), targets.view(-1), ignore_index=-1)


class NanoGPTStyle(Runner):
    def __init__(self, model: str, vocab: int, seq: int, batch: int, micro: int, device: str, precision: str,
                 name: str = "nanogpt") -> None:
        from phi_utils.model.config import training_model_config

        self.mfu_cfg = mc = training_model_config(model, vocab, DROPOUT, seq)
        torch.manual_seed(0)
        self.model = GPT(mc.vocab_size, seq, mc.n_layer, mc.n_embd, mc.n_head, mc.intermediate_size, DROPOUT).to(device)
        self.model.train()
        params = [p for p in self.model.parameters() if p.requires_grad]
        groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": WD},
                  {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
        self.opt = torch.optim.AdamW(groups, lr=LR, betas=BETAS, **({"fused": True} if device == "cuda" else {}))
        self.data = torch.from_numpy(_tokens(vocab, seq, batch * 8)).to(device)
        self.batch, self.micro, self.i = batch, micro, 0
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        self.name, self.tokens_per_step, self.device = name, batch * seq, device

    def _get_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.data[(self.i * self.micro) % len(self.data):][:self.micro]
        self.i += 1
        return x, _shifted(x, -1)

    def step(self) -> None:
        accum = self.batch // self.micro
        X, Y = self._get_batch()
        for _ in range(accum):
            with torch.autocast(self.device, dtype=self.dtype, enabled=self.dtype is not None):
                _, loss = self.model(X, Y)
                loss = loss / accum
            X, Y = self._get_batch()
            loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), CLIP)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        float(loss.detach())  # nanoGPT logs loss.item() (here every step, as the other loops)


def n_params(r: Runner) -> int:
    m = r.trainer.raw_model if isinstance(r, Ours) else r.model
    return sum(p.numel() for p in m.parameters())


# --------------------------------------------------------------------------- interleaved timing
def interleave(runners: list[Runner], steps: int, rounds: int, warmup: int) -> dict[str, list[float]]:
    """Tokens/s of every runner per round, measured A, B, C, A, B, C ... (order rotated each round)."""
    for r in runners:
        for _ in range(warmup):
            r.step()
        _sync(r.device)
    tps: dict[str, list[float]] = {r.name: [] for r in runners}
    for k in range(rounds):
        for r in runners[k % len(runners):] + runners[:k % len(runners)]:
            t0 = time.perf_counter()
            for _ in range(steps):
                r.step()
            _sync(r.device)
            tps[r.name].append(steps * r.tokens_per_step / (time.perf_counter() - t0))
    return tps


def ratio(tps: dict[str, list[float]], a: str, b: str) -> float:
    return statistics.median(x / y for x, y in zip(tps[a], tps[b]))


def fmt_pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", default="micro,nano,pico", help="comma-separated model presets")
    ap.add_argument("--vocab", type=int, default=2048, help="tokenizer size (padded to a multiple of 64)")
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16, help="global batch (sequences per optimizer step)")
    ap.add_argument("--micro-sizes", default="16,8", help="micro-batches to measure; baselines and ratios use the first")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3, help="optimizer steps per runner per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--hf", action="store_true", help="also transformers' PhiForCausalLM in the plain loop")
    ap.add_argument("--compile", action="store_true", help="also ours with train.compile=True (reports compile time)")
    ap.add_argument("--bf16", action="store_true", help="also ours with train.precision=bf16 (autocast)")
    ap.add_argument("--gpu", action="store_true", help="also the CUDA phi-1-small bf16 seq-2048 benchmark")
    ap.add_argument("--gpu-model", default="phi-1-small")
    ap.add_argument("--gpu-compile", action="store_true", help="torch.compile our model on GPU")
    args = ap.parse_args()

    from phi_utils.model.flops import device_peak_flops, mfu

    torch.set_num_threads(args.threads)
    micros = [int(m) for m in args.micro_sizes.split(",")]
    mb = micros[0]
    peak = device_peak_flops("cpu", "fp32")
    results = []
    with tempfile.TemporaryDirectory() as tmp_:
        tmp = Path(tmp_)
        for preset in args.presets.split(","):
            cfg = dict(model=preset, vocab=args.vocab, seq=args.seq, batch=args.batch, device="cpu", precision="fp32")
            runners: list[Runner] = []
            for m in micros:
                runners.append(Ours(tmp, **cfg, micro=m, threads=args.threads, name=f"ours_mb{m}"))
            for m in micros:
                runners.append(PlainPhi(**cfg, micro=m, name=f"plain_mb{m}"))
            runners.append(NanoGPTStyle(**cfg, micro=mb, name=f"nanogpt_mb{mb}"))
            if args.hf:
                runners.append(PlainPhi(**cfg, micro=mb, hf=True, name=f"hf_mb{mb}"))
            compile_s = None
            if args.compile:
                t0 = time.perf_counter()
                rc = Ours(tmp, **cfg, micro=mb, threads=args.threads, compile_=True, name=f"ours_compiled_mb{mb}")
                rc.step()
                first = time.perf_counter() - t0
                t1 = time.perf_counter()
                rc.step()
                compile_s = first - (time.perf_counter() - t1)
                runners.append(rc)
            if args.bf16:
                runners.append(Ours(tmp, **{**cfg, "precision": "bf16"}, micro=mb, threads=args.threads,
                                    name=f"ours_bf16_mb{mb}"))
            tps = interleave(runners, args.steps, args.rounds, args.warmup)
            med = {k: statistics.median(v) for k, v in tps.items()}
            mc = runners[0].mfu_cfg
            results.append(dict(preset=preset, tps=tps, med=med, compile_s=compile_s,
                                params={r.name: n_params(r) for r in runners}, mc=mc))
            print(f"{preset}: " + ", ".join(f"{k} {v:,.0f}" for k, v in med.items()) + " tokens/s", flush=True)
            del runners

    from phi_utils.model.flops import measure_peak_flops

    peak = max(peak, measure_peak_flops("cpu", torch.float32))  # again: a busy start reads low
    for r in results:
        mc = r["mc"]
        r["mfu"] = {k: mfu(v, mc, args.seq, peak_flops=peak) for k, v in r["med"].items()}
    print(f"\nhost: {cpu_name()}; torch {torch.__version__}, {args.threads} threads; fp32, dropout {DROPOUT}, "
          f"vocab {args.vocab}, seq {args.seq}, global batch {args.batch}; measured fp32 matmul peak "
          f"{peak / 1e9:.0f} GFLOP/s; medians of {args.rounds} interleaved rounds of {args.steps} steps\n")
    print(f"| preset | params ours / GPT | ours tok/s | plain tok/s | nanoGPT-style tok/s | ours / plain | "
          f"ours / nanoGPT-style | MFU ours | MFU plain | MFU nanoGPT-style |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    o, p, n = f"ours_mb{mb}", f"plain_mb{mb}", f"nanogpt_mb{mb}"
    for r in results:
        print(f"| {r['preset']} (micro-batch {mb}) | {r['params'][o] / 1e6:.3f}M / {r['params'][n] / 1e6:.3f}M | "
              f"{r['med'][o]:,.0f} | {r['med'][p]:,.0f} | {r['med'][n]:,.0f} | {ratio(r['tps'], o, p):.2f}x | "
              f"{ratio(r['tps'], o, n):.2f}x | {fmt_pct(r['mfu'][o])} | {fmt_pct(r['mfu'][p])} | {fmt_pct(r['mfu'][n])} |")
    if len(micros) > 1:
        print("\n| preset | " + " | ".join(f"ours mb {m} tok/s" for m in micros) + " | "
              + " | ".join(f"plain mb {m} tok/s" for m in micros) + f" | ours mb {micros[1]} / mb {mb} |")
        print("|---|" + "---|" * (2 * len(micros) + 1))
        for r in results:
            print(f"| {r['preset']} | " + " | ".join(f"{r['med'][f'ours_mb{m}']:,.0f}" for m in micros) + " | "
                  + " | ".join(f"{r['med'][f'plain_mb{m}']:,.0f}" for m in micros)
                  + f" | {ratio(r['tps'], f'ours_mb{micros[1]}', o):.2f}x |")
    extra = [k for k in results[0]["med"] if k.startswith(("hf_", "ours_compiled", "ours_bf16"))]
    if extra:
        print("\n| preset | " + " | ".join(f"{k} tok/s | ours / {k}" for k in extra) + " | compile s |")
        print("|---|" + "---|---|" * len(extra) + "---|")
        for r in results:
            cs = "-" if r["compile_s"] is None else f"{r['compile_s']:.1f}"
            print(f"| {r['preset']} | " + " | ".join(f"{r['med'][k]:,.0f} | {ratio(r['tps'], o, k):.2f}x" for k in extra)
                  + f" | {cs} |")

    if args.gpu or torch.cuda.is_available():
        if torch.cuda.is_available():
            g = dict(model=args.gpu_model, vocab=51200, seq=2048, batch=8, micro=8, device="cuda", precision="bf16")
            with tempfile.TemporaryDirectory() as tmp_:
                runners = [Ours(Path(tmp_), **g, threads=0, compile_=args.gpu_compile),
                           PlainPhi(**g, hf=True, name="hf")]
                tps = interleave(runners, max(2, args.steps), args.rounds, args.warmup)
            gpeak = device_peak_flops("cuda", "bf16")
            mc = runners[0].mfu_cfg
            med = {k: statistics.median(v) for k, v in tps.items()}
            print(f"\n| {torch.cuda.get_device_name()} {args.gpu_model} bf16 seq 2048 x 8 | ours tok/s | "
                  f"transformers PhiForCausalLM + plain loop tok/s | ratio | ours MFU | baseline MFU |")
            print("|---|---|---|---|---|---|")
            print(f"| | {med['ours']:,.0f} | {med['hf']:,.0f} | {ratio(tps, 'ours', 'hf'):.2f}x | "
                  f"{fmt_pct(mfu(med['ours'], mc, 2048, peak_flops=gpeak))} | {fmt_pct(mfu(med['hf'], mc, 2048, peak_flops=gpeak))} |")
        else:
            print("\nGPU benchmark skipped: CUDA is not available")


if __name__ == "__main__":
    main()
