"""The sandbox holds: hostile programs (tests/hostile/) get the right verdict and leave nothing behind."""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from pathlib import Path

import pytest

from phi_utils.sandbox import SandboxLimits, isolation, run_program, run_programs

HOSTILE = Path(__file__).parent / "hostile"
HOSTILE_FILES = sorted(HOSTILE.glob("*.py"))


def _header(path: Path) -> tuple[str, bool]:
    lines = path.read_text().splitlines()
    expect = lines[0].split(":", 1)[1].strip()
    return expect, any(line.strip() == "# bwrap-only" for line in lines[:3])


def _tree_digest(d: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(d.rglob("*")):
        h.update(str(p.relative_to(d)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def _processes_with_env(marker: str) -> list[int]:
    """Live (non-zombie) processes whose environment carries `marker`."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            if marker.encode() in Path(f"/proc/{d}/environ").read_bytes():
                state = Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    found.append(int(d))
        except OSError:
            continue
    return found


@pytest.fixture()
def canary(tmp_path: Path) -> Path:
    d = tmp_path / "canary"
    d.mkdir()
    (d / "canary.txt").write_text("do not touch\n")
    (d / "sub").mkdir()
    (d / "sub" / "data.bin").write_bytes(os.urandom(1000))
    return d


def _run_hostile(path: Path, canary: Path, limits: SandboxLimits | None = None, pool: bool = False):
    # 256 MiB: page faults are slow on small VMs, so a bomb must hit the cap well within the deadline.
    limits = limits or SandboxLimits(memory_mb=256)
    marker = f"PHI_HOSTILE_{uuid.uuid4().hex}"
    before = _tree_digest(canary)
    t0 = time.monotonic()
    kw = dict(timeout_s=2.0, limits=limits, env={"PHI_CANARY_DIR": str(canary), "PHI_HOSTILE_MARKER": marker},
              ro_binds=[str(canary)])
    if pool:  # the fork-server path of run_programs, followed by a benign program on the same worker
        res, after = run_programs([path.read_text(), "assert 1 + 1 == 2"], workers=1, progress=False, **kw)
        assert after.passed, ("the next program on the same worker was affected", after.detail)
    else:
        res = run_program(path.read_text(), **kw)
    took = time.monotonic() - t0
    time.sleep(0.05)
    return res, took, before, marker


@pytest.mark.parametrize("pool", [False, True], ids=["run_program", "run_programs"])
@pytest.mark.parametrize("path", HOSTILE_FILES, ids=[p.stem for p in HOSTILE_FILES])
def test_hostile_program(path: Path, canary: Path, pool: bool) -> None:
    expect, bwrap_only = _header(path)
    if bwrap_only and isolation() != "bwrap":
        pytest.skip("needs bubblewrap: without it the fallback cannot protect files, network or other processes")
    parent = os.getppid()
    res, took, before, marker = _run_hostile(path, canary, pool=pool)
    assert res.status == expect, (res.status, res.detail, res.stderr[-500:])
    assert res.passed == (expect == "passed")
    assert took < 10, f"the harness was held for {took:.1f} s"
    assert _tree_digest(canary) == before, "canary files changed"
    assert not _processes_with_env(marker), "processes of the program are still running"
    assert os.getppid() == parent  # we (and our parent) are still here
    for p in ("/etc/phi_hostile_marker", "/root/phi_hostile_marker", "/var/tmp/phi_hostile_marker"):
        assert not os.path.exists(p)
    assert len(res.stdout) < 200_000 and len(res.stderr) < 200_000, "captured output is not capped"


@pytest.mark.parametrize("name", ["endless_loop", "fork_bomb", "memory_bomb", "output_flood", "early_exit_os",
                                  "daemon_left_behind"])
def test_hostile_program_without_bwrap(name: str, canary: Path) -> None:
    """The limits-only fallback still gives the right verdict and leaves no process behind."""
    path = HOSTILE / f"{name}.py"
    expect, _ = _header(path)
    res, took, before, marker = _run_hostile(path, canary, SandboxLimits(memory_mb=256, use_bwrap=False))
    assert res.isolation == "rlimits"
    assert res.status == expect, (res.status, res.detail, res.stderr[-500:])
    assert took < 10
    assert not _processes_with_env(marker)


def test_verdicts_and_capture() -> None:
    ok = run_program("import sys\nprint('out'); print('err', file=sys.stderr)")
    assert ok.status == "passed" and ok.passed and ok.returncode == 0
    assert ok.stdout.strip() == "out" and ok.stderr.strip() == "err"
    bad = run_program("def f():\n    return 1\nassert f() == 2, 'wrong answer'")
    assert bad.status == "failed" and bad.result == "failed: AssertionError: wrong answer"
    syn = run_program("def f(:\n    pass")
    assert syn.status == "failed" and syn.detail.startswith("SyntaxError")
    exc = run_program("{}['k']")
    assert exc.detail.startswith("KeyError")
    slow = run_program("import time\ntime.sleep(5)", timeout_s=0.5)
    assert slow.status == "timed out" and slow.result == "timed out" and slow.wall_s < 2


def test_sandbox_view_of_the_system() -> None:
    """Private /tmp as the working directory, clean env, `env` and `ro_binds` passed through."""
    code = ("import os\nassert os.getcwd() == os.environ['TMPDIR']\nopen('scratch.txt', 'w').write('x')\n"
            "assert os.environ['MPLBACKEND'] == 'Agg'\nassert os.environ['EXTRA'] == '1'\n"
            "assert 'PHI_SECRET_SHOULD_NOT_LEAK' not in os.environ\nimport json, collections, numpy\n")
    os.environ["PHI_SECRET_SHOULD_NOT_LEAK"] = "1"
    try:
        res = run_program(code, env={"EXTRA": "1"})
    finally:
        del os.environ["PHI_SECRET_SHOULD_NOT_LEAK"]
    assert res.passed, res.stderr


@pytest.mark.skipif(isolation() != "bwrap", reason="bubblewrap not available")
def test_host_tmp_hidden_unless_bound(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("hello")
    hidden = run_program(f"open({str(tmp_path / 'f.txt')!r}).read()")
    assert not hidden.passed and "FileNotFoundError" in hidden.detail
    bound = run_program(f"assert open({str(tmp_path / 'f.txt')!r}).read() == 'hello'", ro_binds=[str(tmp_path)])
    assert bound.passed, bound.stderr


@pytest.mark.parametrize("fork_server", [True, False])
def test_run_programs_keeps_order_and_runs_in_parallel(fork_server: bool) -> None:
    # Each program prints when it slept; overlapping intervals prove parallelism without relying on
    # wall-clock totals (which a busy machine stretches).
    codes = [f"import time\nt0 = time.time()\ntime.sleep(0.5)\nprint(t0, time.time())\nassert {i} % 3 != 0"
             for i in range(8)]
    res = run_programs(codes, workers=4, timeout_s=20, progress=False, fork_server=fork_server)
    assert [r.passed for r in res] == [i % 3 != 0 for i in range(8)]
    spans = sorted(tuple(map(float, r.stdout.split())) for r in res)
    overlaps = sum(1 for a, b in zip(spans, spans[1:]) if b[0] < a[1])
    assert overlaps >= 1, f"no two programs ran at the same time: {spans}"


def test_pool_programs_do_not_see_each_other() -> None:
    """Each program of a worker gets a fresh process and working directory: no state carries over."""
    codes = ["import os, builtins\nopen('left.txt', 'w').write('x')\nopen('/tmp/shared.txt', 'w').write('x')\n"
             "open('/dev/shm/s', 'w').write('x')\nbuiltins.POISON = 1\nos.environ['POISON'] = '1'",
             "import os, builtins\nassert not os.path.exists('left.txt') and not os.path.exists('/tmp/shared.txt')\n"
             "assert not os.path.exists('/dev/shm/s')\nassert not hasattr(builtins, 'POISON') and 'POISON' not in os.environ"]
    res = run_programs(codes, workers=1, progress=False)
    assert res[0].passed and res[1].passed, res[1].stderr


def test_interpreter_in_a_venv_under_tmp_stays_visible(tmp_path):
    """A checkout (and its venv) under /tmp must still run: the sandbox's own /tmp is a private tmpfs."""
    import subprocess
    import sys

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)], check=True)
    assert str(venv).startswith("/tmp/")
    limits = SandboxLimits(python=str(venv / "bin" / "python"), site=True)  # site: the venv is activated
    res = run_program("import sys\nprint(sys.prefix)", timeout_s=20, limits=limits)
    assert res.passed, res.detail
    assert res.stdout.strip() == str(venv)
    pooled = run_programs(["print(1 + 1)", "assert False"], workers=1, timeout_s=20, limits=limits)
    assert [r.passed for r in pooled] == [True, False]
