"""The scripted stub teacher speaks the API the real `Teacher` client expects: replies cut like a
server cuts them, ratings read from scripted probabilities, errors retried or recorded."""

from __future__ import annotations

import pytest

from phi_utils.config import get_profile
from phi_utils.rundir import RunDir
from stub_teacher import Reply, tokenize


@pytest.fixture()
def rd(tmp_path) -> RunDir:
    return RunDir.open(get_profile("smoke"), tmp_path / "run")


def _msg(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_tokens_join_back_and_split_digits():
    assert tokenize("Grade: 10/10\n") == ["Grade:", " 1", "0", "/", "1", "0", "\n"]
    assert "".join(tokenize(" a  b\n\nc ")) == " a  b\n\nc "


def test_reply_is_cut_at_stop_and_max_tokens_and_cached(stub_teacher, rd):
    stub_teacher.script = lambda req: "def f():\n    return 1\n```\nMore prose here."
    t = stub_teacher.teacher(rd)
    r = t.chat(_msg("code please"), stop=["\n```"], max_tokens=50)
    assert r.text == "def f():\n    return 1" and r.finish_reason == "stop" and r.completion_tokens == 4
    cut = t.chat(_msg("code please"), max_tokens=3)
    assert cut.text == "def f():\n    return" and cut.finish_reason == "length"
    assert t.chat(_msg("code please"), max_tokens=3).cached and len(stub_teacher.requests) == 2
    assert t.stats["requests"] == 2 and t.stats["completion_tokens"] == 7
    assert stub_teacher.requests[0].body["stop"] == ["\n```"] and stub_teacher.requests[0].user == "code please"


@pytest.mark.parametrize("engine, requests", [("llama-server", 1), ("llama-cpp-python", 2)])
def test_rating_reads_the_scripted_probabilities(stub_teacher, rd, monkeypatch, engine, requests):
    monkeypatch.setenv("PHI_TEACHER_ENGINE", engine)
    stub_teacher.script = lambda req: Reply.rating({6: 0.2, 7: 0.3, 8: 0.5}, "Clear names.")
    r = stub_teacher.teacher(rd).rate("sys", "rate it")
    assert r.method == "logprobs" and r.score == pytest.approx(7.3) and r.reason == "Clear names."
    assert r.probs == pytest.approx({"6": 0.2, "7": 0.3, "8": 0.5}) and r.raw == "8 Clear names."
    assert len(stub_teacher.requests) == requests
    first = stub_teacher.requests[0].body
    assert first["logprobs"] is True and first["top_logprobs"] == 10 and first["temperature"] == 0.0


def test_rating_without_logprobs_is_parsed(stub_teacher, rd):
    stub_teacher.script = lambda req: Reply.rating({4: 1.0}, "Thin.", with_logprobs=False)
    r = stub_teacher.teacher(rd).rate("sys", "rate it")
    assert (r.method, r.score, r.reason) == ("parsed", 4.0, "Thin.")


def test_errors_are_retried_or_recorded(stub_teacher, rd):
    stub_teacher.script = lambda req: "yes"
    stub_teacher.queue(Reply.error(429, retry_after=0), Reply.error(500, retry_after=0), Reply.malformed(),
                       Reply(drop=True))
    t = stub_teacher.teacher(rd, max_retries=4)
    t.transport.backoff_base_s = 0.01  # a dropped connection is retried after the backoff
    r = t.chat(_msg("Say yes."))
    assert r.error is None and r.text == "yes" and t.stats["retries"] == 4 and len(stub_teacher.requests) == 5
    stub_teacher.queue(Reply.error(400, "bad request"))
    bad = t.chat(_msg("Say no."))
    assert bad.error.startswith("HTTP 400") and "bad request" in bad.error
    assert t.stats["errors"] == 1 and len(t.cache) == 1  # a failure is not cached


def test_latency_and_concurrency(stub_teacher, rd):
    stub_teacher.script = lambda req: Reply(req.user.upper(), delay_s=0.2)
    t = stub_teacher.teacher(rd, concurrency=4)
    res = t.chat_many([{"messages": _msg(f"say {i}")} for i in range(4)])
    assert [r.text for r in res] == [f"SAY {i}" for i in range(4)] and stub_teacher.max_in_flight >= 2
