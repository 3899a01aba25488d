"""Small pieces shared by the textbook and exercise stages: teacher access and sandbox runs."""

from __future__ import annotations

from typing import Any, Sequence


def open_teacher(cfg: Any, rd: Any) -> Any:
    """The configured teacher (local server attached or started; see `phi_utils.teacher`)."""
    from ..teacher import Teacher

    return Teacher.from_config(cfg.teacher, rd)


def run_sandboxed(codes: Sequence[str], timeout_s: float, desc: str) -> list[Any]:
    """Run programs in the project's sandbox (bubblewrap + limits), order kept."""
    from ..evaluation.sandbox import run_programs

    if not codes:
        return []
    return run_programs(list(codes), workers=2, timeout_s=timeout_s, desc=desc,
                        env={"MPLBACKEND": "Agg", "SDL_VIDEODRIVER": "dummy"})


def share(counts: dict[str, int], total: int) -> dict[str, float]:
    return {k: (v / total if total else 0.0) for k, v in counts.items()}
