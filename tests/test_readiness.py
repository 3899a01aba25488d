"""A notebook opened out of order stops at its set-up cell with one line naming the stage to run first."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from phi_utils.readiness import StageNotReady, check_ready, current_stage, readiness_message


GRAPH = {"corpus": SimpleNamespace(stage="01", deps=()), "annotation": SimpleNamespace(stage="01", deps=("corpus",)),
         "filtering": SimpleNamespace(stage="02", deps=("annotation",)),
         "tokenizer": SimpleNamespace(stage="05", deps=("corpus", "filtering")),
         "train": SimpleNamespace(stage="06", deps=("tokenizer",))}


class _Rd:
    def __init__(self, done: set[str]) -> None:
        self.path, self.done, self.graph = "runs/x", done, GRAPH

    def redo_reasons(self, step: str) -> list[str]:
        return [] if step in self.done else ["not done yet"]


def test_the_earliest_missing_stage_is_named_with_the_command():
    msg = readiness_message("06", _Rd(set()), "tiny")
    assert msg.startswith("stage 06 reads corpus, annotation, filtering, tokenizer, not done (or stale) in runs/x")
    assert msg.endswith("run stage 01 first (`python -m phi_utils run --profile tiny --run-dir runs/x --stages 01-05`)")
    assert "\n" not in msg
    assert readiness_message("06", _Rd({"corpus", "annotation", "filtering"})).endswith("--stages 05`)")
    assert readiness_message("06", _Rd({"train"})) is None  # its own steps are current: it loads them
    assert readiness_message("01", _Rd(set())) is None  # reads only its own stage
    with pytest.raises(StageNotReady) as err:
        check_ready("02", _Rd(set()))
    assert err.value._render_traceback_() == [f"StageNotReady: {err.value}"]


def test_the_stage_comes_from_the_runner_or_jupyter():
    assert current_stage({"PHI_NOTEBOOK": "08_evaluation"}) == "08"
    assert current_stage({"JPY_SESSION_NAME": "/home/u/phi/notebooks/02_classifier_filtering.ipynb"}) == "02"
    assert current_stage({}) is None


def test_a_real_notebook_opened_on_an_empty_run_directory_names_the_stage(tmp_path):
    """Notebook 02 in a real kernel (papermill) on an empty run directory: its set-up cell stops with one line."""
    from phi_utils.pipeline import NOTEBOOKS_DIR, PipelineError, execute_notebook

    out = tmp_path / "02.ipynb"
    with pytest.raises(PipelineError) as err:
        execute_notebook(NOTEBOOKS_DIR / "02_classifier_filtering.ipynb", out,
                         {"profile": "tiny", "run_dir": str(tmp_path / "run"), "seed": 0, "force": False}, NOTEBOOKS_DIR)
    assert "cell #3" in str(err.value) and "StageNotReady: stage 02 reads corpus, annotation" in str(err.value)
    assert "run stage 01 first" in str(err.value)
    errors = [o for c in json.loads(out.read_text())["cells"] for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert len(errors) == 1 and len(errors[0]["traceback"]) == 1  # one line, no traceback
