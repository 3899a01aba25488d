"""The fast paths of `model.py`, swapped into a model by `install(model)` (same parameters, same state dict).

`install(model)` changes the class of the model's own modules to the subclasses below, each of
which computes what its base class computes, faster where it can:

- `FastCausalSelfAttention`: rotary as one expression on the fused (B, T, 3, H, D) qkv tensor,
  `qkv * cos + (qkv @ R) * sin` (two multiplies and a tiny matmul for autograd instead of slices
  and concatenations: a faster backward on CPU), then `attention()`: FlashAttention for fp16/bf16
  CUDA tensors when `flash_attn` is installed, the C++ decoding kernels on CPU (`cpu_kernels`: a
  decoding step's rotary + cache write + attention in one op), causal attention with Philox
  dropout on CPU (fp32: a chunk of heads at a time, backward recomputing the probabilities, the
  masks those of the unchunked path), fp16 upcast to fp32 off CUDA (SDPA's math kernel would overflow, transformers
  issue 28163), else SDPA;
- `FastRotary`: the (cos, sin, R) tables that form needs;
- `PhiloxDropout`: CPU dropout masks from the Philox kernel (PyTorch's CPU `bernoulli_` is serial);
- `FusedGELU`: the C++ tanh-GELU on CPU;
- `linear_cross_entropy`: the LM head and the loss in one pass, chunk by chunk, without the
  logits (the Trainer's CPU fp32 path; a function, not a module: the model still returns logits);
- `TransposableLinear`: multiplies by a contiguous copy of weightᵀ inside `transposed_weights(model)`
  (CPU generation).

Each falls back to its base class where its kernel is not built or does not apply (CUDA, under
torch.compile, with autograd). `tests/test_model.py` holds the two paths to the same logits and
gradients.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn as nn
import torch.nn.functional as F

from .cpu_kernels import (chunked_dropout_attention, fused_decode_attention, fused_decode_step, fused_dropout,
                          fused_gelu_tanh, transposed_copy)
from .model import CausalSelfAttention, KVCache, Rotary

try:  # optional fast path on GPUs
    from flash_attn import flash_attn_func  # type: ignore[import-not-found]
except Exception:  # ImportError, or a broken CUDA build
    flash_attn_func = None

_NO_BIAS = torch.empty(0)


# --------------------------------------------------------------------------- rotary + attention
class FastRotary(Rotary):
    """(cos, sin) of shape (B, T, 3, 1, head_dim) and R (head_dim, head_dim) for

        qkv' = qkv * cos + (qkv @ R) * sin

    `R` (entries 0/+-1) is GPT-NeoX's "rotate half" on the first `rotary_dim` dims and zero
    elsewhere; `cos` is 1 and `sin` 0 on the pass-through dims and on v. This equals
    `model.apply_rotary` on q and k exactly."""

    def _consts(self, dev: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        consts = self.__dict__.setdefault("_fast_consts", {})  # swapped in: the base __init__ made none
        key = (dev, dtype)
        if key not in consts:
            rd, h = self.rotary_dim, self.rotary_dim // 2
            exps = torch.arange(0, rd, 2, dtype=torch.float32, device=dev) / rd
            R = torch.zeros(self.head_dim, self.head_dim, device=dev)
            j = torch.arange(h, device=dev)
            R[j + h, j] = -1.0      # out[j]     = -x[j + h]
            R[j, j + h] = 1.0       # out[j + h] =  x[j]
            consts[key] = (1.0 / (self.theta ** exps), R.to(dtype))
        return consts[key]

    def _table(self, dev: torch.device, n_pos: int) -> tuple[torch.Tensor, torch.Tensor]:
        """fp32 (cos, sin) of shape (n_pos', 3, 1, head_dim) for positions 0 .. n_pos'-1 (n_pos' >= n_pos):
        cos = 1, sin = 0 on v and on the pass-through dims. Grown by doubling, so decoding one token
        is two index lookups instead of building cos/sin again."""
        tables = self.__dict__.setdefault("_fast_tables", {})
        tab = tables.get(dev)
        if tab is None or tab[0].size(0) < n_pos:
            n = max(n_pos, 2 * tab[0].size(0) if tab is not None else 256)
            inv_freq, _ = self._consts(dev, torch.float32)
            freqs = torch.arange(n, device=dev, dtype=torch.float32)[:, None] * inv_freq   # (n, rd/2)
            emb = torch.cat((freqs, freqs), dim=-1)                                         # (n, rd)
            cos = torch.ones(n, 3, 1, self.head_dim, device=dev)
            sin = torch.zeros(n, 3, 1, self.head_dim, device=dev)
            cos[:, :2, 0, : self.rotary_dim] = emb.cos()[:, None]                          # q and k only
            sin[:, :2, 0, : self.rotary_dim] = emb.sin()[:, None]
            tables[dev] = tab = (cos, sin)
        return tab

    def forward(self, position_ids: torch.Tensor, dtype: torch.dtype,  # type: ignore[override]
                n_pos: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(cos, sin) of shape (B, T, 3, 1, head_dim) and R (head_dim, head_dim), in `dtype`.
        `n_pos`: an upper bound on the positions + 1 when the caller knows one (saves a device sync)."""
        _, R = self._consts(position_ids.device, dtype)
        cos, sin = self._table(position_ids.device, n_pos or int(position_ids.max()) + 1)
        return cos[position_ids].to(dtype), sin[position_ids].to(dtype), R


class FastCausalSelfAttention(CausalSelfAttention):
    """The same attention: rotary in `FastRotary`'s form, a fused decoding step on CPU, `attention()`."""

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, ...], mask: torch.Tensor | None,
                is_causal: bool, cache: KVCache | None) -> torch.Tensor:
        B, T, C = x.shape
        qkv = self.qkv(x).view(B, T, 3, self.n_head, self.head_dim)        # (B, T, 3, H, D)
        if cache is not None and T == 1 and cache.length > 0:
            y = self._fused_decode_step(qkv, rope, mask, cache)
            if y is not None:
                return self.proj(y)
        cos, sin, R = (t.to(qkv.dtype) for t in rope)                        # autocast: qkv may be bf16
        qkv = qkv * cos + (qkv @ R) * sin                                    # partial rotary on q, k (FastRotary)
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


CHUNK_ELEMENTS = 1 << 18
"""Attention scores per chunk in `causal_attention_dropout_cpu` (1 MiB of fp32: a core's L2 holds it)."""


def causal_attention_dropout_cpu(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout_p: float) -> torch.Tensor:
    """Training-time causal attention on CPU: what SDPA's math kernel computes when dropout is on
    (the only CPU kernel that supports it), with the probabilities dropped by the Philox kernel
    instead of `bernoulli_`, which took a third of a small model's training step. Queries align
    to the end of the keys (T <= S)."""
    B, H, T, D = q.shape
    S = k.size(2)
    if chunked_dropout_attention() is not None and q.dtype == torch.float32:
        heads = max(1, CHUNK_ELEMENTS // (T * S))
        if heads < B * H and (T * S) % 128 == 0:  # chunk offsets on the Philox stream's 128-word blocks
            return _ChunkedCausalAttention.apply(q.reshape(B * H, T, D), k.reshape(B * H, S, D),
                                                 v.reshape(B * H, S, D), dropout_p, heads).view(B, H, T, D)
    causal = torch.full((T, S), float("-inf"), dtype=q.dtype, device=q.device).triu_(S - T + 1)
    scores = torch.baddbmm(causal, q.reshape(B * H, T, D), k.reshape(B * H, S, D).transpose(1, 2),
                           alpha=D ** -0.5)                                                  # (B*H, T, S)
    probs = fused_dropout()(torch.softmax(scores, dim=-1), dropout_p)
    return torch.bmm(probs, v.reshape(B * H, S, D)).view(B, H, T, D)


class _ChunkedCausalAttention(torch.autograd.Function):
    """`causal_attention_dropout_cpu` (fp32) `heads` (batch x head) rows at a time, so each chunk's
    scores, probabilities and dropped probabilities stay in cache, and backward recomputes them
    (one q·kᵀ product per chunk) instead of keeping B·H·T·S probabilities alive from forward. The
    dropout masks are the slices of the mask the unchunked path draws (`dropout_at`: the same
    seed, offset by the chunk's first element), so both paths compute the same function."""

    @staticmethod
    def _probs(q: torch.Tensor, k: torch.Tensor, causal: torch.Tensor, scale: float) -> torch.Tensor:
        return torch.softmax(torch.baddbmm(causal, q, k.transpose(1, 2), alpha=scale), dim=-1)

    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, p: float,  # type: ignore[override]
                heads: int) -> torch.Tensor:
        BH, T, D = q.shape
        S = k.size(1)
        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        seed = int(torch.randint(0, 2**63 - 1, (), dtype=torch.int64))            # as `fused_dropout` draws it
        causal = torch.full((T, S), float("-inf"), dtype=q.dtype, device=q.device).triu_(S - T + 1)
        scale = D ** -0.5
        out = torch.empty_like(q)
        drop = torch.ops.phi_utils.dropout_at
        for c in range(0, BH, heads):
            sl = slice(c, c + heads)
            probs = _ChunkedCausalAttention._probs(q[sl], k[sl], causal, scale)
            torch.bmm(drop(probs, p, seed, c * T * S), v[sl], out=out[sl])
        ctx.save_for_backward(q, k, v)
        ctx.p, ctx.seed, ctx.heads, ctx.causal, ctx.scale = p, seed, heads, causal, scale
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        q, k, v = ctx.saved_tensors
        p, seed, heads, causal, scale = ctx.p, ctx.seed, ctx.heads, ctx.causal, ctx.scale
        BH, T, _ = q.shape
        S = k.size(1)
        grad = grad.contiguous()
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        drop = torch.ops.phi_utils.dropout_at
        for c in range(0, BH, heads):
            sl, off = slice(c, c + heads), c * T * S
            probs = _ChunkedCausalAttention._probs(q[sl], k[sl], causal, scale)
            torch.bmm(drop(probs, p, seed, off).transpose(1, 2), grad[sl], out=dv[sl])
            dprobs = drop(torch.bmm(grad[sl], v[sl].transpose(1, 2)), p, seed, off)
            dscores = torch._softmax_backward_data(dprobs, probs, -1, probs.dtype)
            torch.baddbmm(dq[sl], dscores, k[sl], beta=0, alpha=scale, out=dq[sl])
            torch.baddbmm(dk[sl], dscores.transpose(1, 2), q[sl], beta=0, alpha=scale, out=dk[sl])
        return dq, dk, dv, None, None


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


# --------------------------------------------------------------------------- LM head + cross-entropy
def linear_cross_entropy(hidden: torch.Tensor, head: nn.Linear, labels: torch.Tensor, ignore_index: int = -100,
                         reduction: str = "sum", chunk_rows: int = 512) -> torch.Tensor:
    """`causal_lm_loss(head(hidden), labels, ignore_index, reduction)` without the (B, T, V) logits.

    hidden (B, T, C) final-LayerNorm states, labels (B, T) aligned with the inputs (shifted inside).
    The logits are formed `chunk_rows` rows at a time; with autograd on, each chunk's gradient
    (softmax - one-hot) is turned into the gradients of `hidden`, the head's weight and bias on the
    spot, so backward only scales them by the incoming gradient. The logits, their log-softmax
    and their gradient (3 x B*T*V floats, most of a small model's activation traffic) never
    exist whole; every chunk stays in cache. Same function, same fp32 math as `causal_lm_loss`
    (sums in another order: equal within float rounding). fp32 only: callers check."""
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
    shifted = F.pad(labels[:, 1:], (0, 1), value=ignore_index).flatten()            # (N,)
    h = hidden.flatten(0, 1)                                                         # (N, C)
    bias = head.bias if head.bias is not None else torch.zeros(head.out_features, device=h.device, dtype=h.dtype)
    loss = _LinearCrossEntropy.apply(h, head.weight, bias, shifted, ignore_index, chunk_rows)
    if reduction == "mean":
        loss = loss / (shifted != ignore_index).sum().clamp_min(1)
    return loss


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,  # type: ignore[override]
                targets: torch.Tensor, ignore_index: int, chunk_rows: int) -> torch.Tensor:
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        N = h.size(0)
        h = h.contiguous()
        gh = torch.empty_like(h) if need_h else None
        gw = torch.zeros_like(weight) if need_w else None
        gb = torch.zeros_like(bias) if need_b else None
        total = torch.zeros((), dtype=torch.float32, device=h.device)
        wt = weight.t()
        for s in range(0, N, chunk_rows):
            hc, tc = h[s:s + chunk_rows], targets[s:s + chunk_rows]
            logits = torch.addmm(bias, hc, wt)                                      # (n, V)
            valid = tc != ignore_index
            safe = tc.masked_fill(~valid, 0)[:, None]
            lse = torch.logsumexp(logits, dim=-1, keepdim=True)                     # (n, 1)
            picked = logits.gather(1, safe)                                          # (n, 1)
            total += ((lse - picked).squeeze(1) * valid).sum()
            if not any((need_h, need_w, need_b)):
                continue
            g = logits.sub_(lse).exp_()                                              # softmax, in place
            g.scatter_add_(1, safe, torch.full_like(picked, -1.0))                   # - one-hot
            if not bool(valid.all()):
                g.mul_(valid[:, None])
            if need_h:
                torch.mm(g, weight, out=gh[s:s + chunk_rows])
            if need_w:
                gw.addmm_(g.t(), hc)
            if need_b:
                gb += g.sum(0)
        ctx.save_for_backward(gh, gw, gb)
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        gh, gw, gb = ctx.saved_tensors
        return (None if gh is None else gh * grad, None if gw is None else gw * grad,
                None if gb is None else gb * grad, None, None, None)


# --------------------------------------------------------------------------- modules
class PhiloxDropout(nn.Dropout):
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


class FusedGELU(nn.GELU):
    """transformers' `gelu_new` (tanh-approximate GELU) by the C++ kernel for fp32 on CPU (PyTorch's
    CPU gelu costs more than the matrix product before it when decoding); elsewhere `nn.GELU`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (self.approximate == "tanh" and x.device.type == "cpu" and x.dtype == torch.float32
                and not torch.compiler.is_compiling()):
            fused = fused_gelu_tanh()
            if fused is not None:
                return fused(x)
        return super().forward(x)


class TransposableLinear(nn.Linear):
    """`nn.Linear` (same parameters and state dict) that multiplies by `weight_t`, a contiguous copy
    of weightᵀ, while one is set (`transposed_weights(model)`, for CPU generation) and
    autograd is off. MKL then reads the weight in the layout it computes with instead of re-laying
    it out on every call, most of the cost of a 16-row product (1.5x per call at 16 rows)."""

    weight_t: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.weight_t is None or torch.is_grad_enabled():
            return super().forward(x)
        x2d = x.reshape(-1, x.size(-1))
        y = torch.mm(x2d, self.weight_t) if self.bias is None else torch.addmm(self.bias, x2d, self.weight_t)
        return y.view(*x.shape[:-1], -1)


@contextmanager
def transposed_weights(model: nn.Module) -> Iterator[None]:
    """Within this block, linear layers without autograd multiply by contiguous copies of their
    transposed weights (see `TransposableLinear`; a model without fast paths is left alone): faster
    few-row products on CPU, for as much memory again as the linear weights. The copies are made on
    entry and dropped on exit, so weights changed inside the block are not seen. Off CPU (where the
    layout does not pay) it does nothing.
    Nested blocks share the outer block's copies (`generate` holds them over all its batches)."""
    linears = [m for m in model.modules() if isinstance(m, TransposableLinear)]
    if next(model.parameters()).device.type != "cpu" or (linears and linears[0].weight_t is not None):
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


# --------------------------------------------------------------------------- installing
SWAPS: dict[type[nn.Module], type[nn.Module]] = {
    Rotary: FastRotary, CausalSelfAttention: FastCausalSelfAttention, nn.Dropout: PhiloxDropout,
    nn.GELU: FusedGELU, nn.Linear: TransposableLinear,
}
"""Base class -> its fast subclass (no new parameters or buffers)."""


def install(model: nn.Module) -> nn.Module:
    """Swap every module of an exact base class in `SWAPS` to its fast subclass, in place."""
    for m in model.modules():
        fast = SWAPS.get(type(m))
        if fast is not None:
            m.__class__ = fast
    return model


def remove(model: nn.Module) -> nn.Module:
    """Back to the plain classes of `model.py` (the readable path), in place."""
    plain = {v: k for k, v in SWAPS.items()}
    for m in model.modules():
        base = plain.get(type(m))
        if base is not None:
            m.__class__ = base
    return model

