"""Figures: every plot is saved as `figures/<name>.png` with the plotted numbers in `<name>.json`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .config import REPO_ROOT
from .rundir import RunDir, strict, write_json_atomic

FIGURES_DIR = Path(os.environ.get("PHI_FIGURES_DIR", REPO_ROOT / "figures"))


PUBLISHING_PROFILES = ("tiny",)
"""Profiles whose figures go to the committed top-level `figures/` (smoke runs must not overwrite them)."""


def save_figure(fig: Any, name: str, data: Any, rd: "RunDir", dpi: int = 120) -> Path:
    """Save `fig` (matplotlib) as `<run_dir>/figures/<name>.png` plus `<name>.json` holding `data`.

    For the `tiny` profile the same files also go to the repository's `figures/`, which is
    committed from the latest full `tiny` run. Returns the run-directory PNG path.
    """
    targets = [Path(rd.path) / "figures"]
    if rd.profile in PUBLISHING_PROFILES:
        targets.append(FIGURES_DIR)
    for d in targets:
        d.mkdir(parents=True, exist_ok=True)
        fig.savefig(d / f"{name}.png", dpi=dpi, bbox_inches="tight")
        write_json_atomic(d / f"{name}.json", strict(data))  # NaN/inf -> null: the sidecar stays JSON
    return targets[0] / f"{name}.png"
