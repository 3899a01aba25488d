"""FLOPs per token (with attention) and model FLOPs utilisation (MFU).

Counting follows PaLM (Chowdhery et al. 2022, appendix B): a training token costs 6 FLOPs per
matmul parameter (2 forward + 4 backward) plus 12 * n_layer * n_embd * seq_len for the attention
score and value products (no discount for the causal mask). Embedding lookups are free; the LM
head is a matmul and counts.
"""

from __future__ import annotations

import functools
import time

import torch

from .config import ModelConfig


def matmul_params(mc: ModelConfig) -> int:
    """Parameters that take part in a matmul per token: all but the embedding table, LayerNorms and biases."""
    C, L = mc.n_embd, mc.n_layer
    per_block = 3 * C * C + C * C + 2 * C * mc.intermediate_size
    return L * per_block + C * mc.vocab_size


def flops_per_token(mc: ModelConfig, seq_len: int, training: bool = True) -> float:
    """FLOPs for one token at context `seq_len`: 6N + 12*L*C*T when training, 2N + 4*L*C*T forward only."""
    n, attn = matmul_params(mc), mc.n_layer * mc.n_embd * seq_len
    return float(6 * n + 12 * attn) if training else float(2 * n + 4 * attn)


def training_flops(n_params: float, n_tokens: float) -> float:
    """The usual 6 * N * D estimate of a whole training run (Kaplan et al. 2020)."""
    return 6.0 * n_params * n_tokens


PEAK_FLOPS: dict[str, dict[str, float]] = {
    # dense tensor-core peaks per GPU from NVIDIA's data sheets (no sparsity)
    "A100": {"bf16": 312e12, "fp16": 312e12, "tf32": 156e12, "fp32": 19.5e12},
    "H100 SXM": {"bf16": 989e12, "fp16": 989e12, "tf32": 495e12, "fp32": 67e12},
    "H100 PCIe": {"bf16": 756e12, "fp16": 756e12, "tf32": 378e12, "fp32": 51e12},
    "H100 NVL": {"bf16": 835e12, "fp16": 835e12, "tf32": 418e12, "fp32": 60e12},
    "H200": {"bf16": 989e12, "fp16": 989e12, "tf32": 495e12, "fp32": 67e12},
    "A10G": {"bf16": 125e12, "fp16": 125e12, "tf32": 62.5e12, "fp32": 31.2e12},
}
"""Peak dense FLOP/s by GPU name and precision."""

PAPER_A100_MFU = 0.46
"""The MFU the paper's own numbers imply: 770 A100-hours for phi-1-base's 51B tokens (§2.3) at 312 TFLOP/s."""


def gpu_peak_flops(device: torch.device | str | None = None, precision: str = "bf16") -> float | None:
    """Peak FLOP/s of the CUDA device for `precision`, from its name; None if unknown or no CUDA."""
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name(device)
    for key in sorted(PEAK_FLOPS, key=len, reverse=True):  # "H100 SXM" before "H100"
        parts = key.split()
        if all(p.lower() in name.lower() for p in parts):
            return PEAK_FLOPS[key].get(precision)
    if "H100" in name:  # e.g. "NVIDIA H100 80GB HBM3" is the SXM part
        return PEAK_FLOPS["H100 SXM"].get(precision)
    return None


def measure_peak_flops(device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, n: int = 1024,
                       seconds: float = 0.3, repeats: int = 3) -> float:
    """Measured matmul FLOP/s on `device` (an achievable peak, used as the CPU denominator): the best of
    `repeats` windows of `seconds` each, so a window that shared the cores with other work does not
    set the denominator (a low one makes MFU exceed 1). Below n = 1024 a CPU matmul is far from its
    peak, so `n` is at least that for a CPU denominator."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    best = 0.0
    for _ in range(repeats):
        iters, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            a @ b
            iters += 1
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()
        best = max(best, 2 * n ** 3 * iters / (time.perf_counter() - t0))
    return best


@functools.lru_cache(maxsize=4)
def _measured_cpu_peak() -> float:
    # fork_rng: measuring draws random matrices, which must not shift a training RNG stream (exact resume)
    with torch.random.fork_rng(devices=[]):
        return measure_peak_flops("cpu", torch.float32)


def device_peak_flops(device: torch.device | str, precision: str = "bf16") -> float | None:
    """Per-device peak FLOP/s: a GPU's data-sheet value for `precision` (fp32 training runs on TF32
    tensor cores), or on CPU a measured fp32 matmul rate (the only honest denominator without a
    data sheet)."""
    device = torch.device(device)
    if device.type == "cuda":
        return gpu_peak_flops(device, "tf32" if precision == "fp32" else precision)
    return _measured_cpu_peak()


def mfu(tokens_per_s: float, mc: ModelConfig, seq_len: int, peak_flops: float | None = None,
        precision: str = "bf16", n_devices: int = 1) -> float | None:
    """Model FLOPs utilisation: achieved training FLOP/s over the peak of `n_devices` devices.

    `peak_flops` per device: given (e.g. `device_peak_flops(device, precision)`), else the CUDA device's
    table value for `precision`; an unknown peak gives None.
    """
    peak = peak_flops if peak_flops is not None else gpu_peak_flops(precision=precision)
    if not peak:
        return None
    return tokens_per_s * flops_per_token(mc, seq_len, training=True) / (peak * n_devices)
