"""Teacher layer against the real local llama.cpp server (SmolLM2-135M, one server per session).

A fault-injecting HTTP proxy on 127.0.0.1 sits in front of the real server where a test needs to
count requests, observe timing, or inject 429 / 500 / garbage / dropped connections.
"""

from __future__ import annotations

import dataclasses
import http.server
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from phi_utils.config import get_profile
from phi_utils.rundir import RunDir
from phi_utils.teacher import (BUDGET_ERROR, Teacher, TeacherConfigError, TeacherError, TeacherServerError,
                               TeacherUnreachableError, pipeline_server)
from phi_utils.teacher.server import ENV_BASE_URL, ENV_LOCAL_MODEL, LocalServer

REPO = Path(__file__).resolve().parent.parent


class FaultProxy:
    """Forwards to `upstream`; each POST takes the next scripted action first
    ("429", "500", "404", "garbage", "drop"; then "pass" forever). Records arrival times and peak in-flight."""

    def __init__(self, upstream: str, script: list[str] | None = None) -> None:
        self.upstream = upstream.rstrip("/")
        self.script = list(script or [])
        self.posts: list[float] = []
        self.forwarded = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:
                pass

            def _send(self, code: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def _forward(self, method: str, body: bytes | None) -> None:
                req = urllib.request.Request(proxy.upstream + self.path, data=body, method=method,
                                             headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(req, timeout=600) as r:
                    data = r.read()
                    self._send(r.status, data)

            def do_GET(self) -> None:
                self._forward("GET", None)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with proxy.lock:
                    proxy.posts.append(time.monotonic())
                    action = proxy.script.pop(0) if proxy.script else "pass"
                    proxy.in_flight += 1
                    proxy.max_in_flight = max(proxy.max_in_flight, proxy.in_flight)
                try:
                    if action == "429":
                        self._send(429, b'{"error": {"message": "slow down"}}', {"Retry-After": "0"})
                    elif action == "500":
                        self._send(500, b'{"error": {"message": "boom"}}')
                    elif action == "404":
                        self._send(404, b'{"error": {"message": "The model does not exist", "code": "model_not_found"}}')
                    elif action == "garbage":
                        self._send(200, b"<html>this is not json")
                    elif action == "drop":
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                    else:
                        with proxy.lock:
                            proxy.forwarded += 1
                        self._forward("POST", body)
                finally:
                    with proxy.lock:
                        proxy.in_flight -= 1

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _upstream_root(t: Teacher) -> str:
    return t.base_url.removesuffix("/v1")


def _teacher_via(proxy: FaultProxy, rd: RunDir, **cfg_changes: Any) -> Teacher:
    cfg = dataclasses.replace(get_profile("smoke").teacher, local_model="smollm2-135m", **cfg_changes)
    t = Teacher(cfg, proxy.base_url + "/v1", "local", model_id="gguf:test", label="smollm2 via proxy",
                cache_path=Path(rd.path) / "teacher" / "cache" / "responses.sqlite", rd=rd)
    t.transport.backoff_base_s = 0.05
    return t


@pytest.fixture()
def rd(tmp_path: Path) -> RunDir:
    return RunDir.open(get_profile("smoke"), tmp_path / "run")


def _msg(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


# --------------------------------------------------------------------------- basics
def test_chat_then_identical_call_is_served_from_cache(local_teacher: Teacher, rd: RunDir) -> None:
    assert local_teacher.server is not None and local_teacher.server.alive()
    proxy = FaultProxy(_upstream_root(local_teacher))  # counts what reaches the real server
    try:
        t = _teacher_via(proxy, rd)
        msgs = _msg(f"Name a fruit. ({time.time()})")  # unique, so the first call cannot be a cache hit
        r1 = t.chat(msgs, max_tokens=8, temperature=0)
        assert r1.error is None and not r1.cached and r1.completion_tokens > 0 and r1.text
        assert proxy.forwarded == 1
        r2 = t.chat(msgs, max_tokens=8, temperature=0)
        assert r2.cached and r2.text == r1.text
        assert proxy.forwarded == 1, "the identical call reached the server"
        r3 = t.chat(msgs, max_tokens=8, temperature=0.8, sample_index=1)
        assert not r3.cached and proxy.forwarded == 2, "another sample must be a new request"
        t.close()
    finally:
        proxy.close()
    assert "SmolLM2" in local_teacher.label and "sha256" in local_teacher.label


def test_structured_rating_parses(local_teacher: Teacher) -> None:
    r = local_teacher.rate("You are a Python teacher.",
                           "Rate the educational value of this code from 0 to 9:\n```python\ndef add(a, b):\n"
                           "    return a + b\n```\nAnswer with one digit first, then a short reason.")
    assert r.method in ("logprobs", "parsed"), r
    assert r.score is not None and 0.0 <= r.score <= 9.0
    if r.method == "logprobs":
        assert r.probs and abs(sum(r.probs.values()) - 1.0) < 1e-6
    assert r.raw and r.raw.strip()[0].isdigit()  # the grammar keeps even SmolLM2 parseable


def test_json_object_validates_schema(local_teacher: Teacher) -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "year": {"type": "integer"}},
              "required": ["name", "year"]}
    obj = local_teacher.json_object(_msg("Give the name of a programming language and its first release year "
                                         "as JSON with keys name and year."), schema=schema, max_tokens=60,
                                    temperature=0)
    assert isinstance(obj, dict) and isinstance(obj["name"], str) and isinstance(obj["year"], int)


# --------------------------------------------------------------------------- concurrency, rate limit, budget
def test_chat_many_keeps_order_and_runs_concurrently(local_teacher: Teacher, rd: RunDir) -> None:
    proxy = FaultProxy(_upstream_root(local_teacher))
    try:
        t = _teacher_via(proxy, rd, concurrency=4)
        reqs = [{"messages": _msg(f"Repeat the number {i}."), "max_tokens": 4, "temperature": 0} for i in range(5)]
        res = t.chat_many(reqs, desc="order")
        assert proxy.forwarded == 5 and proxy.max_in_flight >= 2
        again = [t.chat(**kw) for kw in reqs]
        assert all(a.cached for a in again) and [a.text for a in again] == [r.text for r in res]
        assert proxy.forwarded == 5
        t.close()
    finally:
        proxy.close()


def test_rate_limit_spaces_requests(local_teacher: Teacher, rd: RunDir) -> None:
    proxy = FaultProxy(_upstream_root(local_teacher))
    try:
        t = _teacher_via(proxy, rd, concurrency=4, requests_per_minute=60)  # one request per second
        t.chat_many([{"messages": _msg(f"Say {i}."), "max_tokens": 1, "temperature": 0} for i in range(3)])
        gaps = [b - a for a, b in zip(proxy.posts, proxy.posts[1:])]
        assert len(proxy.posts) == 3 and min(gaps) >= 0.9, gaps
        t.close()
    finally:
        proxy.close()


def test_rating_model_has_its_own_rate_limiter(local_teacher: Teacher, rd: RunDir) -> None:
    """Generation at 30 requests/min does not hold back the rating model's requests (GPT-4 next to GPT-3.5)."""
    proxy = FaultProxy(_upstream_root(local_teacher))
    try:
        t = _teacher_via(proxy, rd, concurrency=4, requests_per_minute=30, rating_model="grader",
                         rating_requests_per_minute=600)
        gen = [{"messages": _msg(f"Say {i}."), "max_tokens": 1, "temperature": 0} for i in range(2)]
        rate = [{**g, "messages": _msg(f"Grade {i}."), "model": "grader"} for i, g in enumerate(gen)]
        t.chat_many([gen[0], *rate])  # the generation limiter's first slot, then two ungated ratings
        assert len(proxy.posts) == 3 and proxy.posts[2] - proxy.posts[0] < 1.0  # (at 30/min they would be 2 s apart)
        t.chat_many([gen[1]])         # the second generation request waits for its 2 s slot
        assert proxy.posts[-1] - proxy.posts[0] >= 1.9
        t.close()
    finally:
        proxy.close()


def test_budget_stops_cleanly_and_keeps_what_was_paid(local_teacher: Teacher, rd: RunDir) -> None:
    proxy = FaultProxy(_upstream_root(local_teacher))
    try:
        t = _teacher_via(proxy, rd, concurrency=1, price_per_1k_completion=1000.0, budget_usd=0.5)
        reqs = [{"messages": _msg(f"Word number {i}?"), "max_tokens": 2, "temperature": 0} for i in range(4)]
        est = t.estimate(reqs)
        assert est["to_send"] == 4 and est["cost_usd_max"] == pytest.approx(8.0)
        res = t.chat_many(reqs)
        assert res[0].error is None and t.ledger.budget_exhausted
        assert [r.error for r in res[1:]] == [BUDGET_ERROR] * 3 and proxy.forwarded == 1
        assert len(t.cache) == 1 and t.chat(**reqs[0]).cached
        t.close()
    finally:
        proxy.close()


# --------------------------------------------------------------------------- faults
def test_retries_on_429_500_garbage_and_dropped_connection(local_teacher: Teacher, rd: RunDir) -> None:
    proxy = FaultProxy(_upstream_root(local_teacher), ["429", "500", "garbage", "drop"])
    try:
        t = _teacher_via(proxy, rd, max_retries=4)
        r = t.chat(_msg("Say yes."), max_tokens=2, temperature=0)
        assert r.error is None and r.text and not r.cached
        assert t.stats["retries"] == 4 and len(proxy.posts) == 5 and proxy.forwarded == 1
        t.close()
    finally:
        proxy.close()


def test_a_batch_that_mostly_fails_stops_its_stage(local_teacher: Teacher, rd: RunDir) -> None:
    proxy = FaultProxy(_upstream_root(local_teacher), ["500"] * 7)
    try:
        t = _teacher_via(proxy, rd, max_retries=0, concurrency=1)
        reqs = [{"messages": _msg(f"Say {i}."), "max_tokens": 2, "temperature": 0} for i in range(10)]
        with pytest.raises(TeacherError, match=r"7/10 requests .* failed.*the 3 that succeeded are cached"):
            t.chat_many(reqs)
        assert len(t.cache) == 3
        lenient = _teacher_via(proxy, rd, max_retries=0, max_error_rate=1.0)
        proxy.script = ["500"] * 7
        res = lenient.chat_many([{**r, "messages": _msg(f"Now say {i}.")} for i, r in enumerate(reqs)])
        assert sum(r.error is not None for r in res) == 7  # recorded per request, not raised
        t.close(), lenient.close()
    finally:
        proxy.close()


def test_unparseable_response_is_recorded_not_raised(local_teacher: Teacher, rd: RunDir) -> None:
    proxy = FaultProxy(_upstream_root(local_teacher), ["garbage"] * 6)
    try:
        t = _teacher_via(proxy, rd, max_retries=2)
        r = t.chat(_msg("Say yes."), max_tokens=2)
        assert r.error and "unparseable" in r.error and "gave up after 2 retries" in r.error
        assert r.raw["raw_text"] == "<html>this is not json" and proxy.forwarded == 0
        rt = t.rate("sys", "rate 0-9")
        assert rt.method == "failed" and rt.score is None and "not json" in rt.raw
        assert len(t.cache) == 0  # failures are not cached: a re-run asks again
        t.close()
    finally:
        proxy.close()


def test_unknown_model_fails_once_naming_the_setting(local_teacher: Teacher, rd: RunDir,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    """A model the endpoint does not list is named at construction (an error on api.openai.com, a
    warning elsewhere: Ollama/TGI accept unlisted aliases); a 404 on a request (model missing or
    withdrawn) raises instead of filling a stage with per-request errors."""
    proxy = FaultProxy(_upstream_root(local_teacher), ["404"])
    try:
        api = dataclasses.replace(get_profile("paper").teacher, budget_usd=0.0)
        with caplog.at_level("WARNING", logger="phi_utils.teacher"):
            t = Teacher(api, proxy.base_url + "/v1", "k", "m", "m", Path(rd.path) / "c.sqlite", rd=rd)
        assert "does not list teacher.model='gpt-3.5-turbo', teacher.rating_model='gpt-4-0613'" in caplog.text
        with pytest.raises(TeacherConfigError, match=r"refused model .*HTTP 404.*teacher.model"):
            t.chat(_msg("Say yes."), max_tokens=2)
        assert t.chat(_msg("Say yes."), max_tokens=2, temperature=0).error is None  # the next one goes through
        t.close()
    finally:
        proxy.close()


def test_rating_model_is_priced_as_itself(local_teacher: Teacher, rd: RunDir) -> None:
    """GPT-4 ratings next to GPT-3.5 generation: each request is priced at its own model's rate."""
    api = dataclasses.replace(get_profile("paper").teacher)
    t = Teacher(api, local_teacher.base_url, "k", "m", "m", Path(rd.path) / "c.sqlite", rd=rd, check=False)
    try:
        assert t.ledger.cost(1000, 1000, model="gpt-3.5-turbo") == pytest.approx(0.0005 + 0.0015)
        assert t.ledger.cost(1000, 1000, model="gpt-3.5-turbo-0125") == pytest.approx(0.002)  # dated = its config
        assert t.ledger.cost(1000, 1000, model="gpt-4-0613") == pytest.approx(0.09)
        assert t.ledger.cost(1000, 1000, batch=True, model="gpt-4-0613") == pytest.approx(0.045)
        assert t.rating_label == f"gpt-4-0613 @ {local_teacher.base_url}" and t.label == "m"
    finally:
        t.close()


def test_unreachable_endpoint_names_the_url(rd: RunDir) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = dataclasses.replace(get_profile("smoke").teacher)
    url = f"http://127.0.0.1:{port}/v1"
    with pytest.raises(TeacherUnreachableError, match=url.replace(".", r"\.")):
        Teacher(cfg, url, "x", "m", "m", Path(rd.path) / "c.sqlite", rd=rd)


def test_missing_api_key_names_the_variable(rd: RunDir, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PHI_TEST_TEACHER_KEY", raising=False)
    cfg = dataclasses.replace(get_profile("paper").teacher, api_key_env="PHI_TEST_TEACHER_KEY")
    with pytest.raises(TeacherConfigError, match="PHI_TEST_TEACHER_KEY"):
        Teacher.from_config(cfg, rd)


def test_server_that_fails_to_start_shows_its_log(tmp_path: Path) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF but not really" * 100)
    s = LocalServer(bad, tmp_path / "server.log", startup_timeout_s=120)
    with pytest.raises(TeacherServerError) as ei:
        s.start()
    assert str(tmp_path / "server.log") in str(ei.value) and "exited with code" in str(ei.value)
    assert "llama_cpp.server" in str(ei.value) or "gguf" in str(ei.value).lower()
    assert not s.alive()


# --------------------------------------------------------------------------- crash + resume, pipeline server
_CHILD = r"""
import sys
from phi_utils.config import get_profile
from phi_utils.rundir import RunDir
from phi_utils.teacher import Teacher
cfg = get_profile("smoke"); cfg.teacher.local_model = "smollm2-135m"
t = Teacher.from_config(cfg.teacher, RunDir.open(cfg, sys.argv[1]))
assert t.server is None, "the child must attach to the exported server"
t.chat_many([{"messages": [{"role": "user", "content": f"Count to {i}."}], "max_tokens": 6, "temperature": 0}
             for i in range(int(sys.argv[2]))])
"""


def test_interrupted_stage_rerun_keeps_completed_responses(local_teacher: Teacher, tmp_path: Path) -> None:
    n = 8
    run = tmp_path / "crash"
    env = {**os.environ, ENV_BASE_URL: local_teacher.base_url, ENV_LOCAL_MODEL: "smollm2-135m"}
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(run), str(n)], env=env, cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    db_path = run / "teacher" / "cache" / "responses.sqlite"
    done = 0
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and child.poll() is None:
        if db_path.exists():
            try:
                with sqlite3.connect(str(db_path), timeout=5) as db:
                    done = db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
            except sqlite3.OperationalError:
                done = 0
            if done >= 2:
                break
        time.sleep(0.1)
    assert child.poll() is None, f"child finished or died early: {child.stderr.read().decode()[-2000:]}"
    child.send_signal(signal.SIGKILL)  # a crash: no cleanup at all
    child.wait()
    with sqlite3.connect(str(db_path)) as db:
        kept = db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    assert 2 <= kept < n

    proxy = FaultProxy(_upstream_root(local_teacher))
    try:
        rd = RunDir.open(get_profile("smoke"), run)
        t = Teacher(dataclasses.replace(get_profile("smoke").teacher, local_model="smollm2-135m"),
                    proxy.base_url + "/v1", "local", model_id=local_teacher.model_id, label=local_teacher.label,
                    cache_path=db_path, rd=rd)
        res = t.chat_many([{"messages": _msg(f"Count to {i}."), "max_tokens": 6, "temperature": 0} for i in range(n)])
        assert all(r.error is None for r in res)
        assert sum(r.cached for r in res) == kept and proxy.forwarded == n - kept
        t.close()
    finally:
        proxy.close()


def test_pipeline_server_exports_one_server_for_kernels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_BASE_URL, raising=False)
    cfg = get_profile("smoke")
    cfg.teacher.local_model = "smollm2-135m"
    rd = RunDir.open(cfg, tmp_path / "pipe")
    with pipeline_server(cfg.teacher, rd) as server:
        assert server is not None and os.environ[ENV_BASE_URL] == server.base_url
        t = Teacher.from_config(cfg.teacher, rd)
        assert t.server is None and t.base_url == server.base_url and "SmolLM2" in t.label
        t.close()
        assert server.alive(), "closing an attached teacher must not stop the shared server"
    assert not server.alive() and ENV_BASE_URL not in os.environ
    assert (rd.path / "teacher" / "server.log").exists()
    paper = get_profile("paper")
    with pipeline_server(paper.teacher, rd) as none:
        assert none is None and ENV_BASE_URL not in os.environ


def test_teacher_card_records_model_usage_and_capability(local_teacher: Teacher, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from phi_utils.teacher import card as card_mod
    from phi_utils.teacher import write_teacher_card
    from phi_utils.teacher.server import ENV_ENGINE, ENV_LABEL, ENV_SHA256

    monkeypatch.setattr(card_mod, "QUICK", {"humaneval": 1, "snippets": 2, "max_tokens": 128})  # keep CI short

    monkeypatch.setenv(ENV_BASE_URL, local_teacher.base_url)  # attach, as a notebook kernel does
    monkeypatch.setenv(ENV_LOCAL_MODEL, "smollm2-135m")
    monkeypatch.setenv(ENV_LABEL, local_teacher.label)
    monkeypatch.setenv(ENV_SHA256, local_teacher.model_id.removeprefix("gguf:"))
    monkeypatch.setenv(ENV_ENGINE, local_teacher.engine)
    cfg = get_profile("smoke")
    cfg.teacher.local_model = "smollm2-135m"
    rd = RunDir.open(cfg, tmp_path / "card")
    card = write_teacher_card(cfg, rd, quick=True)
    on_disk = json.loads((rd.path / "teacher" / "card.json").read_text())
    assert on_disk["label"] == card["label"] == local_teacher.label
    assert on_disk["file_sha256"] == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    he, rating = on_disk["capability"]["humaneval"], on_disk["capability"]["rating"]
    assert he["n"] == 1 and he["passed"] in (0, 1) and he["runner"] in ("sandbox", "subprocess")
    assert rating["n"] == 2 and rating["auc"] is not None and sum(rating["methods"].values()) == 2
    # a rating is one request on llama-server; two on llama-cpp-python (score token with logprobs,
    # then the reason); plus 1 HumanEval
    assert on_disk["engine"] == local_teacher.engine
    per_rating = 1 if local_teacher.engine == "llama-server" else 2
    assert on_disk["usage_run_total"]["requests"] == 2 * per_rating + 1
    assert on_disk["usage_run_total"]["completion_tokens"] > 0
    assert {s["label"] for s in on_disk["snippets"]} == {"good", "bad"}
