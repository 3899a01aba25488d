"""The runner, with the real papermill and a real kernel, on small throwaway notebooks."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from phi_utils.config import ConfigError
from phi_utils.pipeline import PipelineError, Stage, run_pipeline, select_stages
from phi_utils.rundir import RunDirError, StepGraph, StepSpec


def write_notebook(path: Path, body: str, with_parameters: bool = True) -> None:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "tiny"\nrun_dir = None\nseed = 0\nforce = False')
    if with_parameters:
        params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# test"), params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


RECORD = """
import json, pathlib
log = pathlib.Path(run_dir) / "calls.jsonl"
with log.open("a") as f:
    f.write(json.dumps({"nb": NAME, "profile": profile, "run_dir": run_dir, "seed": seed, "force": force}) + "\\n")
"""


def no_steps(cfg: object) -> StepGraph:
    """The graph of the throwaway notebooks that do no steps."""
    return StepGraph({})


@pytest.fixture
def three_stages(tmp_path: Path) -> tuple[Path, list[Stage]]:
    nbdir = tmp_path / "notebooks"
    nbdir.mkdir()
    stages = [Stage("00", "00_a", "first"), Stage("01", "01_b", "second"), Stage("02", "02_c", "third")]
    for st in stages:
        write_notebook(nbdir / f"{st.notebook}.ipynb", f"NAME = {st.notebook!r}\n" + RECORD)
    return nbdir, stages


def calls(run_dir: Path) -> list[dict]:
    p = run_dir / "calls.jsonl"
    return [json.loads(line) for line in p.read_text().splitlines()] if p.exists() else []


def test_parameters_injected_skip_and_force(three_stages, tmp_path):
    nbdir, stages = three_stages
    rd = tmp_path / "run"
    results = run_pipeline("smoke", rd, seed=7, notebooks_dir=nbdir, stage_table=stages, echo=lambda s: None, graph=no_steps)
    assert [r.status for r in results] == ["done", "done", "done"]
    got = calls(rd)
    assert [c["nb"] for c in got] == ["00_a", "01_b", "02_c"]
    assert all(c["profile"] == "smoke" and c["run_dir"] == str(rd) and c["seed"] == 7 and c["force"] is False
               for c in got)
    assert (rd / "notebooks" / "01_b.ipynb").exists()  # executed copy kept in the run directory

    # Re-run with the same configuration: every stage is complete, nothing executes.
    results = run_pipeline("smoke", rd, seed=7, notebooks_dir=nbdir, stage_table=stages, echo=lambda s: None, graph=no_steps)
    assert [r.status for r in results] == ["skipped"] * 3
    assert len(calls(rd)) == 3

    # --force with a range re-runs just that range, and says so to the notebook.
    results = run_pipeline("smoke", rd, stages="01-02", force=True, seed=7, notebooks_dir=nbdir, stage_table=stages,
                           echo=lambda s: None, graph=no_steps)
    assert [r.stage.notebook for r in results] == ["01_b", "02_c"]
    assert [c["nb"] for c in calls(rd)[3:]] == ["01_b", "02_c"]
    assert all(c["force"] is True for c in calls(rd)[3:])


def test_failure_names_notebook_and_cell_and_stops(three_stages, tmp_path):
    nbdir, stages = three_stages
    write_notebook(nbdir / "01_b.ipynb", "x = 1\nraise ValueError('bad thing happened')")
    rd = tmp_path / "run"
    lines: list[str] = []
    with pytest.raises(PipelineError) as err:
        run_pipeline("smoke", rd, notebooks_dir=nbdir, stage_table=stages, echo=lines.append, graph=no_steps)
    msg = str(err.value)
    assert "01_b.ipynb" in msg and "cell #3" in msg and "`x = 1`" in msg and "ValueError: bad thing happened" in msg
    assert [c["nb"] for c in calls(rd)] == ["00_a"]  # stage 02 never ran
    summary = "\n".join(lines)
    assert "failed" in summary and "not run" in summary
    # The failed stage is not marked complete: the next run redoes it and skips 00.
    write_notebook(nbdir / "01_b.ipynb", "NAME = '01_b'\n" + RECORD)
    results = run_pipeline("smoke", rd, notebooks_dir=nbdir, stage_table=stages, echo=lambda s: None, graph=no_steps)
    assert [r.status for r in results] == ["skipped", "done", "done"]


def test_bad_input_gets_one_clear_error(three_stages, tmp_path):
    nbdir, stages = three_stages
    with pytest.raises(ConfigError, match="unknown profile 'huge'"):
        run_pipeline("huge", tmp_path / "r", notebooks_dir=nbdir, stage_table=stages, graph=no_steps)
    with pytest.raises(PipelineError, match="unknown stage '07'"):
        run_pipeline("smoke", tmp_path / "r", stages="07", notebooks_dir=nbdir, stage_table=stages, graph=no_steps)
    with pytest.raises(PipelineError, match="empty stage range"):
        select_stages("02-00", stages)
    run_pipeline("smoke", tmp_path / "r", stages="00", notebooks_dir=nbdir, stage_table=stages, echo=lambda s: None, graph=no_steps)
    with pytest.raises(RunDirError, match="written by profile 'smoke', not 'tiny'"):
        run_pipeline("tiny", tmp_path / "r", stages="00", notebooks_dir=nbdir, stage_table=stages, graph=no_steps)
    write_notebook(nbdir / "02_c.ipynb", "print(1)", with_parameters=False)
    with pytest.raises(PipelineError, match="02_c.ipynb has no cell tagged 'parameters'"):
        run_pipeline("smoke", tmp_path / "r2", notebooks_dir=nbdir, stage_table=stages, graph=no_steps)
    assert not (tmp_path / "r2").exists()  # refused before any work


def test_stage_selection():
    assert [s.id for s in select_stages("03-05")] == ["03", "04", "05"]
    assert [s.id for s in select_stages("8,1")] == ["01", "08"]
    assert [s.id for s in select_stages("06_pretraining")] == ["06"]
    assert len(select_stages(None)) == 12


def test_paper_dry_run_prints_the_plan_and_runs_nothing(tmp_path, capsys, monkeypatch):
    from phi_utils.cli import main

    from phi_utils.config import REPO_ROOT

    existed = (REPO_ROOT / "runs" / "paper").exists()
    assert main(["run", "--profile", "paper", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "100,000 samples rated" in out and "1.42B params" in out and "A100-hours" in out and "$" in out
    assert "36,000 steps x 1024 seqs" in out
    assert (REPO_ROOT / "runs" / "paper").exists() == existed  # no run directory made
    assert main(["run", "--profile", "paper", "--dry-run", "--run-dir", str(tmp_path / "r")]) == 0
    assert "0/256 done" in capsys.readouterr().out and not (tmp_path / "r").exists()  # the corpus task plan


def test_results_block_is_regenerated_from_the_run(three_stages, tmp_path):
    from phi_utils.report import END, START, update_readme
    from phi_utils.rundir import RunDir

    nbdir, stages = three_stages
    rd_path = tmp_path / "run"
    run_pipeline("smoke", rd_path, notebooks_dir=nbdir, stage_table=stages, echo=lambda s: None, graph=no_steps)
    (rd_path / "eval").mkdir()
    (rd_path / "eval" / "table1.csv").write_text("source,model,humaneval\npaper-reported,phi-1,50.6\nthis run,C,0.0\n")
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n{START}\nold\n{END}\ntail\n")
    update_readme(RunDir(rd_path, "smoke"), readme)
    text = readme.read_text()
    assert "old" not in text and text.endswith(f"{END}\ntail\n")
    assert "| paper-reported | phi-1 | 50.6 |" in text and "| 01_b | done |" in text
    assert (rd_path / "RESULTS.md").exists()


def test_step_manifest_is_written_last_and_only_by_the_writer(tmp_path):
    from phi_utils.config import get_profile
    from phi_utils.steps import open_run

    rd = open_run(get_profile("smoke"), tmp_path / "run")
    with pytest.raises(RuntimeError):
        with rd.step("corpus") as rec:
            (rec.path / "part.jsonl").write_text("{}\n")
            raise RuntimeError("killed mid-step")
    assert not rd.is_complete("corpus")  # a failed step is never marked complete
    with rd.step("corpus", writer=False) as rec:  # a non-zero rank does the work but declares nothing
        assert rec is not None
    assert not rd.is_complete("corpus")
    with rd.step("corpus") as rec:
        rec.counts = {"n": 1}
    assert rd.manifest("corpus")["counts"] == {"n": 1}
    with rd.step("corpus", writer=False, force=True):  # nor does it invalidate rank 0's outputs
        pass
    assert rd.is_complete("corpus")


# ------------------------------------------------------------------ fingerprints through the runner
GRAPH = {  # a small step graph: stage 02 owns two steps, d depends on b across stages
    "a": ["00", ["pretrain.max_steps", "seed"], []],
    "b": ["01", ["finetune.max_steps"], ["a"]],
    "c": ["02", ["eval.limit"], []],
    "d": ["02", ["eval.n_samples"], ["b"]],
}


def small_graph(cfg: object) -> StepGraph:
    return StepGraph({k: StepSpec(v[0], tuple(v[1]), tuple(v[2])) for k, v in GRAPH.items()})


STEP_NB = """
import json, pathlib
from phi_utils.rundir import StepGraph, StepSpec
from phi_utils.steps import open_stage
graph = StepGraph({k: StepSpec(v[0], tuple(v[1]), tuple(v[2])) for k, v in GRAPH.items()})
cfg, rd = open_stage(profile, run_dir, seed, graph=lambda cfg: graph)
for step in STEPS:
    with rd.step(step, force) as rec:
        if rec is not None:
            with (pathlib.Path(run_dir) / "steps.jsonl").open("a") as f:
                f.write(json.dumps({"step": step, "max_steps": cfg.pretrain.max_steps, "seed": cfg.seed}) + "\\n")
"""


@pytest.fixture
def step_stages(tmp_path: Path) -> tuple[Path, list[Stage]]:
    nbdir = tmp_path / "notebooks"
    nbdir.mkdir()
    stages = [Stage("00", "00_a", "first"), Stage("01", "01_b", "second"), Stage("02", "02_c", "third")]
    for st in stages:
        steps = [k for k, v in GRAPH.items() if v[0] == st.id]
        write_notebook(nbdir / f"{st.notebook}.ipynb", f"GRAPH = {GRAPH!r}\nSTEPS = {steps!r}\n" + STEP_NB)
    return nbdir, stages


def test_fingerprints_redo_exactly_the_affected_steps_and_say_why(step_stages, tmp_path):
    """A changed field, a changed seed and an upstream --force, through papermill-executed notebooks
    that read their configuration from run.json."""
    from phi_utils.config import get_profile, resolve_config
    from phi_utils.pipeline import dry_run_steps

    nbdir, stages = step_stages
    rd = tmp_path / "run"
    done: list[dict] = []

    def run(cfg, **kw) -> tuple[list[str], str]:
        lines: list[str] = []
        run_pipeline(cfg, rd, notebooks_dir=nbdir, stage_table=stages, echo=lines.append, graph=small_graph, **kw)
        p = rd / "steps.jsonl"
        rows = [json.loads(x) for x in p.read_text().splitlines()] if p.exists() else []
        new = rows[len(done):]
        done.extend(new)
        return [r["step"] for r in new], "\n".join(lines)

    default = get_profile("smoke").pretrain.max_steps
    assert run(get_profile("smoke"))[0] == ["a", "b", "c", "d"]
    steps, out = run(get_profile("smoke"))
    assert steps == [] and out.count("complete and current, skipped") == 3

    # A changed field: its step and everything downstream, nothing else; the value reached the kernel.
    cfg = resolve_config("smoke", sets=[f"pretrain.max_steps={default + 5}"])
    assert f"00_a: a: pretrain.max_steps {default} -> {default + 5}" in dry_run_steps(cfg, rd, stage_table=stages, graph=small_graph)
    steps, out = run(cfg)
    assert steps == ["a", "b", "d"]
    assert f"00_a: a: pretrain.max_steps {default} -> {default + 5}" in out
    assert "01_b: b: upstream a is redone" in out and "02_c: d: upstream b is redone" in out
    assert "02_c: kept c" in out
    assert done[-3]["max_steps"] == default + 5

    # A changed seed: the steps that read it (a) and their dependents.
    cfg = resolve_config("smoke", sets=[f"pretrain.max_steps={default + 5}"], seed=3)
    steps, out = run(cfg)
    assert steps == ["a", "b", "d"] and "00_a: a: seed 0 -> 3" in out and done[-3]["seed"] == 3

    # --force on an upstream stage: it is redone; its dependents are stale and the next run redoes them.
    steps, out = run(cfg, stages="00", force=True)
    assert steps == ["a"] and "00_a: a: --force" in out
    assert "not selected, stale afterwards: b" in out and "not selected, stale afterwards: d" in out
    steps, out = run(cfg)
    assert steps == ["b", "d"] and "01_b: b: upstream a was redone" in out and "00_a: kept" in out

    # A selection that would read a stale upstream step is refused before any work.
    cfg = resolve_config("smoke", sets=[f"pretrain.max_steps={default + 6}"], seed=3)
    with pytest.raises(PipelineError, match="b \\(stage 01\\) reads a, which is stale .*add stage 00"):
        run(cfg, stages="01")
