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


def test_a_headless_kernel_shows_no_progress_warning(tmp_path: Path) -> None:
    """A notebook run by the pipeline (a real kernel) that imports tqdm.auto, as datasets and
    transformers do, keeps no `IProgress not found` warning and prints its bar in whole lines."""
    import nbformat

    from phi_utils.pipeline import execute_notebook

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("params = 1", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("import tqdm.auto\nfrom phi_utils.progress import tqdm\n"
                                          "for _ in tqdm(range(100), desc='work', mininterval=0):\n    pass")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    src, dst = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    nbformat.write(nb, src)
    execute_notebook(src, dst, {"params": 2}, REPO)
    outputs = [o for c in nbformat.read(dst, as_version=4).cells for o in c.get("outputs", [])]
    text = "".join(o.get("text", "") for o in outputs)
    assert "IProgress" not in text and "TqdmWarning" not in text
    assert text.count("work:") == 5  # 0, 25, 50, 75, 100%
