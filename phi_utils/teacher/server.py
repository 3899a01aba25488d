"""The embedded local teacher: `python -m llama_cpp.server` on 127.0.0.1 and a free port.

`LocalServer` starts it, waits until `/v1/models` answers, logs to the run directory and stops it
on `close()`, at interpreter exit, on SIGTERM and on Ctrl-C (the child also gets SIGTERM if this
process dies, via PR_SET_PDEATHSIG). A server that fails to start raises with its log tail.

The server's thread count stays at llama.cpp's default: on 2 cores `--n_threads 2` collapsed
throughput to 5-44 tok/s (shared/reference/local-llm-server-measured.md).

`engine.pipeline_server(cfg.teacher, rd)` is what the runner wraps the whole pipeline in: one server for
all notebooks; kernels (child processes) attach to it through `$PHI_TEACHER_BASE_URL`. Which
program serves (`llama-server` or this one) is chosen in `engine.py` and exported as
`$PHI_TEACHER_ENGINE`.

A server that dies while in use (OOM kill, crash) is restarted on the same port by a watchdog
thread of the process that started it; clients see connection errors, which `Teacher` retries with
backoff, and every response finished before the death is already in the response cache.
"""

from __future__ import annotations

import atexit
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..rundir import RunDir

_log = logging.getLogger("phi_utils.teacher")

ENV_BASE_URL = "PHI_TEACHER_BASE_URL"
"""Set by `pipeline_server`: the running local server's `/v1` URL, inherited by notebook kernels."""
ENV_LABEL = "PHI_TEACHER_LABEL"
"""The served model's label (file name + sha256 prefix)."""
ENV_SHA256 = "PHI_TEACHER_SHA256"
"""The served GGUF's full sha256."""
ENV_LOCAL_MODEL = "PHI_TEACHER_LOCAL_MODEL"
"""The `teacher.local_model` value the server was started for (a kernel attaches only if it matches)."""
ENV_ENGINE = "PHI_TEACHER_ENGINE"
"""The program serving it: `llama-server` or `llama-cpp-python` (recorded in the teacher card)."""
MAX_RESTARTS = 5
"""Restarts of a dying server before the watchdog gives up (then requests fail after their retries)."""


class TeacherServerError(RuntimeError):
    """The local llama.cpp server could not be started; the message holds its log tail."""


_LIVE: "set[LocalServer]" = set()
_LIVE_LOCK = threading.Lock()
_HANDLERS_INSTALLED = False


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _stop_all() -> None:
    with _LIVE_LOCK:
        servers = list(_LIVE)
    for s in servers:
        s.stop()


def _install_handlers() -> None:
    """atexit + SIGTERM: stop every live server, then behave as before (only from the main thread)."""
    global _HANDLERS_INSTALLED
    if _HANDLERS_INSTALLED:
        return
    _HANDLERS_INSTALLED = True
    atexit.register(_stop_all)
    if threading.current_thread() is not threading.main_thread():
        return
    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum: int, frame: Any) -> None:
        _stop_all()
        if callable(previous):
            previous(signum, frame)
        else:
            raise SystemExit(128 + signum)

    try:
        signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not the main interpreter
        pass


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def server_env() -> dict[str, str]:
    """The server's environment: unbuffered output (the log is complete up to a crash) and, unless
    set already, OMP_WAIT_POLICY=passive. On 2 cores shared with other work (measured at load ~15,
    SmolLM2) spinning OpenMP threads starve: passive gave 2.5x prompt and 3-7x generation tok/s."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.setdefault("OMP_WAIT_POLICY", "passive")
    return env


def log_tail(path: Path, n_lines: int = 30) -> str:
    try:
        lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-n_lines:])


class LocalServer:
    """One `llama_cpp.server` subprocess serving one GGUF under the alias `alias`."""

    engine = "llama-cpp-python"
    """Which program `command()` runs (subclasses: `engine.LlamaServer`)."""

    def __init__(self, model_path: str | Path, log_path: str | Path, n_ctx: int = 4096, alias: str = "local",
                 host: str = "127.0.0.1", port: int | None = None, startup_timeout_s: float = 180.0,
                 extra_args: tuple[str, ...] = ()) -> None:
        self.model_path = Path(model_path)
        self.log_path = Path(log_path)
        self.n_ctx = n_ctx
        self.alias = alias
        self.host = host
        self.port = port
        self.startup_timeout_s = startup_timeout_s
        self.extra_args = tuple(extra_args)
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        """Times the watchdog restarted a server that had died."""
        self._wanted = False  # True between start() and stop(): a death then means restart
        self._proc_lock = threading.RLock()
        self._watchdog: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "llama_cpp.server", "--model", str(self.model_path),
                "--model_alias", self.alias, "--host", self.host, "--port", str(self.port),
                "--n_ctx", str(self.n_ctx),
                # a new request must queue behind, not cut off, one in flight (chat_many sends several)
                "--interrupt_requests", "False", *self.extra_args]

    def _spawn(self) -> None:
        with open(self.log_path, "ab") as log:
            log.write(f"\n==== {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(self.command())}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=server_env(),
                start_new_session=True,  # Ctrl-C in a terminal reaches us, and we stop it in order
                # PR_SET_PDEATHSIG fires when the forking *thread* ends: only the main thread and the
                # watchdog (which lives until stop()) outlive their server
                preexec_fn=_die_with_parent if threading.current_thread() in (threading.main_thread(),
                                                                              self._watchdog) else None)

    def start(self, supervise: bool = True) -> "LocalServer":
        """Start and wait until it answers; `supervise`: restart it (same port) if it dies before `stop()`."""
        if self.proc is not None and self.proc.poll() is None:
            return self
        if not self.model_path.is_file():
            raise TeacherServerError(f"model file {self.model_path} does not exist")
        self.port = self.port or free_port(self.host)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        _install_handlers()
        with self._proc_lock:
            self._spawn()
        with _LIVE_LOCK:
            _LIVE.add(self)
        try:
            self._wait_ready()
        except BaseException:  # includes Ctrl-C while waiting
            self.stop()
            raise
        self._wanted = True
        if supervise and (self._watchdog is None or not self._watchdog.is_alive()):
            self._watchdog = threading.Thread(target=self._watch, name="teacher-server-watchdog", daemon=True)
            self._watchdog.start()
        return self

    def _watch(self, poll_s: float = 0.5) -> None:
        """Restart a server that exited while wanted; stop after `MAX_RESTARTS`."""
        while self._wanted:
            time.sleep(poll_s)
            with self._proc_lock:
                proc = self.proc
                if not self._wanted or proc is None or proc.poll() is None:
                    continue
                if self.restarts >= MAX_RESTARTS:
                    _log.error("local teacher server died again (exit %s) after %d restarts; giving up "
                               "(log %s)", proc.returncode, self.restarts, self.log_path)
                    return
                self.restarts += 1
                _log.warning("local teacher server exited with code %s; restarting it on port %s "
                             "(restart %d, log %s)", proc.returncode, self.port, self.restarts, self.log_path)
                try:
                    self._spawn()
                except OSError as e:
                    _log.error("restarting the local teacher server failed: %s", e)
                    continue
            try:  # not under the lock: stop() must not wait for a model to load
                self._wait_ready()
            except TeacherServerError as e:
                if self._wanted:
                    _log.error("restarting the local teacher server failed: %s", e)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        url = f"http://{self.host}:{self.port}/v1/models"
        while True:
            proc = self.proc
            if proc is None:
                raise TeacherServerError(f"local teacher server (log {self.log_path}) was stopped while starting")
            code = proc.poll()
            if code is not None:
                raise TeacherServerError(
                    f"local teacher server exited with code {code} while starting "
                    f"(model {self.model_path}); last lines of {self.log_path}:\n{log_tail(self.log_path)}")
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            if time.monotonic() > deadline:
                raise TeacherServerError(
                    f"local teacher server did not answer {url} within {self.startup_timeout_s:.0f} s; "
                    f"last lines of {self.log_path}:\n{log_tail(self.log_path)}")
            time.sleep(0.2)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = 10.0) -> None:
        self._wanted = False
        with self._proc_lock:
            proc, self.proc = self.proc, None
        with _LIVE_LOCK:
            _LIVE.discard(self)
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout_s)

    close = stop

    def __enter__(self) -> "LocalServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def server_log_path(rd: RunDir) -> Path:
    return Path(rd.path) / "teacher" / "server.log"
