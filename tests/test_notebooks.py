"""Every notebook executed through the runner on the smoke profile (CI runs `pytest -m notebooks`)."""

from __future__ import annotations

import time

import pytest

from phi_utils.config import SHARED_DATA, get_profile
from phi_utils.pipeline import STAGES, run_pipeline
from phi_utils.plots import FIGURES_DIR

pytestmark = pytest.mark.notebooks


@pytest.mark.timeout(40 * 60)  # the assertion below holds it to its 15-minute budget
def test_smoke_pipeline_runs_every_notebook(tmp_path, monkeypatch):
    # SmolLM2 cannot write exercises that pass their tests: smoke's CodeExercises is the open top-up set
    topup = SHARED_DATA / get_profile("smoke").exercises.topup_source
    if not topup.exists():
        pytest.skip(f"smoke needs the open exercise set at {topup} (shared data absent): without it "
                    f"CodeExercises is empty and notebook 07 stops, by design, with an error saying so")
    figures_before = {p: p.stat().st_mtime for p in FIGURES_DIR.glob("*.png")}
    _clean_git_tree(tmp_path / "tree", monkeypatch)  # so that `publish` below accepts the run
    t0 = time.time()
    results = run_pipeline("smoke", tmp_path / "smoke")
    minutes = (time.time() - t0) / 60
    assert [r.status for r in results] == ["done"] * len(STAGES)
    rd = tmp_path / "smoke"
    from phi_utils.arms import training_steps

    steps = training_steps(get_profile("smoke"))
    for step in ("corpus", "annotation", "filtering", "textbooks", "exercises", "tokenizer", *steps, "eval"):
        assert (rd / step / "_COMPLETE.json").exists(), f"step {step} did not complete"
    for step in steps:
        assert (rd / step / "final" / "config.json").exists(), f"Figure 2.1 model {step}/final missing"
    assert list((rd / "figures").glob("*.png")), "no figures written into the run directory"
    # smoke never overwrites the committed figures of the tiny run
    assert {p: p.stat().st_mtime for p in FIGURES_DIR.glob("*.png")} == figures_before
    # a second run skips everything
    again = run_pipeline("smoke", rd)
    assert [r.status for r in again] == ["skipped"] * len(STAGES)
    assert minutes <= 15, f"smoke pipeline took {minutes:.1f} min, over its 15-minute budget"
    _check_publish(rd, tmp_path / "site")


def _clean_git_tree(path, monkeypatch) -> None:
    """Point git (here and in the kernels) at a committed one-file tree: the manifests then record a clean commit."""
    import subprocess

    path.mkdir()
    (path / "f.txt").write_text("x\n")
    git = ["git", "-c", "user.email=t@example.org", "-c", "user.name=t"]
    for args in (["init", "-q"], ["add", "f.txt"], ["commit", "-q", "-m", "c"]):
        subprocess.run(git + args, cwd=path, check=True)
    monkeypatch.setenv("GIT_DIR", str(path / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(path))


def _check_publish(rd, root) -> None:
    """`publish` on the smoke run: every executed notebook with outputs and no error, HTML, figures, blocks."""
    import json

    from phi_utils.config import REPO_ROOT
    from phi_utils.publish import NOTEBOOKS_END, NOTEBOOKS_START, publish
    from phi_utils.report import END, START

    (root / "docs").mkdir(parents=True)
    (root / "README.md").write_text(f"{NOTEBOOKS_START}\n{NOTEBOOKS_END}\n{START}\n{END}\n")
    (root / "docs" / "results.md").write_text(f"{START}\n{END}\n")
    out = publish(rd, root=root)
    assert len(out.notebooks) == len(STAGES) == len(out.html)
    for rel in out.notebooks:
        text = (root / rel).read_text()
        assert str(REPO_ROOT) not in text and str(rd) not in text, f"{rel} holds a path of this machine"
        code = [c for c in json.loads(text)["cells"] if c["cell_type"] == "code"]
        assert all(c["execution_count"] is not None for c in code), f"{rel}: a cell did not run"
        assert any(c["outputs"] for c in code) and not [o for c in code for o in c["outputs"]
                                                        if o["output_type"] == "error"], rel
        assert (root / rel).with_suffix(".html").stat().st_size > 0
    assert (root / "figures" / "08_figure_2_1.png").exists() and (root / "figures" / "MANIFEST.json").exists()
    readme = (root / "README.md").read_text()
    assert "figures/08_figure_2_1.png" in readme and "On the loss of the benchmarks' reference solutions" in readme
    assert "| arm | loss, nats/token" in readme and "docs/notebooks/08_evaluation.ipynb" in readme
