"""Figures: every plot is saved as `<run_dir>/figures/<name>.png` with the plotted numbers in `<name>.json`.

The repository's `figures/` is written only by `python -m phi_utils publish` from a finished run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .config import REPO_ROOT
from .rundir import RunDir, strict, write_json_atomic

FIGURES_DIR = Path(os.environ.get("PHI_FIGURES_DIR", REPO_ROOT / "figures"))
"""The committed figures of the published run (`phi_utils.publish`); a run never writes here."""


def save_figure(fig: Any, name: str, data: Any, rd: "RunDir", dpi: int = 120) -> Path:
    """Save `fig` (matplotlib) as `<run_dir>/figures/<name>.png` plus `<name>.json` holding `data`;
    returns the PNG's path. `python -m phi_utils publish` copies them to the repository's `figures/`."""
    d = Path(rd.path) / "figures"
    d.mkdir(parents=True, exist_ok=True)
    fig.savefig(d / f"{name}.png", dpi=dpi, bbox_inches="tight")
    write_json_atomic(d / f"{name}.json", strict(data))  # NaN/inf -> null: the sidecar stays JSON
    return d / f"{name}.png"
