"""Small pieces shared by the textbook and exercise stages: teacher access, sandbox runs, I/O."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Sequence


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


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, default=str) + "\n")
    tmp.replace(path)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(l) for l in f if l.strip()]


def share(counts: dict[str, int], total: int) -> dict[str, float]:
    return {k: (v / total if total else 0.0) for k, v in counts.items()}
