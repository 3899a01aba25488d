"""Keep the environment files in step with pyproject.toml (tests/test_repo.py checks them).

    python scripts/sync_environment.py          regenerate environment.yml from pyproject.toml's ranges
    .venv/bin/python scripts/sync_environment.py --lock
                                                write requirements.lock: the exact versions installed in
                                                the running interpreter's environment (see the README)
"""

import argparse
import platform
import subprocess
import sys
import tomllib
from pathlib import Path

root = Path(__file__).resolve().parent.parent
LOCK = root / "requirements.lock"


def write_environment_yml() -> None:
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    deps = project["dependencies"] + project["optional-dependencies"]["dev"]
    lines = [
        "# conda users: `conda env create -f environment.yml && conda activate phi1`.",
        "# The same dependencies as pyproject.toml (regenerate: python scripts/sync_environment.py);",
        "# the exact versions the committed results came from are in requirements.lock.",
        "name: phi1", "channels:", "  - conda-forge", "dependencies:", "  - python=3.11", "  - pip", "  - pip:", "      - -e .",
    ] + [f'      - "{d}"' for d in deps]
    (root / "environment.yml").write_text("\n".join(lines) + "\n")


def write_lock() -> None:
    """`pip freeze` of this environment minus the project itself (installed editable from the checkout)."""
    out = subprocess.run([sys.executable, "-m", "pip", "freeze", "--exclude-editable", "--disable-pip-version-check"],
                         capture_output=True, text=True, check=True).stdout
    pins = sorted((ln for ln in out.splitlines() if ln and not ln.startswith(("#", "-e ", "phi_utils", "phi-utils"))),
                  key=str.lower)
    bad = [p for p in pins if "==" not in p]
    if bad:
        raise SystemExit(f"not pinnable (installed from a path or URL): {', '.join(bad)}")
    header = [
        "# The exact environment of this project (every package, transitive ones included), installed by",
        "# scripts/setup.sh with `pip install --no-deps -r requirements.lock`. torch is the CPU build.",
        f"# Made with Python {platform.python_version()} on {platform.machine()} Linux by",
        "# `python scripts/sync_environment.py --lock` from a fresh PHI_NO_LOCK=1 set-up (README, Running).",
    ]
    LOCK.write_text("\n".join(header + pins) + "\n")
    print(f"wrote {LOCK} ({len(pins)} packages)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lock", action="store_true", help="write requirements.lock from this environment")
    if ap.parse_args().lock:
        write_lock()
    else:
        write_environment_yml()
