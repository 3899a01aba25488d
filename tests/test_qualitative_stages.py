"""Stage functions of notebooks 09/10 on a real (tiny, random) checkpoint and a scripted teacher:
outputs written, resume skips, and one clear error when the checkpoints are missing."""

from __future__ import annotations

import itertools
import json

import pytest

from phi_utils.config import get_profile
from phi_utils.rundir import RunDirError
from phi_utils.steps import open_run
from phi_utils.qualitative.stages import available_models, compared_models, run_qualitative, run_unconventional
from stub_teacher import Reply


@pytest.fixture(scope="module")
def smoke_run_with_checkpoints(tmp_path_factory):
    """A smoke run directory holding the three Figure 2.1 checkpoints (random weights, real format)."""
    import torch

    from phi_utils.model import PhiForCausalLM, get_model_config, save_checkpoint
    from phi_utils.model.tokenizer import stdlib_texts, train_tokenizer

    cfg = get_profile("smoke")
    rd = open_run(cfg, tmp_path_factory.mktemp("qual_run"))
    tok = train_tokenizer(itertools.islice(stdlib_texts(), 60), vocab_size=2048, show_progress=False)
    torch.manual_seed(0)
    for step, _ in compared_models(cfg):
        save_checkpoint(PhiForCausalLM(get_model_config("smoke", vocab_size=len(tok))), tok, rd.path / step / "final")
        rd.mark_complete(step)  # a finished training step, as far as the stages can tell
    return cfg, rd


def test_missing_checkpoints_give_one_clear_error(tmp_path):
    cfg = get_profile("smoke")
    rd = open_run(cfg, tmp_path / "empty")
    assert available_models(cfg, rd) == []
    with pytest.raises(RunDirError, match="06_pretraining.*07_finetuning"):
        run_qualitative(cfg, rd)
    assert not rd.is_complete("qualitative")


def test_run_qualitative_writes_table_and_resumes(smoke_run_with_checkpoints):
    cfg, rd = smoke_run_with_checkpoints
    cfg.qualitative.prompts = ["alice_bob_charles", "tkinter_pew"]
    res = run_qualitative(cfg, rd)
    assert len(res.rows) == 2 * len(compared_models(cfg)) and len(res.models) == 3
    allowed = {"runs", "crashes", "calls non-existent API", "no code"}
    assert {r["verdict"] for r in res.rows} <= allowed
    out = rd.path / "qualitative"
    for name in ("completions.jsonl", "summary.csv", "table.html", "decoding.json", "_COMPLETE.json"):
        assert (out / name).exists(), name
    assert "tkinter_pew" in res.html and res.decoding["temperature"] == 0.0
    again = run_qualitative(cfg, rd)  # complete: loaded, not regenerated
    assert [r["completion"] for r in again.rows] == [r["completion"] for r in res.rows]


def _grader(req):
    """Grades a reference solution 9 of 9 and anything else 1 (read from the grade digit's probabilities)."""
    from phi_utils.qualitative.problems import load_problems

    if any(p.prompt + p.canonical_solution.rstrip() in req.user for p in load_problems()):
        return Reply.rating({9: 1.0}, "Correct.")
    return Reply.rating({1: 1.0}, "Wrong.")


def test_run_unconventional_teacher_parts_run_before_the_model_check(tmp_path, stub_teacher):
    stub_teacher.script = _grader
    cfg = get_profile("smoke")
    cfg.qualitative.n_reliability = 1  # one reference + one broken variant: two grades
    rd = open_run(cfg, tmp_path / "no_models")
    with pytest.raises(RunDirError, match="06_pretraining"):
        run_unconventional(cfg, rd, teacher=stub_teacher.teacher(rd))
    out = rd.path / "unconventional"
    check = json.loads((out / "problem_check.json").read_text())
    assert check["references_passing"] == check["problems"] >= 30
    assert check["broken_failing"] == check["broken_variants"]
    rel = json.loads((out / "reliability.json").read_text())
    assert rel["graded"] and rel["n"] == 2 and rel["teacher"] == stub_teacher.label
    assert rel["grade_method"] == "logprobs"
    assert (rel["auc"], rel["mean_grade_passing"], rel["mean_grade_failing"]) == (1.0, 10.0, round(10 / 9, 3))
    rows = [json.loads(line) for line in (out / "reliability.jsonl").read_text().splitlines()]
    assert [r["passes_tests"] for r in rows] == [True, False] and [r["grade"] for r in rows] == [10.0, round(10 / 9, 3)]
    assert [r["evaluation"] for r in rows] == ["9 Correct.", "1 Wrong."] and len(stub_teacher.requests) == 2
    assert not rd.is_complete("unconventional")


def test_run_unconventional_end_to_end_table2(smoke_run_with_checkpoints, stub_teacher):
    stub_teacher.script = _grader
    cfg, rd = smoke_run_with_checkpoints
    q = cfg.qualitative
    q.n_problems, q.n_graded, q.n_reliability, q.problem_max_new_tokens = 2, 1, 1, 24
    res = run_unconventional(cfg, rd, force=True)  # its own teacher: attached to the stub
    assert len(res.solutions) == 2 * len(compared_models(cfg))
    graded = [s for s in res.solutions if s["evaluation"] is not None]
    assert len(graded) == len(compared_models(cfg))  # n_graded=1 problem per model
    assert all(s["grade"] == round(10 / 9, 3) and s["evaluation"] == "1 Wrong." for s in graded)  # random weights
    assert res.teacher == stub_teacher.label
    paper = [r for r in res.table2 if r["source"].startswith("paper-reported")]
    mine = [r for r in res.table2 if r["source"].startswith("this run")]
    assert [r["model"] for r in paper][-1] == "phi-1" and paper[-1]["llm_grade_pct"] == 52
    assert len(mine) == 3 and all(r["tests_pass1_pct"] is not None for r in mine)
    assert all(r["llm_grade_pct"] == pytest.approx(100 * round(10 / 9, 3) / 10) and r["n_graded"] == 1 for r in mine)
    assert stub_teacher.label in mine[0]["source"]
    assert rd.is_complete("unconventional") and (rd.path / "unconventional" / "table2.csv").exists()
