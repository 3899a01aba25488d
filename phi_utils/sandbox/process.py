"""One untrusted program in its own process: limits set before `exec`, a pids cgroup where one can
be made, output captured with a cap, a wall-clock deadline, the sentinel rule, and everything it
spawned killed at the end (see the package doc)."""

from __future__ import annotations

import atexit
import errno
import os
import resource
import secrets
import selectors
import shutil
import signal
import site
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterable

from .isolation import bwrap_args, bwrap_for, isolation
from .limits import ExecResult, SandboxLimits

_LOCK = threading.Lock()


# --------------------------------------------------------------------------- process-count limits
def _pids_cgroup_root() -> Path | None:
    """A writable cgroup directory with the `pids` controller (v1 or v2), or None."""
    if os.environ.get("PHI_SANDBOX_NO_CGROUP") == "1":
        return None
    candidates = [Path("/sys/fs/cgroup/pids")]
    unified = Path("/sys/fs/cgroup")
    if (unified / "cgroup.controllers").exists() and "pids" in (unified / "cgroup.controllers").read_text():
        candidates.append(unified)
    for root in candidates:
        base = root / f"phi_sandbox_{os.getpid()}"
        try:
            base.mkdir(exist_ok=True)
            if root == unified:  # v2: enable pids for the children of our base
                (base / "cgroup.subtree_control").write_text("+pids")
            probe = base / "probe"
            probe.mkdir(exist_ok=True)
            (probe / "pids.max").write_text("8")
            probe.rmdir()
            return base
        except OSError:
            continue
    return None


_CG_CACHE: list[Path | None] = []
_CG_COUNTER = [0]


def _cgroup_base() -> Path | None:
    with _LOCK:
        if not _CG_CACHE:
            base = _pids_cgroup_root()
            _CG_CACHE.append(base)
            if base is not None:
                atexit.register(_remove_dir_quietly, base)
        return _CG_CACHE[0]


def _remove_dir_quietly(p: Path) -> None:
    try:
        p.rmdir()
    except OSError:
        pass


def new_cgroup(max_pids: int) -> Path | None:
    base = _cgroup_base()
    if base is None:
        return None
    with _LOCK:
        _CG_COUNTER[0] += 1
        cg = base / f"p{_CG_COUNTER[0]}"
    try:
        cg.mkdir()
        (cg / "pids.max").write_text(str(max_pids))
        return cg
    except OSError:
        return None


def kill_cgroup(cg: Path) -> None:
    """SIGKILL every process in `cg` until it is empty, then remove it."""
    kill_file = cg / "cgroup.kill"
    for _ in range(200):
        try:
            pids = [int(x) for x in (cg / "cgroup.procs").read_text().split()]
        except OSError:
            return
        if not pids:
            break
        if kill_file.exists():
            try:
                kill_file.write_text("1")
            except OSError:
                pass
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.005)
    for _ in range(100):
        try:
            cg.rmdir()
            return
        except OSError as e:
            if e.errno != errno.EBUSY:
                return
            time.sleep(0.01)


_NPROC_CACHE: dict[str, float] = {}


def _user_task_count() -> int:
    """Threads owned by this (non-root) user now; RLIMIT_NPROC counts all of them."""
    now = time.time()
    if now - _NPROC_CACHE.get("t", 0.0) < 2.0:
        return int(_NPROC_CACHE["n"])
    uid, n = os.getuid(), 0
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                st = os.stat(f"/proc/{d}")
                if st.st_uid == uid:
                    n += len(os.listdir(f"/proc/{d}/task"))
            except OSError:
                continue
    _NPROC_CACHE.update(t=now, n=n)
    return n


# --------------------------------------------------------------------------- running one program
def make_child_env(extra: dict[str, str] | None, limits: SandboxLimits, tmpdir: str) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
        "HOME": tmpdir, "TMPDIR": tmpdir,
        "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
        "PYTHONDONTWRITEBYTECODE": "1", "PYTHONIOENCODING": "utf-8",
        "MPLBACKEND": "Agg",
    }
    if not limits.site:
        # -S skips site (13 ms of .pth processing here); the interpreter's site-packages stay importable.
        paths = [p for p in site.getsitepackages() if os.path.isdir(p)]
        env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(extra or {})
    return env


def python_argv(limits: SandboxLimits) -> list[str]:
    flags = ["-s", "-P"] + ([] if limits.site else ["-S"])
    return [limits.python, *flags, "-"]


class Capture:
    """Keeps the first `cap` bytes and the last 4 kB of a stream; counts the rest."""

    def __init__(self, cap: int) -> None:
        self.cap, self.head, self.tail, self.total = cap, bytearray(), bytearray(), 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        room = self.cap - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail = (self.tail + data)[-4096:]

    def text(self) -> str:
        s = self.head.decode("utf-8", errors="replace")
        if self.tail:
            cut = self.total - len(self.head) - len(self.tail)
            s += (f"\n...[{cut} bytes cut]...\n" if cut > 0 else "") + self.tail.decode("utf-8", errors="replace")
        return s


def last_error_line(stderr: str) -> str:
    for line in reversed(stderr.strip().splitlines()):
        line = line.strip()
        if line and not line.startswith("...["):
            return line[:500]
    return ""


def run_program(code: str, timeout_s: float = 5.0, limits: SandboxLimits | None = None,
                env: dict[str, str] | None = None, ro_binds: Iterable[str] = ()) -> ExecResult:
    """Run Python `code` sandboxed; `passed` means it ran to its end and exited 0.

    `env` is added to the child's (small, clean) environment; `ro_binds` are extra host paths
    visible read-only inside bubblewrap (the host's /tmp is otherwise hidden).
    """
    limits = limits or SandboxLimits()
    bwrap = bwrap_for(limits)
    token = secrets.token_hex(16)

    host_tmp = None
    if bwrap:
        argv = [bwrap, *bwrap_args(limits.tmp_size_mb, ro_binds, limits.network, limits.python), "--", *python_argv(limits)]
        child_tmp = "/tmp"
    else:
        host_tmp = tempfile.mkdtemp(prefix="phi_sandbox_")
        argv = python_argv(limits)
        child_tmp = host_tmp
    child_env = make_child_env(env, limits, child_tmp)

    cg = new_cgroup(limits.max_processes + 3)  # + bwrap, its PID-1 reaper, slack
    cpu = limits.cpu_limit(timeout_s)
    preexec = make_preexec(limits, cg, cpu)

    sent_r, sent_w = os.pipe()
    # The sentinel runs after the program (and its tests): it proves the program reached its end.
    source = (code + f"\n\n__import__('os').write({sent_w}, b'{token}')\n").encode("utf-8", errors="surrogatepass")
    t0 = time.monotonic()
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                pass_fds=(sent_w,), env=child_env, cwd=child_tmp, preexec_fn=preexec,
                                start_new_session=True, close_fds=True)
    except OSError as e:
        os.close(sent_r)
        os.close(sent_w)
        if cg:
            kill_cgroup(cg)
        if host_tmp:
            shutil.rmtree(host_tmp, ignore_errors=True)
        return ExecResult("failed", False, None, "", "", 0.0, f"could not start the sandbox: {e}", isolation())
    os.close(sent_w)  # the child holds the only write end

    out, err, sentinel = Capture(limits.output_bytes), Capture(limits.output_bytes), bytearray()
    timed_out = flood = False
    sel = selectors.DefaultSelector()
    assert proc.stdin and proc.stdout and proc.stderr
    os.set_blocking(proc.stdin.fileno(), False)
    pending = memoryview(source)
    sel.register(proc.stdin, selectors.EVENT_WRITE, "in")
    sel.register(proc.stdout, selectors.EVENT_READ, out)
    sel.register(proc.stderr, selectors.EVENT_READ, err)
    sel.register(sent_r, selectors.EVENT_READ, sentinel)
    deadline = t0 + timeout_s
    try:
        while sel.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                # Past the grace period after the child's exit, open pipes belong to leftovers (killed below).
                timed_out = proc.poll() is None
                break
            for key, _ in sel.select(timeout=min(left, 0.5)):
                if key.data == "in":
                    try:
                        n = os.write(key.fd, pending[:65536])
                        pending = pending[n:]
                    except (BrokenPipeError, BlockingIOError, OSError) as e:
                        if isinstance(e, BlockingIOError):
                            continue
                        pending = pending[:0]
                    if not pending:
                        sel.unregister(key.fileobj)
                        proc.stdin.close()
                    continue
                try:
                    data = os.read(key.fd, 65536)
                except OSError:
                    data = b""
                if not data:
                    sel.unregister(key.fileobj)
                    continue
                if key.data is sentinel:
                    sentinel.extend(data[:64])
                else:
                    key.data.add(data)
                    if out.total + err.total > limits.max_output_bytes:
                        flood = True
            if flood:
                break
            if proc.poll() is not None and not any(k.data == "in" for k in sel.get_map().values()):
                # The child is gone; anything it spawned is killed below, so stop waiting for EOF soon.
                deadline = min(deadline, time.monotonic() + 0.2)
        if not timed_out and not flood:
            try:
                proc.wait(timeout=max(0.05, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                timed_out = True
    finally:
        wall = time.monotonic() - t0
        _kill_all(proc, cg)
        sel.close()
        os.close(sent_r)
        for f in (proc.stdin, proc.stdout, proc.stderr):
            try:
                if f:
                    f.close()
            except OSError:
                pass
        if host_tmp:
            shutil.rmtree(host_tmp, ignore_errors=True)

    return verdict(proc.returncode, timed_out, flood, bytes(sentinel).startswith(token.encode()), out.text(),
                    err.text(), wall, timeout_s, cpu, limits, "bwrap" if bwrap else "rlimits")


def make_preexec(limits: SandboxLimits, cg: Path | None, cpu: int | None) -> Any:
    """The function run in the child between fork and exec: join the pids cgroup, set the limits.
    `cpu` None leaves RLIMIT_CPU to the fork server (it sets it per program)."""
    nproc = None
    if cg is None and os.getuid() != 0:
        nproc = _user_task_count() + limits.max_processes + 3
    mem = int(limits.memory_mb) << 20
    fsize = int(limits.file_size_mb) << 20
    cg_procs = str(cg / "cgroup.procs") if cg else None

    def preexec() -> None:
        if cg_procs:
            with open(cg_procs, "w") as f:
                f.write(str(os.getpid()))
        if cpu is not None:
            resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
        if nproc is not None:
            resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))

    return preexec


def verdict(rc: int | None, timed_out: bool, flood: bool, ran_to_end: bool, stdout: str, stderr: str, wall: float,
             timeout_s: float, cpu: int, limits: SandboxLimits, iso: str) -> ExecResult:
    if flood or rc == -signal.SIGXFSZ:
        status, detail = "failed", f"output limit exceeded (> {limits.max_output_bytes} bytes or a file > {limits.file_size_mb} MiB)"
    elif timed_out or rc in (-signal.SIGXCPU, 128 + signal.SIGXCPU):
        status, detail = "timed out", f"no result within {timeout_s:g} s wall / {cpu} s CPU"
    elif rc == 0 and ran_to_end:
        status, detail = "passed", ""
    elif rc == 0:
        status, detail = "failed", "exited early (status 0) before the end of the program and its tests"
    else:
        last = last_error_line(stderr)
        if rc is not None and rc < 0:
            name = signal.Signals(-rc).name if -rc in signal.Signals._value2member_map_ else str(-rc)
            detail = f"killed by {name}" + (" (memory limit?)" if -rc in (signal.SIGKILL, signal.SIGSEGV) else "")
        elif "MemoryError" in last:
            detail = "MemoryError"
        else:
            detail = last or f"exit status {rc}"
        status = "failed"
    return ExecResult(status, status == "passed", rc, stdout, stderr, round(wall, 4), detail, iso)


def _children(pid: int) -> list[int]:
    """Direct children of `pid` (scan of /proc; only used on the kill path)."""
    kids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat", "rb") as f:
                    stat = f.read()
                if int(stat[stat.rindex(b")") + 2:].split()[1]) == pid:
                    kids.append(int(d))
            except (OSError, ValueError):
                continue
    return kids


def _kill_all(proc: subprocess.Popen, cg: Path | None) -> None:
    """Kill everything the program started, then its launcher, leaving no process or zombie behind.

    The launcher (bwrap) is killed last so that it reaps its child, the PID namespace's init, whose
    death takes the whole namespace with it; killing the launcher first would orphan that init.
    """
    if proc.poll() is None:
        inner = set(int(x) for x in (cg / "cgroup.procs").read_text().split()) if cg and (cg / "cgroup.procs").exists() else set()
        inner |= set(_children(proc.pid))
        inner.discard(proc.pid)
        for pid in inner:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            pass
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait()
    elif cg is None:
        # Without a cgroup, background children left in the program's process group go this way.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    if cg is not None:
        kill_cgroup(cg)
