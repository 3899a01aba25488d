"""Where the repository and the shared data live, and a scoped change of environment variables."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterable, Iterator

REPO_ROOT = Path(__file__).resolve().parents[2]
"""The repository root (where `notebooks/`, `figures/` and `runs/` live)."""

SHARED_DATA = Path(os.environ.get("PHI_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
"""Optional offline copies of MBPP, EvalPlus and open synthetic datasets (never copied into the repo)."""


@contextlib.contextmanager
def environ_restored(keys: Iterable[str]) -> Iterator[None]:
    """Inside: change `keys` in `os.environ` freely; on exit each is back as it was (or unset again)."""
    saved = {k: os.environ.get(k) for k in keys}
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
