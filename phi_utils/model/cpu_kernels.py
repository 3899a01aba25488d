"""Optional C++ kernel for CPU decoding (`csrc/decode_attention.cpp`): one decoding step of
attention that skips the padding of a left-padded batch instead of reading and masking it.

It is compiled on first use with `torch.utils.cpp_extension` (about 10 s with g++ and ninja; cached
under `TORCH_EXTENSIONS_DIR`, default `~/.cache/torch_extensions`, and rebuilt when the source
changes). Where it cannot be built (no compiler, not x86-64 with AVX2) or `PHI_CPU_KERNELS=0`,
`fused_decode_attention()` returns None after one log line and the model uses its PyTorch path,
which computes the same attention.
"""

from __future__ import annotations

import functools
import logging
import os
import platform
import shutil
from pathlib import Path
from typing import Callable

import torch

log = logging.getLogger(__name__)

SOURCE = Path(__file__).parent / "csrc" / "decode_attention.cpp"


@functools.cache
def fused_decode_attention() -> Callable[..., torch.Tensor] | None:
    """`op(q, k, v, bias, scale) -> (B, H, 1, D)`, or None where the kernel is off or cannot be built.
    q (B, H, 1, D), k and v (B, H, S, D) with a unit last stride, bias (B, H, 1, S) additive
    (0 / -inf; an empty tensor for none), all fp32."""
    if os.environ.get("PHI_CPU_KERNELS", "1") == "0":
        return None
    if platform.machine().lower() not in ("x86_64", "amd64") or torch.backends.cpu.get_cpu_capability() not in (
            "AVX2", "AVX512"):
        log.info("CPU decode kernel: needs x86-64 with AVX2; using the PyTorch path")
        return None
    try:
        from torch.utils import cpp_extension

        _put_ninja_on_path()
        log.info("CPU decode kernel: loading (the first time on a machine it compiles, about 12 s)")
        cpp_extension.load(name="phi_utils_decode_attention", sources=[str(SOURCE)],
                           extra_cflags=["-O3", "-mavx2", "-mfma", "-fopenmp"], extra_ldflags=["-fopenmp"],
                           is_python_module=False, verbose=False)
        return torch.ops.phi_utils.decode_attention
    except Exception as e:  # no compiler, no ninja, a failed build: decoding still works, a bit slower
        log.warning("CPU decode kernel could not be built (%s: %s); using the PyTorch path "
                    "(set PHI_CPU_KERNELS=0 to skip the attempt)", type(e).__name__, str(e).splitlines()[0] if str(e) else "")
        return None


def _put_ninja_on_path() -> None:
    """cpp_extension runs `ninja` from PATH; the pip package's binary is not there unless the venv is activated."""
    if shutil.which("ninja") is None:
        try:
            import ninja  # type: ignore[import-not-found]
        except ImportError:
            return
        os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")
