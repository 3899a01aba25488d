"""Run generated GUI / plotting programs headlessly in the sandbox and give a verdict.

- pygame: `SDL_VIDEODRIVER=dummy` (and a dummy audio driver) - windows exist in memory only.
- Tkinter: a virtual X display. We start `Xvfb` ourselves on a free display number (Xvfb picks
  it with `-displayfd`, so concurrent runs never collide), bind `/tmp/.X11-unix` read-only into
  the sandbox and set `DISPLAY`. Xvfb comes from the Debian package `xvfb`.
- matplotlib: `MPLBACKEND=Agg`, so `plt.show()` returns at once and nothing needs a display.

Verdict (documented here because it is a judgement call):
- `runs`: the program exited with status 0 and printed no traceback, **or** - for event-loop kinds
  (pygame, Tkinter) only - it was still running when the short time limit cut it and had printed
  no Python traceback. A GUI program sits in its event loop (`root.mainloop()`, `while running:`
  in pygame) forever; reaching the loop without an exception is what "it runs" means for it, so
  being cut at the limit is not a failure. `cut_at_limit` records which of the two happened.
- `crashes`: non-zero exit (an uncaught exception, `SyntaxError`, a missing module, ...), a
  traceback on stderr even if the program kept running (e.g. an exception inside a Tkinter
  callback, which Tk prints and survives), or - for scripts (plain Python, torch, matplotlib with
  Agg, whose `plt.show()` returns at once) - not finishing within the longer script limit (a hang).
- `no code`: nothing parseable to run (e.g. the model produced prose only).
Limits: "no exception before the limit" cannot see an exception the loop would raise later
(e.g. on a key press no one makes), and a program that loops without doing anything useful also
"runs": the verdict measures whether the code executes, not whether it does what the prompt asked
(the paper's by-eye judgement, and the HTML table's job). Which APIs it calls is checked separately
and statically by `api_check`.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

X11_SOCKET_DIR = "/tmp/.X11-unix"
"""Where X servers put their Unix sockets; bound read-only into the sandbox for Tkinter."""

TRACEBACK_MARKERS = ("Traceback (most recent call last)", "Exception in Tkinter callback")
"""Text on stderr that means the program raised, even if it kept running afterwards."""

GUI_KINDS = ("pygame", "tkinter", "matplotlib", "torch", "python", "chat")
"""Runner kinds; they differ in the environment the program gets and in the time limit."""

EVENT_LOOP_KINDS = ("pygame", "tkinter")
"""Kinds whose programs run an endless event loop: cut at the short limit, that counts as running."""


class HeadlessError(RuntimeError):
    """The headless environment cannot be set up (e.g. Xvfb missing); the message says how to fix it."""


@dataclass
class HeadlessResult:
    verdict: str
    """`runs`, `crashes` or `no code` (see the module docstring)."""
    cut_at_limit: bool
    """True when the program was still running at the time limit (event loop) and was stopped."""
    error: str | None
    """Last line of the traceback (e.g. `AttributeError: ...`) for `crashes`."""
    wall_s: float
    """Seconds the program ran."""
    returncode: int | None
    """Exit status (None when cut at the limit)."""
    stdout: str = ""
    """Captured standard output (capped by the sandbox)."""
    stderr: str = ""
    """Captured standard error (capped by the sandbox)."""


# ----------------------------------------------------------------------------- virtual X display
def xvfb_available() -> bool:
    return shutil.which("Xvfb") is not None


@contextmanager
def virtual_display(timeout_s: float = 15.0) -> Iterator[str]:
    """Start Xvfb on a free display for the duration of the block; yields e.g. `:5`.

    Xvfb writes the display number it chose to a pipe (`-displayfd`); we stop exactly the
    process we started when the block exits.
    """
    exe = shutil.which("Xvfb")
    if exe is None:
        raise HeadlessError("Xvfb is not installed; Tkinter programs need a virtual X display "
                            "(Debian/Ubuntu: `apt-get install -y xvfb`)")
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        [exe, "-displayfd", str(write_fd), "-screen", "0", "1024x768x24", "-nolisten", "tcp", "-noreset"],
        pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    os.close(write_fd)
    try:
        display = _read_display(read_fd, proc, timeout_s)
        socket = Path(X11_SOCKET_DIR) / f"X{display}"
        deadline = time.time() + timeout_s
        while not socket.exists():
            if time.time() > deadline or proc.poll() is not None:
                raise HeadlessError(f"Xvfb on :{display} did not create {socket}")
            time.sleep(0.05)
        yield f":{display}"
    finally:
        os.close(read_fd)
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def _read_display(fd: int, proc: subprocess.Popen, timeout_s: float) -> str:
    buf = b""
    deadline = time.time() + timeout_s
    while not buf.endswith(b"\n"):
        left = deadline - time.time()
        if left <= 0 or proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace")[-500:] if proc.poll() is not None and proc.stderr else ""
            raise HeadlessError(f"Xvfb did not report a display within {timeout_s:.0f} s {err}".strip())
        ready, _, _ = select.select([fd], [], [], min(left, 0.5))
        if ready:
            chunk = os.read(fd, 64)
            if not chunk:
                continue
            buf += chunk
    return buf.decode().strip()


# ----------------------------------------------------------------------------- running
def headless_env(kind: str, display: str | None = None) -> dict[str, str]:
    """Environment variables a program of `kind` gets in the sandbox."""
    env = {
        "MPLBACKEND": "Agg",  # every kind: a stray `import matplotlib.pyplot` must not need a display
        "SDL_VIDEODRIVER": "dummy",
        "SDL_AUDIODRIVER": "dummy",
        "PYGAME_HIDE_SUPPORT_PROMPT": "1",
        "PYTHONUNBUFFERED": "1",
    }
    if display:
        env["DISPLAY"] = display
    return env


def verdict_of(status: str, returncode: int | None, stderr: str,
               event_loop: bool = True) -> tuple[str, bool, str | None]:
    """(verdict, cut_at_limit, error) from the sandbox's outcome; see the module docstring."""
    raised = any(m in (stderr or "") for m in TRACEBACK_MARKERS)
    cut = status == "timed out"
    error = _last_error_line(stderr) if raised or (not cut and returncode not in (0, None)) else None
    if cut:
        if raised:
            return "crashes", True, error
        if event_loop:
            return "runs", True, None
        return "crashes", True, "did not finish within the time limit (hang; no event loop expected)"
    if returncode == 0 and not raised:
        return "runs", False, None
    return "crashes", False, error or f"exit status {returncode}"


def _last_error_line(stderr: str) -> str | None:
    lines = [ln.strip() for ln in (stderr or "").splitlines() if ln.strip()]
    for ln in reversed(lines):
        if not ln.startswith(("File ", "^", "~")):
            return ln[:300]
    return None


def run_headless(codes: Sequence[str], kinds: Sequence[str], timeout_s: float = 5.0,
                 workers: int = 2, desc: str = "headless runs",
                 script_timeout_s: float | None = None) -> list[HeadlessResult]:
    """Run each program in the sandbox with the environment its kind needs; order kept.

    Event-loop kinds (pygame, Tkinter) get `timeout_s` and count as running when cut there;
    scripts get `script_timeout_s` (default: 4 x `timeout_s`, at least 10 s) and must finish.

    One Xvfb serves all Tkinter programs of the call (started only if there is one).
    Empty programs get `no code` without running.
    """
    from phi_utils.sandbox import run_programs

    if len(codes) != len(kinds):
        raise ValueError("codes and kinds must have the same length")
    unknown = sorted(set(kinds) - set(GUI_KINDS))
    if unknown:
        raise ValueError(f"unknown runner kind(s) {unknown}; known: {GUI_KINDS}")
    results: list[HeadlessResult | None] = [None] * len(codes)
    todo = [i for i, c in enumerate(codes) if c.strip()]
    for i in set(range(len(codes))) - set(todo):
        results[i] = HeadlessResult("no code", False, None, 0.0, None)
    if not todo:
        return results  # type: ignore[return-value]

    need_x = any(kinds[i] == "tkinter" for i in todo)
    with (virtual_display() if need_x else _no_display()) as display:
        groups: dict[str, list[int]] = {}
        for i in todo:
            groups.setdefault(kinds[i], []).append(i)
        for kind, idx in groups.items():
            x = kind == "tkinter"
            loop = kind in EVENT_LOOP_KINDS
            env = headless_env(kind, display if x else None)
            limit = timeout_s if loop else (script_timeout_s or max(10.0, 4 * timeout_s))
            outs = run_programs([codes[i] for i in idx], workers=workers, timeout_s=limit,
                                desc=f"{desc} ({kind})", env=env,
                                ro_binds=[X11_SOCKET_DIR] if x else [])
            for i, res in zip(idx, outs):
                verdict, cut, error = verdict_of(res.status, res.returncode, res.stderr, loop)
                results[i] = HeadlessResult(verdict, cut, error, res.wall_s, None if cut else res.returncode,
                                            res.stdout, res.stderr)
    return results  # type: ignore[return-value]


@contextmanager
def _no_display() -> Iterator[None]:
    yield None


