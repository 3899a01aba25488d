"""The teacher engine: llama-server vs llama-cpp-python's server, against the real programs.

Concurrency determinism, the fallback when llama-server is not built, and the restart of a server
killed mid-stage (a real SIGKILL), all with SmolLM2-135M; the 1.5B only in `slow` tests.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from phi_utils.config import get_profile
from phi_utils.rundir import RunDir
from phi_utils.teacher import Teacher, TeacherServerError
from phi_utils.teacher import engine as engine_mod
from phi_utils.teacher.engine import LlamaServer, llama_server_binary, make_server
from phi_utils.teacher.models import fetch_model
from phi_utils.teacher.server import LocalServer

REPO = Path(__file__).resolve().parent.parent
needs_llama_server = pytest.mark.skipif(llama_server_binary() is None,
                                        reason="llama-server not built (scripts/build_teacher_engine.sh)")


def _msg(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def _smoke_teacher_cfg(**changes: object):  # noqa: ANN202
    return dataclasses.replace(get_profile("smoke").teacher, local_model="smollm2-135m", **changes)


def _attached(t: Teacher, run: Path, **changes: object) -> Teacher:
    """A second client with its own cache on the same real server (as a notebook kernel attaches)."""
    rd = RunDir.open(get_profile("smoke"), run)
    return Teacher(_smoke_teacher_cfg(**changes), t.base_url, "local", model_id=t.model_id, label=t.label,
                   cache_path=Path(rd.path) / "teacher" / "cache" / "responses.sqlite", rd=rd)


# --------------------------------------------------------------------------- determinism
def test_results_do_not_depend_on_concurrency(local_teacher: Teacher, tmp_path: Path) -> None:
    """Same requests, one at a time vs 4 in flight (decoded together on llama-server): same texts."""
    reqs = [{"messages": _msg(f"Write one sentence about the number {i}."), "max_tokens": 24,
             "temperature": 0.0 if i % 2 else 0.8, "seed": 100 + i} for i in range(8)]
    serial = _attached(local_teacher, tmp_path / "c1", concurrency=1)
    parallel = _attached(local_teacher, tmp_path / "c4", concurrency=4)
    try:
        a = serial.chat_many(reqs, desc="c1")
        b = parallel.chat_many(list(reversed(reqs)), desc="c4")[::-1]  # other submission order too
    finally:
        serial.close()
        parallel.close()
    assert all(r.error is None and not r.cached for r in a + b)
    assert [r.text for r in a] == [r.text for r in b], f"engine {local_teacher.engine}"
    assert len({r.text for r in a}) > 1


def test_rating_is_one_request_on_llama_server_with_the_same_score(local_teacher: Teacher, tmp_path: Path) -> None:
    t = _attached(local_teacher, tmp_path / "rate")
    t.engine = local_teacher.engine
    try:
        r = t.rate("You are a Python teacher.", "Rate this code from 0 to 9, digit first:\n```python\n"
                   "def add(a, b):\n    return a + b\n```", max_tokens=12)
        sent = t.stats["requests"]
    finally:
        t.close()
    assert r.method == "logprobs" and r.score is not None and r.probs
    assert sent == (1 if local_teacher.engine == "llama-server" else 2)
    # the two-request path (what llama-cpp-python needs) reads the same score-token distribution
    two = _attached(local_teacher, tmp_path / "rate2")
    two.engine = "llama-cpp-python"
    try:
        r2 = two.rate("You are a Python teacher.", "Rate this code from 0 to 9, digit first:\n```python\n"
                      "def add(a, b):\n    return a + b\n```", max_tokens=12)
    finally:
        two.close()
    assert r2.score == pytest.approx(r.score, abs=1e-6) and r2.reason == r.reason


# --------------------------------------------------------------------------- fallback
def test_auto_falls_back_to_llama_cpp_python_with_one_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("llama_cpp.server", reason="llama-cpp-python is compiled only as the fallback or on demand "
                                                   "(PHI_LLAMA_CPP_PYTHON=1 bash scripts/setup.sh; CI does)")
    monkeypatch.setenv("PHI_ENGINE_DIR", str(tmp_path / "no-engine"))
    monkeypatch.setattr(engine_mod, "_WARNED", False)
    model = fetch_model("smollm2-135m")
    with caplog.at_level(logging.WARNING, logger="phi_utils.teacher"):
        first = make_server(_smoke_teacher_cfg(engine="auto"), model, tmp_path / "a.log", alias="m")
        second = make_server(_smoke_teacher_cfg(engine="auto"), model, tmp_path / "b.log", alias="m")
    assert type(first) is LocalServer and type(second) is LocalServer
    assert first.engine == "llama-cpp-python" and "llama_cpp.server" in first.command()
    warnings = [r for r in caplog.records if "build_teacher_engine.sh" in r.getMessage()]
    assert len(warnings) == 1, "one clear warning, not one per server"
    with pytest.raises(TeacherServerError, match="build_teacher_engine.sh"):
        make_server(_smoke_teacher_cfg(engine="llama-server"), model, tmp_path / "c.log", alias="m")
    # and the fallback really serves
    rd = RunDir.open(get_profile("smoke"), tmp_path / "run")
    t = Teacher.from_config(_smoke_teacher_cfg(engine="auto"), rd)
    try:
        assert t.engine == "llama-cpp-python" and type(t.server) is LocalServer
        assert t.chat(_msg("Say hi."), max_tokens=4, temperature=0).error is None
    finally:
        t.close()


def test_a_native_build_for_another_cpu_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = engine_mod.llama_server_binary()
    if real is None:
        pytest.skip("llama-server not built here")
    dest = tmp_path / "engine" / f"llama-server-{engine_mod.ENGINE_VERSION}"
    dest.mkdir(parents=True)
    (dest / "llama-server").symlink_to(real)
    monkeypatch.setenv("PHI_ENGINE_DIR", str(tmp_path / "engine"))
    for built_for, usable in (("0123456789abcdef", False), (engine_mod.cpu_id(), True), ("portable", True)):
        (dest / "BUILD_INFO.json").write_text(json.dumps({"cpu": built_for}))
        assert (engine_mod.llama_server_binary() is not None) is usable, built_for
    script = Path(__file__).resolve().parents[1] / "scripts" / "build_teacher_engine.sh"
    # the build script computes the same CPU id (a native build found on another CPU is rebuilt)
    line = next(x for x in script.read_text().splitlines() if x.startswith("CPU=$("))
    shell = subprocess.run(["bash", "-c", line + '; echo "$CPU"'], capture_output=True, text=True, check=True)
    assert shell.stdout.strip() == engine_mod.cpu_id()


def test_build_for_this_cpu_takes_its_avx512_flags_and_never_amx() -> None:
    """The default build's cmake options come from /proc/cpuinfo; AMX (a SIGSEGV at start here) never."""
    text = (REPO / "scripts" / "build_teacher_engine.sh").read_text()
    funcs = "\n".join(re.search(rf"^{name}\(\) {{.*?^}}", text, re.S | re.M).group(0) for name in ("has", "isa_flags"))
    flags = subprocess.run(["bash", "-c", funcs + "\nisa_flags"], capture_output=True, text=True, check=True).stdout.split()
    cpu = set(next((x for x in Path("/proc/cpuinfo").read_text().splitlines() if x.startswith("flags")), "").split()[2:])
    assert not [f for f in flags if "AMX" in f]
    assert ("-DGGML_AVX512=ON" in flags) == ({"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= cpu)
    assert ("-DGGML_AVX512_VNNI=ON" in flags) == ({"avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512_vnni"} <= cpu)
    assert ("-DGGML_AVX_VNNI=ON" in flags) == ("avx_vnni" in cpu)


def test_which_cached_build_the_build_script_keeps(tmp_path: Path) -> None:
    """The script's `built` test: a build for this CPU, or a portable one made because that build failed
    here, is kept; a portable one otherwise is rebuilt for this CPU (if it has AVX-512/VNNI kernels)."""
    real = engine_mod.llama_server_binary()
    if real is None:
        pytest.skip("llama-server not built here")
    text = (REPO / "scripts" / "build_teacher_engine.sh").read_text()
    lines = text.splitlines()
    start = next(i for i, x in enumerate(lines) if x.startswith("CPU=$("))
    end = next(i for i, x in enumerate(lines) if x.startswith("built() {"))
    head = "\n".join(lines[start:end])  # CPU, has, isa_flags, WANT
    built = re.search(r"^built\(\) {.*?^}", text, re.S | re.M).group(0)
    dest = tmp_path / "llama-server-x"
    dest.mkdir()
    (dest / "llama-server").symlink_to(real)

    def keeps(info: dict, native: str = "1") -> bool:
        (dest / "BUILD_INFO.json").write_text(json.dumps(info, indent=1))
        script = f'DEST={dest}\nPHI_ENGINE_NATIVE={native}\n{head}\n{built}\nbuilt && echo keep || echo rebuild'
        return subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                              check=True).stdout.strip() == "keep"

    this = engine_mod.cpu_id()
    wants_native = bool(subprocess.run(["bash", "-c", head + '\n[ "$WANT" != portable ] && echo y'],
                                       capture_output=True, text=True).stdout.strip())
    assert keeps({"cpu": this}) is wants_native
    assert keeps({"cpu": "portable"}) is not wants_native
    assert keeps({"cpu": "portable", "native_failed_for": this}) is True
    assert keeps({"cpu": "portable"}, native="0") is True
    assert keeps({"cpu": "0123456789abcdef"}) is False


def test_failed_build_warns_once_and_exits_zero(tmp_path: Path) -> None:
    bogus = tmp_path / "llama_cpp_python-0.3.36.tar.gz"
    bogus.write_bytes(b"not a tarball")
    env = {**os.environ, "PHI_ENGINE_DIR": str(tmp_path / "engine"), "PHI_LLAMA_SDIST": str(bogus)}
    p = subprocess.run(["bash", str(REPO / "scripts" / "build_teacher_engine.sh")], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    warnings = [line for line in p.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 1 and "llama-cpp-python" in warnings[0], p.stderr
    assert not list((tmp_path / "engine").glob("llama-server-*/llama-server"))


@needs_llama_server
def test_build_script_is_a_no_op_when_built() -> None:
    t0 = time.monotonic()
    p = subprocess.run(["bash", str(REPO / "scripts" / "build_teacher_engine.sh")], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "(cached)" in p.stdout and time.monotonic() - t0 < 30


# --------------------------------------------------------------------------- restart after a real kill
def test_server_killed_mid_stage_is_restarted_and_the_stage_finishes(tmp_path: Path) -> None:
    rd = RunDir.open(get_profile("smoke"), tmp_path / "run")
    t = Teacher.from_config(_smoke_teacher_cfg(concurrency=2, max_retries=8), rd)
    t.transport.backoff_base_s = 0.2
    server = t.server
    assert server is not None
    n = 10
    reqs = [{"messages": _msg(f"Count from 1 to {i + 5}."), "max_tokens": 48, "temperature": 0} for i in range(n)]
    out: list = []
    worker = threading.Thread(target=lambda: out.extend(t.chat_many(reqs, desc="killed")))
    try:
        worker.start()
        deadline = time.monotonic() + 240
        while len(t.cache) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        done_before = len(t.cache)
        assert 2 <= done_before < n, "the stage finished before the kill; make the requests longer"
        old_pid = server.proc.pid
        os.kill(old_pid, signal.SIGKILL)  # a real crash of the server, mid-stage
        worker.join(timeout=300)
        assert not worker.is_alive()
        assert len(out) == n and all(r.error is None and r.text for r in out), [r.error for r in out]
        assert server.restarts == 1 and server.alive() and server.proc.pid != old_pid
        assert t.stats["retries"] >= 1  # requests in flight at the kill were resent
        again = t.chat_many(reqs, desc="rerun")
        assert all(r.cached for r in again) and [r.text for r in again] == [r.text for r in out]
    finally:
        t.close()
    assert not server.alive(), "close() must stop the server and its watchdog must not revive it"
    time.sleep(1.5)
    assert not server.alive()


# --------------------------------------------------------------------------- 1.5B (slow)
@pytest.mark.slow
@needs_llama_server
@pytest.mark.xfail(reason="measured 2026-12-02: the 1.5B's greedy replies and ratings differ between llama-server "
                          "and llama-cpp-python; the cause is not yet found", strict=False)
def test_qwen_greedy_and_ratings_agree_across_engines(tmp_path: Path) -> None:
    """The 1.5B on both engines: rating scores within 0.05, and both greedy replies start the same
    function. The greedy replies are not identical: measured 2026-12-02, they part after the first
    line of the function (one writes a recursive Fibonacci, the other an iterative one), so the two
    servers do not compute the same logits; which step differs (chat templating or the kernels'
    thread split) is not yet found."""
    from phi_utils.teacher.card import RATING_SYSTEM, RATING_USER, load_snippets

    snippets = load_snippets(4)
    items = [(RATING_SYSTEM, RATING_USER.format(code=s["code"])) for s in snippets]
    prompt = [{"role": "user", "content": "Write a Python function that returns the n-th Fibonacci number."}]
    got = {}
    for eng in ("llama-server", "llama-cpp-python"):
        rd = RunDir.open(get_profile("tiny"), tmp_path / eng)
        cfg = dataclasses.replace(get_profile("tiny").teacher, engine=eng, concurrency=4)
        t = Teacher.from_config(cfg, rd)
        try:
            assert t.engine == eng
            got[eng] = (t.chat(prompt, max_tokens=96, temperature=0).text, t.rate_many(items, max_tokens=8))
        finally:
            t.close()
    (text_a, rat_a), (text_b, rat_b) = got["llama-server"], got["llama-cpp-python"]
    assert text_a[:34] == text_b[:34] and "def " in text_a and "def " in text_b, (text_a, text_b)
    assert all(abs(a.score - b.score) < 0.05 for a, b in zip(rat_a, rat_b)), [(a.score, b.score) for a, b in
                                                                              zip(rat_a, rat_b)]


def test_llama_server_command_has_slots_and_per_slot_context(tmp_path: Path) -> None:
    s = LlamaServer("/bin/llama-server", tmp_path / "m.gguf", tmp_path / "l.log",
                    engine_mod.EngineSettings(n_ctx=2048, parallel=4, threads=1), alias="m")
    s.port = 1234
    cmd = s.command()
    assert cmd[cmd.index("--parallel") + 1] == "4" and cmd[cmd.index("--ctx-size") + 1] == str(4 * 2048)
    assert "--no-kv-unified" in cmd and cmd[cmd.index("--threads") + 1] == "1"


@needs_llama_server
def test_draft_model_keeps_greedy_output(local_teacher: Teacher, tmp_path: Path) -> None:
    """Speculative decoding (SmolLM2 drafting for itself: same vocabulary) changes speed, not greedy text."""
    if local_teacher.engine != "llama-server":
        pytest.skip("the session server is not llama-server")
    prompt = _msg("List the first ten prime numbers, comma separated.")
    ref = _attached(local_teacher, tmp_path / "plain")
    plain = ref.chat(prompt, max_tokens=40, temperature=0)
    ref.close()
    rd = RunDir.open(get_profile("smoke"), tmp_path / "draft")
    t = Teacher.from_config(_smoke_teacher_cfg(draft_model="smollm2-135m", draft_max=4), rd)
    try:
        assert "--model-draft" in t.server.command()
        drafted = t.chat(prompt, max_tokens=40, temperature=0)
        log_text = Path(t.server.log_path).read_text(errors="replace")
    finally:
        t.close()
    assert drafted.error is None and drafted.text == plain.text
    assert "draft acceptance" in log_text  # the server did draft (a loaded draft model alone does not)
