"""Notebook 00: the paper in one page, an environment check, and the profile's plan."""

from __future__ import annotations

import dataclasses
import os
import platform
import shutil
from importlib import metadata
from typing import Any

import pandas as pd

from .config import SHARED_DATA, ProfileConfig, field_docs
from .rundir import RunDir, package_versions, write_json_atomic

# Paper-reported headline numbers (Gunasekar et al. 2023; see shared reference notes for sources).
PAPER_HEADLINES: list[dict[str, Any]] = [
    {"model": "phi-1", "params": "1.3B", "train tokens": "7B unique, ~51B seen", "HumanEval pass@1": 50.6, "MBPP pass@1": 55.5},
    {"model": "phi-1-base", "params": "1.3B", "train tokens": "CodeTextbook only", "HumanEval pass@1": 29.0, "MBPP pass@1": None},
    {"model": "phi-1-small", "params": "350M", "train tokens": "same pipeline", "HumanEval pass@1": 45.0, "MBPP pass@1": None},
]


def paper_headlines() -> pd.DataFrame:
    df = pd.DataFrame(PAPER_HEADLINES)
    df.insert(0, "source", "paper-reported")
    return df


def environment_report() -> dict[str, Any]:
    """What this machine offers the pipeline: versions, accelerator, sandbox, offline assets."""
    import torch

    report: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "flash_attn": _installed("flash-attn"),
        "bubblewrap": shutil.which("bwrap"),
        "xvfb": shutil.which("Xvfb"),
        "shared_data": str(SHARED_DATA) if SHARED_DATA.exists() else None,
        "shared_datasets": sorted(p.name for p in SHARED_DATA.iterdir()) if SHARED_DATA.exists() else [],
        "hf_offline": os.environ.get("HF_HUB_OFFLINE") == "1",
    }
    report["versions"] = package_versions()
    return report


def _installed(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def config_table(cfg: ProfileConfig) -> pd.DataFrame:
    """Every field of every stage config with its value and docstring."""
    rows = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            docs = field_docs(type(value))
            for g in dataclasses.fields(value):
                rows.append({"section": f.name, "field": g.name, "value": getattr(value, g.name),
                             "meaning": docs.get(g.name, "")})
    return pd.DataFrame(rows)


def write_environment(rd: RunDir) -> dict[str, Any]:
    report = environment_report()
    write_json_atomic(rd.path / "environment.json", report)
    return report
