"""The training code's narrow view of `phi_utils.model` (model, checkpoints, tokenizer, FLOPs).

Everything model-specific the loop needs goes through these few functions.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import torch

from ..model import ModelConfig, PhiForCausalLM, get_model_config, load_checkpoint, save_checkpoint
from ..model import flops as _flops
from ..model.tokenizer import load_tokenizer as _load_tokenizer


def backend_name() -> str:
    """Which model implementation training uses (recorded in manifests)."""
    return "phi_utils.model.PhiForCausalLM"


def model_config(name: str, vocab_size: int, dropout: float = 0.0, max_position_embeddings: int = 0) -> ModelConfig:
    """The preset with the paper's attention and residual dropout (§2.3; embedding dropout is not
    reported and stays 0), and a context at least `max_position_embeddings` long."""
    mc = get_model_config(name, vocab_size=vocab_size, attn_pdrop=dropout, resid_pdrop=dropout)
    if max_position_embeddings > mc.block_size:
        mc = get_model_config(name, vocab_size=vocab_size, attn_pdrop=dropout, resid_pdrop=dropout,
                              block_size=max_position_embeddings)
    return mc


def build_model(mc: ModelConfig) -> torch.nn.Module:
    return PhiForCausalLM(mc)


def logits_of(model: torch.nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
    """(B, T, V) logits (the model returns a plain tensor)."""
    return model(input_ids)


def num_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def flops_per_token(mc: ModelConfig, seq_len: int, n_params: int | None = None) -> float:
    """Training FLOPs per token (6N + 12 L C T, PaLM appendix B)."""
    return _flops.flops_per_token(mc, seq_len, training=True)


@functools.lru_cache(maxsize=4)
def _cpu_peak() -> float:
    # an achievable fp32 matmul peak of this CPU: the only honest MFU denominator without a data sheet;
    # fork_rng: measuring draws random matrices, which must not shift the training RNG stream (exact resume)
    with torch.random.fork_rng(devices=[]):
        return _flops.measure_peak_flops("cpu", torch.float32, n=512, seconds=0.3)


def peak_flops(device: torch.device, precision: str) -> float | None:
    """Per-device peak FLOP/s: the GPU's data-sheet value, or a measured fp32 matmul rate on CPU."""
    if device.type == "cuda":
        return _flops.gpu_peak_flops(device, precision if precision != "fp32" else "tf32")
    return _cpu_peak()


def mfu(flops_per_tok: float, tokens_per_s: float, device: torch.device, precision: str, n_devices: int = 1) -> float | None:
    peak = peak_flops(device, precision)
    if not peak or not tokens_per_s:
        return None
    return flops_per_tok * tokens_per_s / (peak * n_devices)


def save_hf(model: torch.nn.Module, tokenizer: Any, out_dir: Path) -> None:
    """HF-format checkpoint (config.json, model.safetensors, tokenizer files)."""
    save_checkpoint(model, tokenizer, out_dir)


def load_hf(path: Path | str) -> tuple[torch.nn.Module, Any]:
    return load_checkpoint(path)


def load_tokenizer(path: Path | str) -> Any:
    return _load_tokenizer(path)


def eos_id(tokenizer: Any) -> int:
    """Id of `<|endoftext|>` (the document separator of §2.3)."""
    tid = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    if tid is None or (tokenizer.unk_token_id is not None and tid == tokenizer.unk_token_id
                       and tokenizer.unk_token != "<|endoftext|>"):
        tid = tokenizer.eos_token_id
    if tid is None:
        raise ValueError("tokenizer has no <|endoftext|> token (needed as the document separator)")
    return int(tid)


def vocab_size(tokenizer: Any) -> int:
    return int(len(tokenizer))
