"""Compute sizing: how big a model each training run gets, and for how many tokens.

The tiny profile's runs are sized by one documented rule instead of a hand-picked step count:

    tokens(budget)   = minutes x 60 x tokens_per_s(preset)           (measured throughput of that preset)
    counted params N = non-embedding parameters (Kaplan et al. 2020), or all of them with
                       `count_embeddings`
    pick             = the largest candidate preset whose tokens >= tokens_per_param x N
                       (Chinchilla's D ~ 20 N, Hoffmann et al. 2022)

Smaller budgets (1/d of the main one) apply the same rule, so a smaller budget gets a smaller model
and fewer tokens, as a compute-optimal frontier would. Finetuning (arm C) trains the pretrained
model for `finetune_token_ratio` of its pretraining tokens: the paper's 6k x 256 x 2048 = 3.1B
finetuning tokens against phi-1-base's 24k x 1024 x 2048 = 50B pretraining tokens (~6%).

This module holds the model presets' shapes too (`MODEL_PRESETS`), so that the configuration layer can
apply the rule without importing torch; `phi_utils.model.config` builds its `ModelConfig`s from them.
It imports nothing from `phi_utils`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

MODEL_PRESETS: dict[str, dict[str, Any]] = {
    # Shapes from the paper (§2.3) and the released microsoft/phi-1 config.json.
    "phi-1": dict(n_layer=24, n_embd=2048, n_head=32, intermediate_size=8192, rotary_dim=32, block_size=2048),
    "phi-1-small": dict(n_layer=20, n_embd=1024, n_head=16, intermediate_size=4096, rotary_dim=32, block_size=2048),
    # CPU-sized models of the same family (head_dim 32, half of it rotary, as in phi-1).
    "tiny": dict(n_layer=4, n_embd=256, n_head=8, intermediate_size=1024, rotary_dim=16, block_size=512),
    "smoke": dict(n_layer=2, n_embd=128, n_head=4, intermediate_size=512, rotary_dim=16, block_size=256),
    # Compute-sized CPU models (the tiny profile's sizing rule picks one per budget): two phi-1 blocks
    # (parallel attention + MLP, one LayerNorm, partial rotary, untied head), head_dim 32.
    "micro": dict(n_layer=2, n_embd=128, n_head=4, intermediate_size=512, rotary_dim=16, block_size=512),
    "nano": dict(n_layer=2, n_embd=96, n_head=3, intermediate_size=384, rotary_dim=16, block_size=512),
    "pico": dict(n_layer=2, n_embd=64, n_head=2, intermediate_size=256, rotary_dim=16, block_size=512),
    "femto": dict(n_layer=1, n_embd=64, n_head=2, intermediate_size=256, rotary_dim=16, block_size=512),
}
"""Model presets by name: the shape fields of `phi_utils.model.ModelConfig`."""

VOCAB_MULTIPLE = 64
"""Embedding rows are the tokenizer's size rounded up to this (as phi-1's 51200 for 50295 tokens)."""


def padded_vocab(vocab_size: int, multiple: int = VOCAB_MULTIPLE) -> int:
    m = max(1, multiple)
    return -(-int(vocab_size) // m) * m


@dataclass(frozen=True)
class ParamCount:
    """Parameters of one phi-1-style model, split as Kaplan et al. (2020) count them."""

    embedding: int
    """Token embedding and LM head (weights and bias): sized by the vocabulary, not by capacity."""
    non_embedding: int
    """Blocks (attention, MLP, LayerNorms) and the final LayerNorm."""

    @property
    def total(self) -> int:
        return self.embedding + self.non_embedding


def count_params(preset: str, vocab_size: int) -> ParamCount:
    """Exact parameter count of `preset` with `vocab_size` tokens (padded), without building the model."""
    if preset not in MODEL_PRESETS:
        raise ValueError(f"unknown model preset {preset!r}; choose one of {', '.join(MODEL_PRESETS)}")
    p = MODEL_PRESETS[preset]
    c, i, v = p["n_embd"], p["intermediate_size"], padded_vocab(vocab_size)
    block = 2 * c + (3 * c * c + 3 * c) + (c * c + c) + (c * i + i) + (i * c + c)  # ln, qkv, proj, fc1, fc2
    return ParamCount(embedding=v * c + (v * c + v), non_embedding=p["n_layer"] * block + 2 * c)


@dataclass(frozen=True)
class RunSize:
    """One training run as the sizing rule chose it."""

    preset: str
    """Model preset."""
    params: ParamCount
    """Its parameters."""
    counted_params: int
    """N of the tokens-per-parameter rule (non-embedding, or total with `count_embeddings`)."""
    steps: int
    """Optimizer steps."""
    tokens: int
    """Training tokens: steps x global batch x sequence length."""
    minutes: float
    """Estimated training minutes at the preset's reference throughput."""

    @property
    def tokens_per_param(self) -> float:
        return self.tokens / self.counted_params


def size_run(minutes: float, presets: Sequence[str], tokens_per_s: Sequence[float], vocab_size: int,
             tokens_per_step: int, tokens_per_param: float, count_embeddings: bool) -> RunSize:
    """The largest preset of `presets` that sees at least `tokens_per_param` tokens per counted parameter
    in `minutes` at its measured throughput; its step count fills the minutes. One clear error when
    even the smallest preset misses the floor."""
    if len(presets) != len(tokens_per_s) or not presets:
        raise ValueError("compute.presets and compute.tokens_per_s must be non-empty and of equal length")
    options = []
    for name, tps in zip(presets, tokens_per_s):
        params = count_params(name, vocab_size)
        counted = params.total if count_embeddings else params.non_embedding
        steps = int(minutes * 60 * tps // tokens_per_step)
        options.append(RunSize(name, params, counted, steps, steps * tokens_per_step,
                               steps * tokens_per_step / tps / 60))
    options.sort(key=lambda r: r.counted_params, reverse=True)
    for r in options:
        if r.steps > 0 and r.tokens_per_param >= tokens_per_param:
            return r
    best = max(options, key=lambda r: r.tokens_per_param)
    raise ValueError(f"{minutes:.2f} min is too small a budget: the smallest candidate ({best.preset}) would see "
                     f"{best.tokens_per_param:.1f} tokens per parameter, under the floor of {tokens_per_param:g}; "
                     f"raise compute.minutes_per_run or add a smaller preset to compute.presets")


def finetune_steps(pretrain_tokens: int, ratio: float, tokens_per_step: int) -> int:
    """Finetuning steps for `ratio` of the pretraining tokens (at least one)."""
    return max(1, int(round(pretrain_tokens * ratio / tokens_per_step)))


def schedule_fields(steps: int, warmup_share: float) -> dict[str, int]:
    """Warmup, validation and checkpoint intervals that scale with a run's length."""
    return {"max_steps": steps, "warmup_steps": min(steps, max(1, math.ceil(warmup_share * steps))),
            "eval_interval": max(1, steps // 8), "checkpoint_interval": max(1, steps // 4)}
