"""Headless progress bars (the pipeline's notebook kernels) print a few whole lines, not redraws."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = """
import sys
from phi_utils.progress import tqdm
for _ in tqdm(range(1000), desc="work", mininterval=0):
    pass
bar = tqdm(total=7, desc="leave-false", leave=False, mininterval=0)
for _ in range(7):
    bar.update(1)
bar.close()
tqdm.write("a message")
"""


def _run(env_value: str | None) -> subprocess.CompletedProcess:
    """The script's output as written (bytes decoded here: text mode would turn \r into \n)."""
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}
    if env_value is not None:
        env["PHI_HEADLESS"] = env_value
    r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, env=env, check=True)
    return subprocess.CompletedProcess(r.args, r.returncode, r.stdout.decode(), r.stderr.decode())


def test_headless_bar_prints_five_lines_per_bar() -> None:
    r = _run("1")
    assert "\r" not in r.stderr
    lines = r.stderr.splitlines()
    work = [ln for ln in lines if ln.startswith("work")]
    assert [ln.split("|")[0].split(":")[1].strip() for ln in work] == ["0%", "25%", "50%", "75%", "100%"]
    assert work[-1].count("1000/1000") == 1
    assert len([ln for ln in lines if ln.startswith("leave-false")]) == 5
    assert all(ln.strip() for ln in lines)  # no blank lines from tqdm's close
    assert r.stdout.strip() == "a message"


def test_interactive_bar_redraws_in_place() -> None:
    r = _run(None)
    assert "\r" in r.stderr  # the ordinary tqdm bar, one line redrawn
