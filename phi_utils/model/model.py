"""The phi-1 model: a decoder-only transformer with parallel attention + MLP blocks.

Paper §2.3 (and the released `microsoft/phi-1`, transformers' `PhiForCausalLM`):

    x ──┬──────────────────────────────────────────────┐
        │                                              │ residual
        └─ LayerNorm ─┬─ Attention (fused qkv, partial │
                      │   rotary, causal) ─ dropout ─ (+)
                      └─ MLP (fc1, gelu_new, fc2) ─ dropout ─ (+) ──> x'

    x' = x + attn(ln(x)) + mlp(ln(x))      # ONE LayerNorm per block, both branches read it

    tokens -> wte -> dropout -> [block] * n_layer -> ln_f -> lm_head (untied, with bias) -> logits

Every linear layer has a bias. Rotary embeddings (RoFormer, GPT-NeoX "rotate half" layout)
touch only the first `rotary_dim` dims of each head (32 of 64 in phi-1); the rest pass through.

This file is the architecture and nothing else: plain PyTorch modules, attention through
`torch.nn.functional.scaled_dot_product_attention`. The fast paths (FlashAttention on GPUs, the
CPU kernels for decoding, GELU and dropout, rotary as one matmul) live in `fast.py`:
`fast.install(model)` swaps them into a model in place (same parameters and state dict), and the
code that builds a model to train or run (`train.build_model`, `load_checkpoint`) calls it. A model
made here and nothing else runs this file alone; the tests hold both paths to the same logits and
gradients. The plain path has no fp16 guard off
CUDA: there SDPA's math kernel forms q·kᵀ in fp16, which can overflow (fast.py upcasts).

The state dict uses nanoGPT/litgpt names (`transformer.h.0.attn.qkv.weight`);
`phi_utils.model.convert` maps them to/from transformers' names (q/k/v_proj <-> fused qkv).
"""

from __future__ import annotations

from dataclasses import dataclass, field
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from .config import ModelConfig

# --------------------------------------------------------------------------- KV cache
@dataclass
class KVCache:
    """Preallocated keys/values for incremental decoding: per layer (B, n_head, max_len, head_dim).

    The model writes the new tokens' keys/values at `[length, length + T)` in every layer and
    then advances `length`. `select(rows)` keeps only some batch rows (finished rows dropped).
    `mask_padding(attention_mask)` records which cached positions are left padding, once, as an
    additive bias that decoding reads instead of a mask rebuilt from `attention_mask` every step.
    """

    k: list[torch.Tensor]
    v: list[torch.Tensor]
    length: int = 0
    max_len: int = field(default=0)
    bias: torch.Tensor | None = None
    """(B, n_head, 1, max_len) additive attention bias: -inf at padding, 0 elsewhere (None = no padding)."""

    @classmethod
    def allocate(cls, config: ModelConfig, batch_size: int, max_len: int,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> "KVCache":
        shape = (batch_size, config.n_head, max_len, config.head_dim)
        k = [torch.empty(shape, device=device, dtype=dtype) for _ in range(config.n_layer)]
        v = [torch.empty(shape, device=device, dtype=dtype) for _ in range(config.n_layer)]
        return cls(k=k, v=v, length=0, max_len=max_len)

    def update(self, layer: int, k_new: torch.Tensor, v_new: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store (B, H, T, D) new keys/values of `layer`; return all keys/values so far (B, H, length+T, D)."""
        end = self.room_for(k_new.size(2))
        self.k[layer][:, :, self.length:end] = k_new
        self.v[layer][:, :, self.length:end] = v_new
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]

    def room_for(self, n: int) -> int:
        """The cache length after `n` more positions; raises if that exceeds `max_len`."""
        end = self.length + n
        if end > self.max_len:
            raise ValueError(f"KV cache overflow: {end} positions > max_len {self.max_len}")
        return end

    def mask_padding(self, attention_mask: torch.Tensor) -> None:
        """Mark positions `[0, attention_mask.size(1))` where `attention_mask` (B, L) is 0 as padding,
        for every later decoding step that passes no `attention_mask` of its own."""
        B, H, S, _ = self.k[0].shape
        bias = torch.zeros(B, H, 1, S, device=self.k[0].device, dtype=self.k[0].dtype)
        pad = attention_mask[:, None, None, :] == 0                          # (B, 1, 1, L)
        bias[..., : pad.size(-1)].masked_fill_(pad, float("-inf"))
        self.bias = bias if bool(pad.any()) else None

    def select(self, rows: torch.Tensor) -> None:
        """Keep only batch rows `rows` (a LongTensor of indices)."""
        self.k = [t.index_select(0, rows) for t in self.k]
        self.v = [t.index_select(0, rows) for t in self.v]
        if self.bias is not None:
            self.bias = self.bias.index_select(0, rows)


# --------------------------------------------------------------------------- rotary
class Rotary(nn.Module):
    """Partial rotary embeddings: (cos, sin) for the first `rotary_dim` dims of each head, from an
    fp32 table indexed by position (exact after `model.half()`), grown by doubling."""

    def __init__(self, head_dim: int, rotary_dim: int, theta: float) -> None:
        super().__init__()
        self.head_dim, self.rotary_dim, self.theta = head_dim, rotary_dim, theta
        self._tables: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def inv_freq(self, dev: torch.device) -> torch.Tensor:
        """theta^(-2i / rotary_dim) for i < rotary_dim / 2 (fp32)."""
        return 1.0 / (self.theta ** (torch.arange(0, self.rotary_dim, 2, dtype=torch.float32, device=dev)
                                     / self.rotary_dim))

    def table(self, dev: torch.device, n_pos: int) -> tuple[torch.Tensor, torch.Tensor]:
        """fp32 (cos, sin), each (n, rotary_dim) for positions 0 .. n - 1, n >= n_pos."""
        tab = self._tables.get(dev)
        if tab is None or tab[0].size(0) < n_pos:
            n = max(n_pos, 2 * tab[0].size(0) if tab is not None else 256)
            freqs = torch.arange(n, device=dev, dtype=torch.float32)[:, None] * self.inv_freq(dev)  # (n, rd/2)
            emb = torch.cat((freqs, freqs), dim=-1)                                             # (n, rd)
            self._tables[dev] = tab = (emb.cos(), emb.sin())
        return tab

    def forward(self, position_ids: torch.Tensor, dtype: torch.dtype,
                n_pos: int | None = None) -> tuple[torch.Tensor, ...]:
        """(cos, sin), each (B, 1, T, rotary_dim) in `dtype`, broadcasting over heads. `n_pos`: an
        upper bound on the positions + 1 when the caller knows one (saves a device sync)."""
        cos, sin = self.table(position_ids.device, n_pos or int(position_ids.max()) + 1)
        return cos[position_ids][:, None].to(dtype), sin[position_ids][:, None].to(dtype)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the first `cos.size(-1)` dims of x (..., D) ("rotate half" layout, as GPT-NeoX and
    transformers' Phi); the other dims pass through."""
    rd = cos.size(-1)
    x_rot, x_pass = x[..., :rd], x[..., rd:]
    x1, x2 = x_rot.chunk(2, dim=-1)
    rotated = torch.cat((-x2, x1), dim=-1)
    return torch.cat((x_rot * cos + rotated * sin, x_pass), dim=-1)


# --------------------------------------------------------------------------- the block
class CausalSelfAttention(nn.Module):
    def __init__(self, config: ModelConfig, layer_idx: int) -> None:
        super().__init__()
        self.n_head, self.head_dim, self.layer_idx = config.n_head, config.head_dim, layer_idx
        self.rotary_dim = config.rotary_dim
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=True)   # fused q, k, v (in that order)
        self.proj = nn.Linear(config.n_embd, config.n_embd, bias=True)      # transformers: `dense`
        self.attn_pdrop = config.attn_pdrop

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, ...], mask: torch.Tensor | None,
                is_causal: bool, cache: KVCache | None) -> torch.Tensor:
        B, T, C = x.shape
        qkv = self.qkv(x).view(B, T, 3, self.n_head, self.head_dim)        # (B, T, 3, H, D)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)                       # 3 x (B, H, T, D)
        cos, sin = (t.to(q.dtype) for t in rope)                             # (B, 1, T, rotary_dim); autocast
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)          # partial rotary on q and k only
        if cache is not None:
            k, v = cache.update(self.layer_idx, k, v)                        # (B, H, past + T, D)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.attn_pdrop if self.training else 0.0,
                                           is_causal=is_causal and mask is None)  # (B, H, T, D)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))                 # (B, T, C)


class MLP(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.fc1 = nn.Linear(config.n_embd, config.intermediate_size, bias=True)
        self.act = nn.GELU(approximate="tanh")                               # transformers' gelu_new
        self.fc2 = nn.Linear(config.intermediate_size, config.n_embd, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))                               # (B, T, C) -> (B, T, 4C) -> (B, T, C)


class Block(nn.Module):
    """Parallel block: x + drop(attn(ln(x))) + drop(mlp(ln(x)))."""

    def __init__(self, config: ModelConfig, layer_idx: int) -> None:
        super().__init__()
        self.ln = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps)
        self.attn = CausalSelfAttention(config, layer_idx)
        self.mlp = MLP(config)
        self.resid_drop = nn.Dropout(config.resid_pdrop)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, ...], mask: torch.Tensor | None,
                is_causal: bool, cache: KVCache | None) -> torch.Tensor:
        h = self.ln(x)                                                        # (B, T, C)
        return x + self.resid_drop(self.attn(h, rope, mask, is_causal, cache)) + self.resid_drop(self.mlp(h))


# --------------------------------------------------------------------------- the model
class PhiForCausalLM(nn.Module):
    """phi-1 language model. `model(input_ids) -> logits (B, T, vocab_size)`; see `forward`."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            drop=nn.Dropout(config.embd_pdrop),
            h=nn.ModuleList([Block(config, i) for i in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=True)   # untied, with bias
        self.rotary = Rotary(config.head_dim, config.rotary_dim, config.rope_theta)
        self.gradient_checkpointing = False
        """Recompute each block in backward (saves activation memory for long sequences)."""
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        # As transformers' PhiPreTrainedModel: N(0, 0.02) weights, zero biases, unit LayerNorms.
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    @property
    def device(self) -> torch.device:
        return self.lm_head.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.lm_head.weight.dtype

    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        n = sum(p.numel() for p in self.parameters())
        return n - self.transformer.wte.weight.numel() if exclude_embeddings else n

    def new_cache(self, batch_size: int, max_len: int) -> KVCache:
        """An empty KV cache for `batch_size` rows and up to `max_len` positions."""
        return KVCache.allocate(self.config, batch_size, max_len, self.device, self.dtype)

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                      position_ids: torch.Tensor | None = None,
                      past_key_values: KVCache | None = None) -> torch.Tensor:
        """Final-LayerNorm hidden states (B, T, n_embd); arguments as in `forward`."""
        B, T = input_ids.shape
        past = past_key_values.length if past_key_values is not None else 0
        padding = past_key_values.bias if past_key_values is not None else None
        if attention_mask is None and padding is not None and (position_ids is None or T > 1):
            # The cache knows its padding (mask_padding): rebuild the mask from it. Decoding with
            # explicit position_ids, as `generate` does, skips this and reads the bias directly.
            attention_mask = (padding[:, 0, 0, :past + T] == 0).long()
        n_pos = None if position_ids is not None else past + T     # default positions never exceed past + T - 1
        if position_ids is None:
            if attention_mask is not None:  # left padding: a row's first real token gets position 0
                position_ids = (attention_mask.long().cumsum(-1) - 1).clamp_min(0)[:, past:past + T]
            else:
                position_ids = torch.arange(past, past + T, device=input_ids.device).expand(B, T)
        mask, is_causal = self._attn_mask(attention_mask, B, T, past, input_ids.device, padding)

        x = self.transformer.drop(self.transformer.wte(input_ids))           # (B, T, C)
        rope = self.rotary(position_ids, x.dtype, n_pos)                     # cos, sin for every layer
        for block in self.transformer.h:
            if self.gradient_checkpointing and self.training:
                x = checkpoint(block, x, rope, mask, is_causal, past_key_values, use_reentrant=False)
            else:
                x = block(x, rope, mask, is_causal, past_key_values)
        if past_key_values is not None:
            past_key_values.length += T
        return self.transformer.ln_f(x)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None,
                past_key_values: KVCache | None = None) -> torch.Tensor:
        """Logits (B, T, vocab_size) for `input_ids` (B, T).

        - `attention_mask` (B, past + T): 1 for real tokens, 0 for (left) padding, covering the
          cached positions too (transformers' convention). None = no padding.
        - `position_ids` (B, T): default from the mask (cumsum - 1) or `past .. past + T - 1`.
        - `past_key_values`: a `KVCache` (`model.new_cache(B, max_len)`), updated in place.
        The loss is not computed here: use `causal_lm_loss(logits, labels)`.
        """
        return self.lm_head(self.hidden_states(input_ids, attention_mask, position_ids, past_key_values))

    @staticmethod
    def _attn_mask(attention_mask: torch.Tensor | None, B: int, T: int, past: int, device: torch.device,
                   padding: torch.Tensor | None = None) -> tuple[torch.Tensor | None, bool]:
        """Bool mask (B, 1, T, past + T), True = attend, or None plus an is_causal flag for the fast path;
        when decoding without `attention_mask`, the cache's additive `padding` bias (B, H, 1, past + 1)."""
        S = past + T
        if T == 1 and past > 0:             # decoding: the new token sees every real cached one, and itself
            if attention_mask is None and padding is not None:
                return padding[..., :S], False
            if attention_mask is None or bool(attention_mask.all()):
                return None, False          # no mask: the flash-attention path stays open on GPUs
            mask = attention_mask[:, None, None, :S].to(torch.bool, copy=True)
            mask[..., -1] = True
            return mask, False
        if attention_mask is None or bool(attention_mask.all()):
            if past == 0:
                return None, True
        q_pos = torch.arange(past, S, device=device)[:, None]                 # (T, 1)
        k_pos = torch.arange(S, device=device)[None, :]                       # (1, S)
        mask = (k_pos <= q_pos)[None, None]                                   # (1, 1, T, S) causal
        if attention_mask is not None:
            mask = mask & attention_mask[:, None, None, :S].bool()
            # A padding query would otherwise see no key at all (NaN softmax): let it see itself.
            mask = mask | (k_pos == q_pos)[None, None]
        return mask.expand(B, 1, T, S), False


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = -100,
                   reduction: str = "mean") -> torch.Tensor:
    """Next-token cross-entropy in fp32, mean (or `reduction="sum"`) over the labelled positions:
    logits (B, T, V) predict labels shifted by one (labels (B, T), aligned with input_ids as in
    transformers; `ignore_index` positions are skipped)."""
    # Shift the (small) labels instead of the (large) logits: no copy of the logits or their gradient.
    shifted = F.pad(labels[:, 1:], (0, 1), value=ignore_index)                # (B, T)
    return F.cross_entropy(logits.flatten(0, 1).float(), shifted.flatten(), ignore_index=ignore_index,
                           reduction=reduction)
