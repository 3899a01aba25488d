"""`python -m phi_utils publish`: a real run directory (papermill, real kernels, real git), published
into a scratch copy of the repository's text files; and its refusals, each made for real."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import nbformat
import pytest

from phi_utils.config import REPO_ROOT
from phi_utils.pipeline import Stage, run_pipeline
from phi_utils.publish import (NOTEBOOKS_END, NOTEBOOKS_START, PublishError, collapse_progress, headline_sentence,
                               publish)
from phi_utils.report import END, START
from phi_utils.rundir import StepGraph, StepSpec

GRAPH = {"a": ("00", ("pretrain.max_steps", "seed"), ()), "b": ("01", ("finetune.max_steps",), ("a",))}


def two_steps(cfg: object) -> StepGraph:
    return StepGraph({k: StepSpec(*v) for k, v in GRAPH.items()})


SETUP = """
from IPython.display import display
from phi_utils.rundir import StepGraph, StepSpec
from phi_utils.steps import open_stage
graph = StepGraph({k: StepSpec(v[0], tuple(v[1]), tuple(v[2])) for k, v in GRAPH.items()})
cfg, rd = open_stage(profile, run_dir, seed, graph=lambda cfg: graph)
for step in STEPS:
    with rd.step(step, force) as rec:
        pass
print("outputs in", rd.path / STEPS[0])
"""
BAR = """
from phi_utils.progress import tqdm
for _ in tqdm(range(8), desc="work"):
    pass
print("worked")
"""
FIGURE = """
%matplotlib inline
import matplotlib.pyplot as plt
from phi_utils.plots import save_figure
fig, ax = plt.subplots(figsize=(2, 2))
ax.plot([1, 3, 2])
print(save_figure(fig, NAME[:2] + "_line", {"y": [1, 3, 2]}, rd).name)
display(fig)
"""


def write_notebook(path: Path, stage: str, extra: str = "") -> None:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "tiny"\nrun_dir = None\nseed = 0\nforce = False')
    params.metadata["tags"] = ["parameters"]
    steps = [k for k, v in GRAPH.items() if v[0] == stage]
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {stage}"), params,
                nbformat.v4.new_code_cell(f"NAME = {path.stem!r}\nGRAPH = {GRAPH!r}\nSTEPS = {steps!r}\n" + SETUP),
                nbformat.v4.new_code_cell(BAR), nbformat.v4.new_code_cell(FIGURE + extra)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture
def site(tmp_path: Path, monkeypatch) -> dict[str, Path]:
    """Two staged notebooks over a two-step graph, a clean git tree for the manifests' commit, and a
    scratch repository root holding the README and docs/results.md with their blocks."""
    repo = tmp_path / "tree"
    repo.mkdir()
    (repo / "code.py").write_text("x = 1\n")
    git = ["git", "-c", "user.email=t@example.org", "-c", "user.name=t"]
    subprocess.run(git + ["init", "-q"], cwd=repo, check=True)
    subprocess.run(git + ["add", "code.py"], cwd=repo, check=True)
    subprocess.run(git + ["commit", "-q", "-m", "c"], cwd=repo, check=True)
    monkeypatch.setenv("GIT_DIR", str(repo / ".git"))  # git_sha() reads this tree (kernels inherit it)
    monkeypatch.setenv("GIT_WORK_TREE", str(repo))
    nbdir = tmp_path / "notebooks"
    nbdir.mkdir()
    for stage, name in (("00", "00_a"), ("01", "01_b")):
        write_notebook(nbdir / f"{name}.ipynb", stage)
    root = tmp_path / "root"
    (root / "docs").mkdir(parents=True)
    (root / "README.md").write_text(f"# x\n{NOTEBOOKS_START}\nold table\n{NOTEBOOKS_END}\n{START}\nold\n{END}\ntail\n")
    (root / "docs" / "results.md").write_text(f"# results\n{START}\nold\n{END}\n")
    return {"tree": repo, "notebooks": nbdir, "root": root, "tmp": tmp_path}


STAGES = [Stage("00", "00_a", "first", section="§1", summary="the first"), Stage("01", "01_b", "second")]


def _run(site: dict[str, Path], name: str, **kw) -> Path:
    path = site["tmp"] / name
    run_pipeline("smoke", path, notebooks_dir=site["notebooks"], stage_table=STAGES, echo=lambda s: None, graph=two_steps, **kw)
    return path


def _publish(site: dict[str, Path], run: Path):
    return publish(run, root=site["root"], stages=STAGES, notebooks_dir=site["notebooks"], graph=two_steps)


def test_publish_writes_notebooks_html_figures_and_blocks_and_refuses_what_it_must(site):
    run = _run(site, "run")
    out = _publish(site, run)
    root = site["root"]
    assert out.notebooks == ["docs/notebooks/00_a.ipynb", "docs/notebooks/01_b.ipynb"]
    for rel in out.notebooks:
        nb = json.loads((root / rel).read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert all(c["execution_count"] is not None for c in code), rel
        tags = lambda c: c["metadata"].get("tags", [])  # noqa: E731
        assert all(c["outputs"] for c in code if not {"parameters", "injected-parameters"} & set(tags(c))), rel
        outputs = [o for c in code for o in c["outputs"]]
        assert not [o for o in outputs if o["output_type"] == "error"]
        assert any("image/png" in o.get("data", {}) for o in outputs), "figure not embedded"
        text = (root / rel).read_text()
        for machine_path in (str(site["tmp"]), str(REPO_ROOT), str(Path.home())):
            assert machine_path not in text, f"{rel} holds {machine_path}"
        streams = "".join(o["text"] for o in outputs if o["output_type"] == "stream")
        assert streams.count("work:") == 1 and "100%" in streams, streams  # one line per progress bar
        assert "outputs in <run_dir>/" in streams, streams  # the run directory outside the root: a placeholder
        html = (root / rel).with_suffix(".html").read_text()
        assert "data:image/png;base64" in html and "worked" in html
        head = html[:html.index("</head>")]  # the template's styles are linked, not copied into each page
        assert "<style" not in head and head.count('<link href="notebook.css"') == 1
    css = (root / "docs" / "notebooks" / "notebook.css").read_text()
    assert ".jp-Notebook" in css and len(css) > 50_000 and "<style" not in css
    assert (root / "figures" / "00_line.png").exists() and (root / "figures" / "01_line.json").exists()
    manifest = json.loads((root / "figures" / "MANIFEST.json").read_text())
    sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert manifest["git_sha"] == sha and set(manifest["figures"]) == {"00_line.png", "01_line.png"}
    readme = (root / "README.md").read_text()
    assert "old" not in readme and readme.endswith(f"{END}\ntail\n") and f"commit `{sha[:7]}`" in readme
    assert "[ipynb](docs/notebooks/00_a.ipynb) · [html](docs/notebooks/00_a.html)" in readme
    assert "| 00_a | done |" in (root / "docs" / "results.md").read_text()

    # A notebook whose source changed since it ran: stale.
    src = site["notebooks"] / "01_b.ipynb"
    before = src.read_text()
    write_notebook(src, "01", extra="print('new')")
    with pytest.raises(PublishError, match=r"is stale: 01_b: 01_b.ipynb changed since it ran"):
        _publish(site, run)
    src.write_text(before)

    # Not finished: a run of stage 00 alone.
    with pytest.raises(PublishError, match=r"is incomplete: b: not done yet"):
        _publish(site, _run(site, "part", stages="00"))

    # Redone upstream, dependents not: stale.
    _run(site, "run", stages="00", force=True)
    with pytest.raises(PublishError, match=r"is stale: b: upstream a was redone"):
        _publish(site, run)

    # Made from uncommitted code: dirty, naming the steps and the commit.
    (site["tree"] / "code.py").write_text("x = 2\n")
    dirty = _run(site, "dirty")
    with pytest.raises(PublishError, match=rf"dirty git tree \(a, b: {sha}-dirty\)"):
        _publish(site, dirty)


def test_publish_command_refuses_a_non_run_in_one_line(tmp_path, capsys):
    from phi_utils.cli import main

    assert main(["publish", "--run-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "is not a run directory (no run.json)" in err


def test_progress_redraws_and_quarter_lines_collapse_to_the_last():
    text = "start\rload  10%|#  | 1/10\rload 100%|###| 10/10\nstep:  25%|#  | 1/4\nstep: 100%|###| 4/4\nok"
    assert collapse_progress(text) == "load 100%|###| 10/10\nstep: 100%|###| 4/4\nok"


def test_headline_sentence_is_generated_from_the_scores():
    est = lambda m, lo, hi: {"mean": m, "ci95": [lo, hi], "n_problems": 164, "n_seeds": 3}  # noqa: E731
    arms = {x: {"label": f"{x}: arm", "metrics": {"greedy_pass@1": {"humaneval": est(0.0, 0.0, 0.023)}}}
            for x in ("A", "B'", "B", "C")}
    diffs = [{"name": "B' - A", "what": "B' - A: the filter's effect", "benchmark": "all", "metric": "loss",
              "mean": -0.066, "ci95": [-0.08, -0.05], "resolved": True},
             {"name": "B - B'", "what": "B - B': the synthetic textbooks' effect", "benchmark": "all",
              "metric": "loss", "mean": 0.146, "ci95": [0.12, 0.17], "resolved": True},
             {"name": "C - B", "what": "C - B: finetuning on CodeExercises", "benchmark": "all", "metric": "loss",
              "mean": -0.01, "ci95": [-0.03, 0.01], "resolved": False}]
    from phi_utils.evaluation.fig21 import GREEDY, LOSS

    for d in diffs:
        d["metric"] = LOSS
    for a in arms.values():
        a["metrics"] = {GREEDY: a["metrics"]["greedy_pass@1"]}
    s = headline_sentence({"arms": arms, "paired_differences": diffs, "n_problems": {"all": 664}})
    assert "the filter's effect (B' - A, -0.066) lowers it, resolved at 95%" in s
    assert "the synthetic textbooks' effect (B - B', +0.146) raises it, resolved at 95%, against the paper's" in s
    assert "finetuning on CodeExercises (C - B, -0.010) is not resolved from zero" in s
    assert "no model solves any of the 164 HumanEval problems (95% upper bound 2.3%)" in s
    assert s.count(".") >= 1 and "\n" not in s
