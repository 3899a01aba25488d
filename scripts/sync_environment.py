"""Regenerate environment.yml from pyproject.toml (tests/test_repo.py checks that they agree)."""

import tomllib
from pathlib import Path

root = Path(__file__).resolve().parent.parent
project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
deps = project["dependencies"] + project["optional-dependencies"]["dev"]
lines = [
    "# conda users: `conda env create -f environment.yml && conda activate phi1`.",
    "# The same dependencies as pyproject.toml (regenerate: python scripts/sync_environment.py).",
    "name: phi1", "channels:", "  - conda-forge", "dependencies:", "  - python=3.11", "  - pip", "  - pip:", "      - -e .",
] + [f'      - "{d}"' for d in deps]
(root / "environment.yml").write_text("\n".join(lines) + "\n")
