"""Whether a notebook can run now: the upstream steps it reads, from the step graph, must be done.

A notebook opened out of order (in JupyterLab, or `run --stages 08` on a fresh run directory)
stops at its set-up cell with one line naming the stage to run first, instead of failing deep in a
stage function. The run directory, holding its step graph, is passed in (this module imports nothing
of phi_utils).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Mapping, Protocol

NOTEBOOK_ENV = "PHI_NOTEBOOK"
"""The running notebook's name, set by the runner for its kernels (`JPY_SESSION_NAME`, which Jupyter
sets to the notebook's path, serves in JupyterLab)."""


class _Spec(Protocol):
    stage: str
    deps: tuple[str, ...]


class _RunDir(Protocol):
    path: Path

    @property
    def graph(self) -> Mapping[str, _Spec]: ...

    def redo_reasons(self, step: str) -> list[str]: ...


class StageNotReady(RuntimeError):
    """An upstream stage has to run first; shown as its one line in a notebook (no traceback)."""

    def _render_traceback_(self) -> list[str]:  # IPython shows this instead of the traceback
        return [f"{type(self).__name__}: {self}"]


def current_stage(env: Mapping[str, str] = os.environ) -> str | None:
    """The two-digit stage of the notebook this kernel runs, from the runner's or Jupyter's environment."""
    for name in (NOTEBOOK_ENV, "JPY_SESSION_NAME"):
        m = re.match(r"(\d\d)_", Path(env.get(name, "")).name)
        if m:
            return m.group(1)
    return None


def missing_upstream(stage: str, rd: _RunDir) -> list[str]:
    """The steps of other stages that `stage`'s unfinished steps read, directly or through another
    missing step, and that are not done or are stale; in graph order. Empty when the stage can run."""
    graph = rd.graph
    own = [name for name, spec in graph.items() if spec.stage == stage]
    todo = [name for name in own if rd.redo_reasons(name)]
    missing: set[str] = set()
    seen: set[str] = set()
    while todo:
        for dep in graph[todo.pop()].deps:
            if dep in seen or dep not in graph:
                continue
            seen.add(dep)
            if graph[dep].stage != stage and rd.redo_reasons(dep):
                missing.add(dep)
                todo.append(dep)
    return [name for name in graph if name in missing]


def readiness_message(stage: str, rd: _RunDir, profile: str | None = None) -> str | None:
    """One line naming the stage to run first (the earliest one with a missing step), or None."""
    missing = missing_upstream(stage, rd)
    if not missing:
        return None
    first = min(rd.graph[s].stage for s in missing)
    before = f"{int(stage) - 1:02d}"
    steps = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
    cmd = f"python -m phi_utils run{f' --profile {profile}' if profile else ''} --run-dir {rd.path} --stages " \
          f"{first if first == before else f'{first}-{before}'}"
    return f"stage {stage} reads {steps}, not done (or stale) in {rd.path}: run stage {first} first (`{cmd}`)"


def check_ready(stage: str, rd: _RunDir, profile: str | None = None) -> None:
    """Raise StageNotReady (one line) when `stage` reads upstream steps that are not done."""
    message = readiness_message(stage, rd, profile)
    if message:
        raise StageNotReady(message)
