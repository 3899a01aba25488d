"""Optional C++ kernels for CPU (`csrc/`), built together as one extension:

- `decode_attention.cpp`: one decoding step of attention that skips the padding of a left-padded
  batch instead of reading and masking it, alone or fused with the rotary embedding and the KV-cache
  write that precede it;
- `dropout.cpp`: dropout from a counter-based random stream (Philox4x32-10, as on CUDA), parallel
  and vectorized where PyTorch's CPU `bernoulli_` draws serially from one generator; backward
  recomputes the mask from the seed;
- `transpose.cpp`: a tiled transposed copy of a weight (CPU generation multiplies by Wᵀ copies);
- `gelu.cpp`: gelu_new (tanh GELU) forward and backward in fp32, as x * sigmoid(2y), several times
  faster than PyTorch's CPU kernel (which evaluates an accurate vectorized tanh).

They are compiled on first use with `torch.utils.cpp_extension` (about 20 s with g++ and ninja on 2 cores;
cached under `TORCH_EXTENSIONS_DIR`, default `~/.cache/torch_extensions`, and rebuilt when a
source changes). Where they cannot be built (no compiler, not x86-64 with AVX2) or
`PHI_CPU_KERNELS=0`, the accessors return None after one log line and the model uses PyTorch's
own ops, which compute the same functions (dropout with differently drawn masks).
"""

from __future__ import annotations

import functools
import logging
import os
import platform
import shutil
from pathlib import Path
from typing import Any, Callable

import torch

log = logging.getLogger(__name__)

SOURCES = tuple(Path(__file__).parent / "csrc" / f for f in ("decode_attention.cpp", "dropout.cpp", "gelu.cpp", "transpose.cpp"))


@functools.cache
def _load() -> bool:
    if os.environ.get("PHI_CPU_KERNELS", "1") == "0":
        return False
    if platform.machine().lower() not in ("x86_64", "amd64") or torch.backends.cpu.get_cpu_capability() not in (
            "AVX2", "AVX512"):
        log.info("CPU kernels: need x86-64 with AVX2; using PyTorch's ops")
        return False
    try:
        from torch.utils import cpp_extension

        _put_ninja_on_path()
        log.info("CPU kernels: loading (the first time on a machine they compile, about 20 s)")
        cpp_extension.load(name="phi_utils_cpu_kernels", sources=[str(s) for s in SOURCES],
                           extra_cflags=["-O3", "-mavx2", "-mfma", "-fopenmp"], extra_ldflags=["-fopenmp"],
                           is_python_module=False, verbose=False)
        return True
    except Exception as e:  # no compiler, no ninja, a failed build: everything still works, a bit slower
        log.warning("CPU kernels could not be built (%s: %s); using PyTorch's ops "
                    "(set PHI_CPU_KERNELS=0 to skip the attempt)", type(e).__name__, str(e).splitlines()[0] if str(e) else "")
        return False


def fused_decode_attention() -> Callable[..., torch.Tensor] | None:
    """`op(q, k, v, bias, scale) -> (B, H, 1, D)`, or None where the kernels are off or cannot be built.
    q (B, H, 1, D), k and v (B, H, S, D) with a unit last stride, bias (B, H, 1, S) additive
    (0 / -inf; an empty tensor for none), all fp32."""
    return torch.ops.phi_utils.decode_attention if _load() else None


def fused_decode_step() -> Callable[..., torch.Tensor] | None:
    """`op(qkv, cos, sin, k_cache, v_cache, pos, bias, scale, rotary_dim) -> (B, 1, H * D)`: one
    decoding step of an attention layer after its qkv projection (rotary on q and k, k and v written
    into the caches at `pos`, attention over [0, pos]), or None where the kernels are off or cannot be
    built. qkv (B, 1, 3, H, D) contiguous, cos/sin (B, D) with a unit last stride, caches (B, H, max_len, D), fp32."""
    return torch.ops.phi_utils.decode_step if _load() else None


def transposed_copy(w: torch.Tensor) -> torch.Tensor:
    """`w.t().contiguous()` for a 2-D weight; the tiled C++ copy (2x PyTorch's) for contiguous fp32
    CPU tensors when the kernels are built."""
    if w.dim() == 2 and w.device.type == "cpu" and w.dtype == torch.float32 and w.is_contiguous() and _load():
        return torch.ops.phi_utils.transpose_copy(w)
    return w.t().contiguous()


def fused_dropout() -> Callable[[torch.Tensor, float], torch.Tensor] | None:
    """`dropout(x, p) -> y` (autograd-aware, CPU, any float dtype), or None where the kernels are
    off or cannot be built. The seed comes from torch's default generator, so `torch.manual_seed`
    fixes the masks, and activation checkpointing (which restores the RNG state) recomputes the same."""
    return _dropout if _load() else None


class _PhiloxDropout(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, p: float) -> torch.Tensor:  # type: ignore[override]
        seed = int(torch.randint(0, 2**63 - 1, (), dtype=torch.int64))
        ctx.p, ctx.seed = p, seed
        return torch.ops.phi_utils.dropout(x.contiguous(), p, seed)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        # d(x * m / (1 - p)) / dx = m / (1 - p): the same op on the gradient, same seed, same mask.
        return torch.ops.phi_utils.dropout(grad.contiguous(), ctx.p, ctx.seed), None


def _dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    return _PhiloxDropout.apply(x, p)


def chunked_dropout_attention() -> Callable[..., torch.Tensor] | None:
    """`dropout_at(x, p, seed, offset) -> y`: elements [offset, offset + x.numel()) of the masks
    `dropout(., p, seed)` draws for a larger tensor (offset a multiple of 128), for attention computed
    a chunk at a time (`fast.causal_attention_dropout_cpu`); None where the kernels are off or cannot
    be built."""
    return torch.ops.phi_utils.dropout_at if _load() else None


def fused_gelu_tanh() -> Callable[[torch.Tensor], torch.Tensor] | None:
    """`gelu_tanh(x) -> y` (autograd-aware, CPU, fp32 only: callers check), or None where the kernels
    are off or cannot be built. Equals `F.gelu(x, approximate="tanh")` within a few float ulps."""
    return _gelu_tanh if _load() else None


class _GeluTanh(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        x = x.contiguous()
        ctx.save_for_backward(x)
        return torch.ops.phi_utils.gelu_tanh(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return torch.ops.phi_utils.gelu_tanh_backward(grad.contiguous(), x)


def _gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    if torch.is_grad_enabled() and x.requires_grad:
        return _GeluTanh.apply(x)
    return torch.ops.phi_utils.gelu_tanh(x.contiguous())  # decoding: skip autograd.Function's overhead


def _put_ninja_on_path() -> None:
    """cpp_extension runs `ninja` from PATH; the pip package's binary is not there unless the venv is activated."""
    if shutil.which("ninja") is None:
        try:
            import ninja  # type: ignore[import-not-found]
        except ImportError:
            return
        os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")
