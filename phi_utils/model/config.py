"""`ModelConfig`: the shape of a phi-1-style model, and the named presets.

One dataclass covers phi-1 (1.3B), phi-1-small (350M) and the CPU-sized `tiny` / `smoke`
models, so every profile runs the same code. Field names follow nanoGPT/litgpt; the mapping to
transformers' `PhiConfig` lives in `to_hf_config` / `from_hf_config`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..config import ConfigError
from ..sizing import MODEL_PRESETS


@dataclass
class ModelConfig:
    name: str = "custom"
    """Preset name this config came from (informational; written to config.json as `phi_utils_preset`)."""
    vocab_size: int = 51200
    """Rows of the token embedding and the LM head (>= the tokenizer size; phi-1: 51200 for a 50295-token tokenizer)."""
    n_layer: int = 24
    """Transformer blocks."""
    n_embd: int = 2048
    """Hidden size (residual stream width)."""
    n_head: int = 32
    """Attention heads (multi-head attention; the paper uses no multi-query attention)."""
    intermediate_size: int = 8192
    """Inner width of the MLP (4 x n_embd in phi-1)."""
    rotary_dim: int = 32
    """Leading dimensions of each head that get rotary embeddings (phi-1: 32 of 64)."""
    rope_theta: float = 10000.0
    """Rotary base frequency."""
    block_size: int = 2048
    """Maximum context length (`max_position_embeddings`)."""
    layer_norm_eps: float = 1e-5
    """LayerNorm epsilon."""
    attn_pdrop: float = 0.0
    """Dropout on attention probabilities while training (paper: 0.1)."""
    resid_pdrop: float = 0.0
    """Dropout on the attention and MLP outputs before the residual sum while training (paper: 0.1)."""
    embd_pdrop: float = 0.0
    """Dropout on the token embeddings while training (not reported by the paper)."""
    initializer_range: float = 0.02
    """Std of the normal init of linear and embedding weights (transformers' Phi default)."""
    bos_token_id: int | None = None
    """Beginning-of-sequence id written to config.json (phi-1 uses none; `<|endoftext|>` separates files)."""
    eos_token_id: int | None = None
    """End-of-sequence id (`<|endoftext|>`); generation stops on it."""

    def __post_init__(self) -> None:
        if self.n_embd % self.n_head:
            raise ConfigError(f"model: n_embd {self.n_embd} is not divisible by n_head {self.n_head}")
        if not (0 < self.rotary_dim <= self.head_dim and self.rotary_dim % 2 == 0):
            raise ConfigError(f"model: rotary_dim must be even and in (0, head_dim={self.head_dim}], got {self.rotary_dim}")
        for f in ("attn_pdrop", "resid_pdrop", "embd_pdrop"):
            if not 0.0 <= getattr(self, f) < 1.0:
                raise ConfigError(f"model: {f} must be in [0, 1)")
        if min(self.vocab_size, self.n_layer, self.block_size, self.intermediate_size) <= 0:
            raise ConfigError("model: vocab_size, n_layer, block_size and intermediate_size must be positive")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def partial_rotary_factor(self) -> float:
        return self.rotary_dim / self.head_dim

    # ------------------------------------------------------------------ transformers PhiConfig
    def to_hf_dict(self) -> dict[str, Any]:
        """Keyword arguments for `transformers.PhiConfig` (works with transformers 4.37+ and 5.x)."""
        return dict(
            vocab_size=self.vocab_size, hidden_size=self.n_embd, intermediate_size=self.intermediate_size,
            num_hidden_layers=self.n_layer, num_attention_heads=self.n_head, num_key_value_heads=self.n_head,
            resid_pdrop=self.resid_pdrop, embd_pdrop=self.embd_pdrop, attention_dropout=self.attn_pdrop,
            hidden_act="gelu_new", max_position_embeddings=self.block_size,
            initializer_range=self.initializer_range, layer_norm_eps=self.layer_norm_eps,
            tie_word_embeddings=False, rope_theta=self.rope_theta,
            partial_rotary_factor=self.partial_rotary_factor, qk_layernorm=False,
            bos_token_id=self.bos_token_id, eos_token_id=self.eos_token_id,
        )

    def to_hf_config(self) -> Any:
        from transformers import PhiConfig

        return PhiConfig(**self.to_hf_dict())

    @classmethod
    def from_hf_dict(cls, d: dict[str, Any], name: str = "hf") -> "ModelConfig":
        """Build from a Phi `config.json` dict; refuses features this model does not implement."""
        if d.get("model_type", "phi") != "phi":
            raise ConfigError(f"model_type {d.get('model_type')!r} is not 'phi'")
        heads = d.get("num_attention_heads", 32)
        if d.get("num_key_value_heads") not in (None, heads):
            raise ConfigError("num_key_value_heads != num_attention_heads (GQA/MQA) is not supported")
        if d.get("qk_layernorm"):
            raise ConfigError("qk_layernorm=True is not supported")
        if d.get("hidden_act", "gelu_new") not in ("gelu_new", "gelu_pytorch_tanh"):
            raise ConfigError(f"hidden_act {d.get('hidden_act')!r} is not supported (expects gelu_new)")
        if d.get("tie_word_embeddings"):
            raise ConfigError("tie_word_embeddings=True is not supported (phi-1 has an untied LM head)")
        rope = d.get("rope_parameters") or {}
        if (rope.get("rope_type") or "default") != "default" or d.get("rope_scaling"):
            raise ConfigError("only default (unscaled) rotary embeddings are supported")
        theta = rope.get("rope_theta", d.get("rope_theta", 10000.0))
        factor = rope.get("partial_rotary_factor", d.get("partial_rotary_factor", 0.5))
        hidden = d.get("hidden_size", 2048)
        head_dim = hidden // heads
        eos = d.get("eos_token_id")
        return cls(
            name=d.get("phi_utils_preset", name), vocab_size=d.get("vocab_size", 51200), n_layer=d.get("num_hidden_layers", 24),
            n_embd=hidden, n_head=heads, intermediate_size=d.get("intermediate_size", 8192),
            rotary_dim=int(head_dim * factor), rope_theta=float(theta),
            block_size=d.get("max_position_embeddings", 2048), layer_norm_eps=d.get("layer_norm_eps", 1e-5),
            attn_pdrop=d.get("attention_dropout") or 0.0, resid_pdrop=d.get("resid_pdrop") or 0.0,
            embd_pdrop=d.get("embd_pdrop") or 0.0, initializer_range=d.get("initializer_range", 0.02),
            bos_token_id=d.get("bos_token_id"), eos_token_id=eos[0] if isinstance(eos, list) else eos,
        )


_PRESETS = MODEL_PRESETS  # shapes by name, in phi_utils.sizing (the configuration layer sizes runs with them)
PRESET_NAMES = tuple(_PRESETS)


def get_model_config(name: str, vocab_size: int | None = None, pad_vocab_multiple: int = 64,
                     **overrides: Any) -> ModelConfig:
    """A fresh `ModelConfig` for preset `name` (`phi-1`, `phi-1-small`, `tiny`, `smoke`, and the
    compute-sized `micro`, `nano`, `pico`).

    `vocab_size` (e.g. `len(tokenizer)`) is rounded up to a multiple of `pad_vocab_multiple`
    (as phi-1's 51200 for a 50295-token tokenizer; 1 disables). Defaults to 51200.
    `overrides` set any other field, e.g. `attn_pdrop=0.1, resid_pdrop=0.1`.
    """
    if name not in _PRESETS:
        raise ConfigError(f"unknown model preset {name!r}; choose one of {', '.join(PRESET_NAMES)}")
    kw: dict[str, Any] = dict(_PRESETS[name], name=name)
    if vocab_size is not None:
        m = max(1, pad_vocab_multiple)
        kw["vocab_size"] = -(-int(vocab_size) // m) * m
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = set(overrides) - fields
    if unknown:
        raise ConfigError(f"unknown ModelConfig field(s): {sorted(unknown)}")
    kw.update(overrides)
    return ModelConfig(**kw)


def training_model_config(name: str, vocab_size: int, dropout: float = 0.0, min_block_size: int = 0) -> ModelConfig:
    """Preset `name` as training builds it: the paper's attention and residual dropout (§2.3; embedding
    dropout is not reported and stays 0) and a context of at least `min_block_size` tokens."""
    mc = get_model_config(name, vocab_size=vocab_size, attn_pdrop=dropout, resid_pdrop=dropout)
    if min_block_size > mc.block_size:
        mc = dataclasses.replace(mc, block_size=min_block_size)
    return mc
