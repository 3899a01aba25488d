"""Small pieces shared by the textbook and exercise stages: teacher access and sandbox runs."""

from __future__ import annotations

import os
from typing import Any, Sequence


def open_teacher(cfg: Any, rd: Any) -> Any:
    """The configured teacher (local server attached or started; see `phi_utils.teacher`)."""
    from ..teacher import Teacher

    return Teacher.from_config(cfg.teacher, rd)


def run_sandboxed(codes: Sequence[str], timeout_s: float, desc: str, workers: int | None = None) -> list[Any]:
    """Run programs in the project's sandbox (bubblewrap + limits), order kept; `workers` None = half
    the CPU cores, at least 2 (paper scale validates ~2.4M programs)."""
    from ..sandbox import run_programs

    if not codes:
        return []
    workers = workers or max(2, (os.cpu_count() or 2) // 2)
    return run_programs(list(codes), workers=workers, timeout_s=timeout_s, desc=desc,
                        env={"MPLBACKEND": "Agg", "SDL_VIDEODRIVER": "dummy"})


def share(counts: dict[str, int], total: int) -> dict[str, float]:
    return {k: (v / total if total else 0.0) for k, v in counts.items()}
