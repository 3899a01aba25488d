"""Which program serves the local teacher: llama.cpp's own `llama-server`, or llama-cpp-python's.

`llama-server` is built once at set-up from the llama.cpp sources vendored in the llama-cpp-python
0.3.36 sdist (`scripts/build_teacher_engine.sh`, cached in `~/.cache/phi_utils/engine`). Compared
with `python -m llama_cpp.server` it decodes several requests at once (parallel slots, continuous
batching: one weight read per step serves every slot), keeps each slot's prompt in its KV cache
(the rating rubric is a prefix of every rating prompt, so only the snippet is prefilled), computes
top-k logprobs in C++ (so a rating is one request, not two), and can speculate with a draft model.

`teacher.engine`: `auto` (llama-server when built, else llama-cpp-python with one warning),
`llama-server` (required: error if missing) or `llama-cpp-python`.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from ..config import TeacherConfig, environ_restored
from .server import (ENV_BASE_URL, ENV_ENGINE, ENV_LABEL, ENV_LOCAL_MODEL, ENV_SHA256, LocalServer,
                     TeacherServerError, server_log_path)

if TYPE_CHECKING:
    from ..rundir import RunDir

log = logging.getLogger("phi_utils.teacher")

ENGINE_VERSION = "0.3.36"
"""The llama-cpp-python sdist whose vendored llama.cpp is built (the same llama.cpp as the Python server)."""
LLAMA_SERVER = "llama-server"
LLAMA_CPP_PYTHON = "llama-cpp-python"
ENGINES = ("auto", LLAMA_SERVER, LLAMA_CPP_PYTHON)


def engine_dir() -> Path:
    """`$PHI_ENGINE_DIR` or `~/.cache/phi_utils/engine`, where the build script leaves the binary."""
    return Path(os.environ.get("PHI_ENGINE_DIR") or Path.home() / ".cache" / "phi_utils" / "engine").expanduser()


@lru_cache(maxsize=8)
def _runs(binary: str) -> bool:
    try:
        return subprocess.run([binary, "--version"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def cpu_id() -> str:
    """A hash of this CPU's feature flags, as `scripts/build_teacher_engine.sh` records a native build's."""
    import hashlib

    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            line = next((x for x in f if x.startswith("flags")), "")
    except OSError:
        return "portable"
    flags = sorted(line.partition(":")[2].split())
    return hashlib.sha256("".join(f + "\n" for f in flags).encode()).hexdigest()[:16] if flags else "portable"


def llama_server_binary() -> Path | None:
    """The built `llama-server`, or None when set-up did not build it, it does not run here, or it was
    built natively for another CPU (it could stop on an illegal instruction)."""
    path = engine_dir() / f"llama-server-{ENGINE_VERSION}" / "llama-server"
    if not (path.is_file() and os.access(path, os.X_OK) and _runs(str(path))):
        return None
    built_for = build_info().get("cpu", "portable")
    if built_for not in ("portable", cpu_id()):
        log.warning("%s was built for another CPU (flags %s, this one %s); run scripts/build_teacher_engine.sh",
                    path, built_for, cpu_id())
        return None
    return path


def build_info() -> dict[str, Any]:
    """BUILD_INFO.json written by the build script (version string, flags, date), or {}."""
    try:
        return json.loads((engine_dir() / f"llama-server-{ENGINE_VERSION}" / "BUILD_INFO.json").read_text())
    except (OSError, ValueError):
        return {}


_WARNED = False


def choose_engine(wanted: str) -> str:
    """The engine to start for `teacher.engine = wanted`; `auto` falls back with one warning."""
    global _WARNED
    if wanted not in ENGINES:
        raise TeacherServerError(f"teacher.engine must be one of {', '.join(ENGINES)}, got {wanted!r}")
    if wanted == LLAMA_CPP_PYTHON:
        return LLAMA_CPP_PYTHON
    if llama_server_binary() is not None:
        return LLAMA_SERVER
    if wanted == LLAMA_SERVER:
        raise TeacherServerError(
            f"teacher.engine='llama-server' but {engine_dir()}/llama-server-{ENGINE_VERSION}/llama-server is "
            f"missing or does not run; build it with `bash scripts/build_teacher_engine.sh` or set "
            f"teacher.engine='auto'")
    if not _WARNED:
        _WARNED = True
        log.warning("llama.cpp's llama-server is not built (%s); the local teacher uses llama-cpp-python's "
                    "server, one request at a time. Build it with `bash scripts/build_teacher_engine.sh`.",
                    engine_dir())
    return LLAMA_CPP_PYTHON


@dataclass(frozen=True)
class EngineSettings:
    """The teacher settings a server process needs (from `TeacherConfig`)."""

    engine: str = "auto"
    n_ctx: int = 4096
    parallel: int = 4
    threads: int = 0
    threads_batch: int = 0
    draft_model: str | None = None
    draft_max: int = 8

    @classmethod
    def from_config(cls, cfg: TeacherConfig) -> "EngineSettings":
        return cls(engine=getattr(cfg, "engine", "auto"), n_ctx=cfg.n_ctx, parallel=getattr(cfg, "parallel", 1),
                   threads=getattr(cfg, "threads", 0), threads_batch=getattr(cfg, "threads_batch", 0),
                   draft_model=getattr(cfg, "draft_model", None), draft_max=getattr(cfg, "draft_max", 8))


class LlamaServer(LocalServer):
    """llama.cpp's `llama-server`: `parallel` slots of `n_ctx` tokens each, continuous batching,
    per-slot prompt cache, optional draft model. Same lifecycle (and restart) as `LocalServer`."""

    engine = LLAMA_SERVER

    def __init__(self, binary: str | Path, model_path: str | Path, log_path: str | Path, settings: EngineSettings,
                 alias: str = "local", **kw: Any) -> None:
        super().__init__(model_path, log_path, n_ctx=settings.n_ctx, alias=alias, **kw)
        self.binary = Path(binary)
        self.settings = settings

    def command(self) -> list[str]:
        s = self.settings
        slots = max(1, int(s.parallel))
        cmd = [str(self.binary), "--model", str(self.model_path), "--alias", self.alias,
               "--host", self.host, "--port", str(self.port),
               # each slot its own n_ctx and its own KV stream: a request's attention never spans
               # another's cells, so its output does not depend on what else is decoded with it
               "--ctx-size", str(s.n_ctx * slots), "--parallel", str(slots), "--no-kv-unified",
               "--cont-batching", "--no-webui", "--metrics", "--slot-prompt-similarity", "0.5",
               # 2 cores: larger micro-batches buy nothing, smaller keep one long prefill from stalling decoding
               "--batch-size", "512", "--ubatch-size", "256"]
        if s.threads > 0:
            cmd += ["--threads", str(s.threads)]
        if s.threads_batch > 0:
            cmd += ["--threads-batch", str(s.threads_batch)]
        if s.draft_model:
            from .models import resolve_model

            draft, _, _ = resolve_model(s.draft_model)
            # --spec-type: without it this llama.cpp loads the draft model and never drafts (default "none")
            cmd += ["--model-draft", str(draft), "--spec-type", "draft-simple", "--spec-draft-n-max", str(s.draft_max)]
        return [*cmd, *self.extra_args]


def make_server(cfg: TeacherConfig, model_path: str | Path, log_path: str | Path, alias: str) -> LocalServer:
    """The (not yet started) server `teacher.engine` asks for: `LlamaServer`, or `LocalServer` as fallback."""
    settings = EngineSettings.from_config(cfg)
    if choose_engine(settings.engine) == LLAMA_SERVER:
        binary = llama_server_binary()
        assert binary is not None
        return LlamaServer(binary, model_path, log_path, settings, alias=alias)
    return LocalServer(model_path, log_path, n_ctx=cfg.n_ctx, alias=alias)


@contextmanager
def pipeline_server(teacher_cfg: TeacherConfig, rd: RunDir) -> Iterator[LocalServer | None]:
    """One local server for a whole pipeline run; kernels attach via `$PHI_TEACHER_BASE_URL`.

    No-op (yields None) for the `openai` backend, or when a server is already exported for the same
    `local_model`. Restores the environment and stops the server on exit, error or Ctrl-C.
    """
    if teacher_cfg.backend != "local" or (
            os.environ.get(ENV_BASE_URL) and os.environ.get(ENV_LOCAL_MODEL) == teacher_cfg.local_model):
        yield None
        return
    from .models import resolve_model

    path, digest, label = resolve_model(teacher_cfg.local_model)
    server = make_server(teacher_cfg, path, server_log_path(rd), alias=Path(path).stem)
    server.start()
    try:
        with environ_restored((ENV_BASE_URL, ENV_LABEL, ENV_SHA256, ENV_LOCAL_MODEL, ENV_ENGINE)):
            os.environ.update({ENV_BASE_URL: server.base_url, ENV_LABEL: label, ENV_SHA256: digest,
                               ENV_LOCAL_MODEL: teacher_cfg.local_model, ENV_ENGINE: server.engine})
            yield server
    finally:
        server.stop()
