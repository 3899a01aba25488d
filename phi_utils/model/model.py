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
Attention uses `flash_attn` for fp16/bf16 CUDA tensors when installed, otherwise
`torch.nn.functional.scaled_dot_product_attention`. In fp16 off-CUDA (where SDPA runs the
plain math kernel) q/k/v are upcast to fp32 so the scores cannot overflow (transformers issue 28163).
On CPU, where they build, small C++ kernels (`cpu_kernels`) take a decoding step's rotary + cache
write + attention, the tanh-GELU, and training's dropout masks (Philox, instead of a serial bernoulli_).

The state dict uses nanoGPT/litgpt names (`transformer.h.0.attn.qkv.weight`);
`phi_utils.model.convert` maps them to/from transformers' names (q/k/v_proj <-> fused qkv).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from .config import ModelConfig
from .cpu_kernels import fused_decode_attention, fused_decode_step, fused_dropout, fused_gelu_tanh, transposed_copy

try:  # optional fast path on GPUs
    from flash_attn import flash_attn_func  # type: ignore[import-not-found]
except Exception:  # ImportError, or a broken CUDA build
    flash_attn_func = None


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
    """Partial rotary embeddings, applied to the fused (B, T, 3, H, D) qkv tensor in one expression:

        qkv' = qkv * cos + (qkv @ R) * sin

    `R` (D x D, entries 0/+-1) is GPT-NeoX's "rotate half" on the first `rotary_dim` dims and zero
    elsewhere; `cos` is 1 and `sin` 0 on the pass-through dims and on v. This equals slicing +
    rotate_half + cat (`apply_rotary`, the textbook form) exactly, but autograd sees two
    multiplies and a tiny matmul instead of slices and concatenations (faster backward on CPU).
    cos/sin come from an fp32 table indexed by position (exact after `model.half()`).
    """

    def __init__(self, head_dim: int, rotary_dim: int, theta: float) -> None:
        super().__init__()
        self.head_dim, self.rotary_dim, self.theta = head_dim, rotary_dim, theta
        self._cache: dict[tuple[torch.device, torch.dtype], tuple[torch.Tensor, torch.Tensor]] = {}
        self._tables: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def _consts(self, dev: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        key = (dev, dtype)
        if key not in self._cache:
            rd, h = self.rotary_dim, self.rotary_dim // 2
            exps = torch.arange(0, rd, 2, dtype=torch.float32, device=dev) / rd
            R = torch.zeros(self.head_dim, self.head_dim, device=dev)
            j = torch.arange(h, device=dev)
            R[j + h, j] = -1.0      # out[j]     = -x[j + h]
            R[j, j + h] = 1.0       # out[j + h] =  x[j]
            self._cache[key] = (1.0 / (self.theta ** exps), R.to(dtype))
        return self._cache[key]

    def _table(self, dev: torch.device, n_pos: int) -> tuple[torch.Tensor, torch.Tensor]:
        """fp32 (cos, sin) of shape (n_pos', 3, 1, head_dim) for positions 0 .. n_pos'-1 (n_pos' >= n_pos):
        cos = 1, sin = 0 on v and on the pass-through dims. Grown by doubling, so decoding one token
        is two index lookups instead of building cos/sin again."""
        tab = self._tables.get(dev)
        if tab is None or tab[0].size(0) < n_pos:
            n = max(n_pos, 2 * tab[0].size(0) if tab is not None else 256)
            inv_freq, _ = self._consts(dev, torch.float32)
            freqs = torch.arange(n, device=dev, dtype=torch.float32)[:, None] * inv_freq   # (n, rd/2)
            emb = torch.cat((freqs, freqs), dim=-1)                                         # (n, rd)
            cos = torch.ones(n, 3, 1, self.head_dim, device=dev)
            sin = torch.zeros(n, 3, 1, self.head_dim, device=dev)
            cos[:, :2, 0, : self.rotary_dim] = emb.cos()[:, None]                          # q and k only
            sin[:, :2, 0, : self.rotary_dim] = emb.sin()[:, None]
            self._tables[dev] = tab = (cos, sin)
        return tab

    def forward(self, position_ids: torch.Tensor, dtype: torch.dtype,
                n_pos: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(cos, sin) of shape (B, T, 3, 1, head_dim) and R (head_dim, head_dim), in `dtype`.
        `n_pos`: an upper bound on the positions + 1 when the caller knows one (saves a device sync)."""
        _, R = self._consts(position_ids.device, dtype)
        cos, sin = self._table(position_ids.device, n_pos or int(position_ids.max()) + 1)
        return cos[position_ids].to(dtype), sin[position_ids].to(dtype), R


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Reference form: rotate the first `cos.size(-1)` dims of x (..., D) ("rotate half" layout, as
    GPT-NeoX and transformers' Phi); the other dims pass through. Used by tests and the notebook."""
    rd = cos.size(-1)
    x_rot, x_pass = x[..., :rd], x[..., rd:]
    x1, x2 = x_rot.chunk(2, dim=-1)
    rotated = torch.cat((-x2, x1), dim=-1)
    return torch.cat((x_rot * cos + rotated * sin, x_pass), dim=-1)


# --------------------------------------------------------------------------- attention
def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
              is_causal: bool, dropout_p: float) -> torch.Tensor:
    """Scaled dot-product attention on (B, H, T, D) tensors; mask is bool (True = attend), an
    additive float bias (0 or -inf), or None."""
    if (flash_attn_func is not None and q.is_cuda and q.dtype in (torch.float16, torch.bfloat16)
            and mask is None and (is_causal or q.size(2) == 1)):
        # flash_attn wants (B, T, H, D); causal with Tq < Tk aligns to the end, as a KV cache needs.
        y = flash_attn_func(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), dropout_p, causal=is_causal)
        return y.transpose(1, 2)
    if q.size(2) == 1 and not q.is_cuda and not dropout_p:
        return decode_attention(q, k, v, mask)
    if (dropout_p and is_causal and mask is None and q.device.type == "cpu" and q.dtype != torch.float16
            and fused_dropout() is not None and not torch.compiler.is_compiling()):
        return causal_attention_dropout_cpu(q, k, v, dropout_p)
    if q.dtype == torch.float16 and not q.is_cuda:
        # The math kernel would form q@k^T in fp16 and overflow on large activations (issue 28163).
        y = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask,
                                           dropout_p=dropout_p, is_causal=is_causal and mask is None)
        return y.to(q.dtype)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p,
                                          is_causal=is_causal and mask is None)


def causal_attention_dropout_cpu(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout_p: float) -> torch.Tensor:
    """Training-time causal attention on CPU: what SDPA's math kernel computes when dropout is on
    (the only CPU kernel that supports it), with the probabilities dropped by the Philox kernel
    instead of `bernoulli_`, which took a third of a small model's training step. Queries align
    to the end of the keys (T <= S)."""
    B, H, T, D = q.shape
    S = k.size(2)
    causal = torch.full((T, S), float("-inf"), dtype=q.dtype, device=q.device).triu_(S - T + 1)
    scores = torch.baddbmm(causal, q.reshape(B * H, T, D), k.reshape(B * H, S, D).transpose(1, 2),
                           alpha=D ** -0.5)                                                  # (B*H, T, S)
    probs = fused_dropout()(torch.softmax(scores, dim=-1), dropout_p)
    return torch.bmm(probs, v.reshape(B * H, S, D)).view(B, H, T, D)


class Dropout(nn.Dropout):
    """`nn.Dropout` that draws its CPU masks with the Philox kernel (`cpu_kernels.fused_dropout`),
    parallel and vectorized, where PyTorch's CPU `bernoulli_` is serial; elsewhere (CUDA, kernel
    not built, under torch.compile) it is `nn.Dropout`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (self.training and 0 < self.p < 1 and x.device.type == "cpu" and not self.inplace
                and not torch.compiler.is_compiling()):
            fused = fused_dropout()
            if fused is not None:
                return fused(x, self.p)
        return super().forward(x)


_NO_BIAS = torch.empty(0)


def decode_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """One query per row (decoding) on CPU: q (B, H, 1, D) against k, v (B, H, S, D).

    fp32 goes to the fused C++ kernel when it is built (`cpu_kernels`: it never reads the keys and
    values of padding). Otherwise two batched matrix products over B*H rows, which beat the SDPA
    kernel at one query, with the 1/sqrt(D) scale and an additive padding bias riding along in the
    first (`baddbmm`); scores are fp32."""
    B, H, _, D = q.shape
    S = k.size(2)
    if mask is not None and mask.dtype == torch.bool:
        mask = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device).masked_fill_(~mask, float("-inf"))
    fused = fused_decode_attention() if q.dtype == k.dtype == v.dtype == torch.float32 else None
    if (fused is not None and D % 8 == 0 and D <= 64 and k.stride(-1) == v.stride(-1) == 1
            and not (q.requires_grad and torch.is_grad_enabled())):
        bias = _NO_BIAS if mask is None else mask.float().expand(B, H, 1, S)
        return fused(q, k, v, bias, D ** -0.5)
    qf, kf = q.float().reshape(B * H, 1, D), k.float().reshape(B * H, S, D).transpose(1, 2)
    if mask is None:
        scores = torch.bmm(qf, kf).mul_(D ** -0.5)                                        # (B*H, 1, S)
    else:
        scores = torch.baddbmm(mask.float().expand(B, H, 1, S).reshape(B * H, 1, S), qf, kf, alpha=D ** -0.5)
    probs = torch.softmax(scores, dim=-1).to(v.dtype)
    return torch.bmm(probs, v.reshape(B * H, S, D)).view(B, H, 1, D).to(q.dtype)


class Linear(nn.Linear):
    """`nn.Linear` (same parameters and state dict) that multiplies by `weight_t`, a contiguous copy
    of weightᵀ, while one is set (`PhiForCausalLM.transposed_weights()`, for CPU generation) and
    autograd is off. MKL then reads the weight in the layout it computes with instead of re-laying
    it out on every call, most of the cost of a 16-row product (1.5x per call at 16 rows)."""

    weight_t: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.weight_t is None or torch.is_grad_enabled():
            return super().forward(x)
        x2d = x.reshape(-1, x.size(-1))
        y = torch.mm(x2d, self.weight_t) if self.bias is None else torch.addmm(self.bias, x2d, self.weight_t)
        return y.view(*x.shape[:-1], -1)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: ModelConfig, layer_idx: int) -> None:
        super().__init__()
        self.n_head, self.head_dim, self.layer_idx = config.n_head, config.head_dim, layer_idx
        self.rotary_dim = config.rotary_dim
        self.qkv = Linear(config.n_embd, 3 * config.n_embd, bias=True)      # fused q, k, v (in that order)
        self.proj = Linear(config.n_embd, config.n_embd, bias=True)         # transformers: `dense`
        self.attn_pdrop = config.attn_pdrop

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, ...], mask: torch.Tensor | None,
                is_causal: bool, cache: KVCache | None) -> torch.Tensor:
        B, T, C = x.shape
        qkv = self.qkv(x).view(B, T, 3, self.n_head, self.head_dim)        # (B, T, 3, H, D)
        if cache is not None and T == 1 and cache.length > 0:
            y = self._fused_decode_step(qkv, rope, mask, cache)
            if y is not None:
                return self.proj(y)
        cos, sin, R = (t.to(qkv.dtype) for t in rope)                        # autocast: qkv may be bf16
        qkv = qkv * cos + (qkv @ R) * sin                                    # partial rotary on q, k (see Rotary)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)                       # 3 x (B, H, T, D)
        if cache is not None:
            k, v = cache.update(self.layer_idx, k, v)                        # (B, H, past+T, D)
        y = attention(q, k, v, mask, is_causal, self.attn_pdrop if self.training else 0.0)
        y = y.transpose(1, 2).reshape(B, T, C)                               # (B, T, C)
        return self.proj(y)

    def _fused_decode_step(self, qkv: torch.Tensor, rope: tuple[torch.Tensor, ...], mask: torch.Tensor | None,
                           cache: KVCache) -> torch.Tensor | None:
        """CPU fp32 decoding: rotary, the cache write and attention in one C++ op (`cpu_kernels`),
        (B, 1, C); None where it does not apply (then the general path below computes the same)."""
        op = fused_decode_step() if qkv.device.type == "cpu" and qkv.dtype == torch.float32 else None
        k_cache, v_cache = cache.k[self.layer_idx], cache.v[self.layer_idx]
        D = self.head_dim
        if (op is None or torch.is_grad_enabled() or D % 8 or D > 64 or k_cache.dtype != torch.float32
                or (mask is not None and mask.dtype == torch.bool)):
            return None
        cache.room_for(1)
        cos, sin = (t[:, 0, 0, 0] for t in rope[:2])                          # (B, D) views: q's entries (= k's)
        bias = _NO_BIAS if mask is None else mask.expand(qkv.size(0), self.n_head, 1, cache.length + 1)
        return op(qkv.contiguous(), cos, sin, k_cache, v_cache, cache.length, bias, D ** -0.5, self.rotary_dim)


class MLP(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.fc1 = Linear(config.n_embd, config.intermediate_size, bias=True)
        self.fc2 = Linear(config.intermediate_size, config.n_embd, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(gelu_new(self.fc1(x)))


def gelu_new(x: torch.Tensor) -> torch.Tensor:
    """transformers' `gelu_new` (tanh-approximate GELU) as one fused op: the C++ kernel for fp32 on
    CPU (`cpu_kernels`: PyTorch's CPU gelu costs more than the matrix product before it when decoding),
    else `F.gelu(approximate="tanh")`, which also saves memory and time in backward over the formula."""
    if x.device.type == "cpu" and x.dtype == torch.float32 and not torch.compiler.is_compiling():
        fused = fused_gelu_tanh()
        if fused is not None:
            return fused(x)
    return F.gelu(x, approximate="tanh")


class Block(nn.Module):
    """Parallel block: x + drop(attn(ln(x))) + drop(mlp(ln(x)))."""

    def __init__(self, config: ModelConfig, layer_idx: int) -> None:
        super().__init__()
        self.ln = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps)
        self.attn = CausalSelfAttention(config, layer_idx)
        self.mlp = MLP(config)
        self.resid_drop = Dropout(config.resid_pdrop)

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
            drop=Dropout(config.embd_pdrop),
            h=nn.ModuleList([Block(config, i) for i in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps),
        ))
        self.lm_head = Linear(config.n_embd, config.vocab_size, bias=True)   # untied, with bias
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

    @contextmanager
    def transposed_weights(self) -> Iterator[None]:
        """Within this block, linear layers without autograd multiply by contiguous copies of their
        transposed weights (see `Linear`): faster few-row products on CPU, for as much memory again
        as the linear weights. The copies are made on entry and dropped on exit, so weights changed
        inside the block are not seen. Off CPU (where the layout does not pay) it does nothing.
        Nested blocks share the outer block's copies (`generate` holds them over all its batches)."""
        linears = [m for m in self.modules() if isinstance(m, Linear)]
        if self.device.type != "cpu" or (linears and linears[0].weight_t is not None):
            yield
            return
        with torch.no_grad():
            for m in linears:
                m.weight_t = transposed_copy(m.weight)
        try:
            yield
        finally:
            for m in linears:
                m.weight_t = None

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
        rope = self.rotary(position_ids, x.dtype, n_pos)                             # cos, sin (B, T, 3, 1, D); R (D, D)
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
