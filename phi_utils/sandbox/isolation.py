"""Which isolation this machine gives: bubblewrap (file system, network, PID namespaces + limits)
where it works, else resource limits alone, said loudly once."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import warnings
from typing import Iterable

from .limits import SandboxLimits

_LOCK = threading.Lock()
_BWRAP: list[str | None] = []  # the probe's answer, once
_WARNED = [False]


def bwrap_path() -> str | None:
    """Path of a working bubblewrap, or None (probed once: some kernels forbid user namespaces).
    `$PHI_BWRAP` names another binary; `PHI_SANDBOX_NO_BWRAP=1` disables it."""
    with _LOCK:
        if _BWRAP:
            return _BWRAP[0]
        found = None
        path = os.environ.get("PHI_BWRAP", shutil.which("bwrap") or "")
        if path and os.environ.get("PHI_SANDBOX_NO_BWRAP") != "1":
            try:
                probe = subprocess.run([path, *bwrap_args(64, [], False), "--", "/bin/true"],
                                       capture_output=True, timeout=20)
                if probe.returncode == 0:
                    found = path
                else:
                    warnings.warn(f"bubblewrap at {path} does not work here ({probe.stderr.decode(errors='replace').strip()})",
                                  RuntimeWarning, stacklevel=3)
            except (OSError, subprocess.SubprocessError) as e:
                warnings.warn(f"bubblewrap at {path} does not work here ({e})", RuntimeWarning, stacklevel=3)
        _BWRAP.append(found)
        return found


def isolation() -> str:
    """`bwrap` (file system, network and PID isolation + limits) or `rlimits` (limits only)."""
    return "bwrap" if bwrap_path() else "rlimits"


def bwrap_for(limits: SandboxLimits) -> str | None:
    """The bubblewrap to run under `limits`, or None for limits alone: raises when the limits require
    bubblewrap and there is none, warns once when falling back."""
    if not limits.use_bwrap:
        return None
    bwrap = bwrap_path()
    if bwrap is None:
        if limits.require_bwrap:
            raise RuntimeError("bubblewrap (`bwrap`) is required (SandboxLimits.require_bwrap) but missing or unusable; "
                               "install the Debian/Ubuntu package `bubblewrap`")
        _warn_weak()
    return bwrap


def _warn_weak() -> None:
    if not _WARNED[0]:
        _WARNED[0] = True
        msg = ("SANDBOX ISOLATION IS WEAKER: bubblewrap (`bwrap`, Debian/Ubuntu package `bubblewrap`) is missing "
               "or unusable, so untrusted programs run with resource limits only - they can read and WRITE "
               "your files and use the network. Install bubblewrap (apt-get install bubblewrap).")
        warnings.warn(msg, RuntimeWarning, stacklevel=3)
        print(f"WARNING: {msg}", file=sys.stderr)


def bwrap_args(tmp_size_mb: int, ro_binds: Iterable[str], network: bool, python: str = sys.executable) -> list[str]:
    """bubblewrap's options: a read-only view of the system, a private size-capped `/tmp` (the working
    directory), read-only `/dev`, no network unless asked, its own namespaces, death with its parent."""
    size = str(int(tmp_size_mb) << 20)
    args = ["--unshare-all"]
    if network:
        args.append("--share-net")
    args += ["--die-with-parent", "--new-session",
             "--ro-bind", "/", "/",
             "--dev", "/dev", "--size", size, "--tmpfs", "/dev/shm", "--remount-ro", "/dev",
             "--proc", "/proc",
             "--size", size, "--tmpfs", "/tmp"]
    for p in [*ro_binds, *hidden_interpreter_paths(python)]:
        if os.path.exists(p):
            args += ["--ro-bind", p, p]
    args += ["--chdir", "/tmp", "--setenv", "HOME", "/tmp", "--setenv", "TMPDIR", "/tmp"]
    return args


def hidden_interpreter_paths(python: str) -> list[str]:
    """The interpreter's installation (a venv root or a prefix) when it lives under /tmp or /var/tmp,
    e.g. a venv in a CI checkout there: the sandbox's private tmpfs would hide it, so it is bound
    back read-only."""
    roots = {os.path.dirname(os.path.dirname(os.path.abspath(python))),
             os.path.dirname(os.path.dirname(os.path.realpath(python)))}
    return sorted(r for r in roots if any(r == t or r.startswith(t + os.sep) for t in ("/tmp", "/var/tmp")))
