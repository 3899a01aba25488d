"""Small pieces shared by the textbook and exercise stages: teacher access, sandbox runs, the funnel."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from ..config import ProfileConfig
    from ..rundir import RunDir
    from ..teacher import Teacher


def open_teacher(cfg: ProfileConfig, rd: RunDir) -> Teacher:
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


def funnel(rows: Sequence[dict[str, Any]], filters: Sequence[tuple[str, tuple[str, ...]]]) -> dict[str, int]:
    """How many rows survive each filter in order: `generated` (all rows), then for each (name, statuses
    it drops) the rows whose `status` none of the filters so far dropped."""
    statuses = [r["status"] for r in rows]
    after = {"generated": len(statuses)}
    dropped: set[str] = set()
    for name, bad in filters:
        dropped.update(bad)
        after[name] = sum(s not in dropped for s in statuses)
    return after


def tokens_by_origin(origins: Sequence[str], n_tokens: Sequence[int]) -> dict[str, int]:
    """Token count per origin label, in first-seen order."""
    out: dict[str, int] = {}
    for o, n in zip(origins, n_tokens):
        out[o] = out.get(o, 0) + int(n)
    return out
