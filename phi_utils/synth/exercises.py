"""Synthetic CodeExercises (paper §2.2 and Figure 3.1, notebook 04).

The paper's ~880k exercises are docstrings of functions to complete, made diverse "by constraining
the function names". Here each request draws a function name from a constrained vocabulary
(`verb[_adjective]_noun`, see `topics.py`), a topic and an audience, with a per-sample seed; the
teacher returns the signature + docstring, a solution and assert tests in one ```python block (JSON
replies are parsed too). Malformed replies are repaired where possible and counted by reason.

Validation (the paper only says GPT-3.5's data "has a high error rate"): each solution runs against
its own tests in the sandbox; only passing exercises are kept and the pass rate is reported.
Decontamination is built in (`decontaminate.py`): docstrings sharing a 13-gram with, or embedding
very close to, a HumanEval/MBPP problem are flagged and excluded by default.

Outputs under `rd.path/"exercises"`: `code_exercises` (task_id, prompt, solution, tests,
entry_point, text, teacher, origin, ...), `exercises.jsonl` (every candidate with its verdict),
`metrics.json`.
"""

from __future__ import annotations

import ast
import sys
import textwrap
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..config import ProfileConfig, TrainConfig
from ..rundir import RunDir, read_jsonl, save_dataset, write_json_atomic, write_jsonl_atomic
from .common import funnel, open_teacher, run_sandboxed, tokens_by_origin
from .diversity import approx_tokens, diversity_report, near_duplicate_mask
from .parsing import ParsedExercise, parse_exercise
from .topics import ExerciseDraw, draw_exercise, sample_seed

STEP = "exercises"
SYSTEM = "You are an expert Python teacher who writes programming exercises with correct reference solutions."
STATUSES = ("kept", "teacher_error", "parse_failed", "failed_tests", "timeout", "contaminated", "near_duplicate")
FILTERS = (("reply", ("teacher_error",)), ("parsed", ("parse_failed",)), ("passes_tests", ("failed_tests", "timeout")),
           ("not_contaminated", ("contaminated",)), ("not_near_duplicate", ("near_duplicate",)))
"""The checks in order, each with the verdicts it drops (the funnel of `ExercisesResult`)."""


def exercise_messages(draw: ExerciseDraw) -> list[dict[str, str]]:
    user = (f"Write a short Python exercise about {draw.topic} for {draw.audience}.\n"
            f"The function must be named `{draw.function_name}`. Give:\n"
            "1. the function signature with type hints and a docstring that states the task, its "
            "parameters and what it returns;\n"
            "2. a correct implementation;\n"
            f"3. three `assert` statements that call `{draw.function_name}` and check its results.\n"
            "Use only the Python standard library. Reply with a single ```python code block and nothing else.")
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


# --------------------------------------------------------------------------- analysis helpers
def imports_of(code: str) -> list[str]:
    """Top-level module names imported anywhere in the code (for the Figure 3.1 histogram)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    mods: set[str] = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            mods |= {a.name.split(".")[0] for a in n.names}
        elif isinstance(n, ast.ImportFrom) and n.module and not n.level:
            mods.add(n.module.split(".")[0])
    return sorted(mods)


def difficulty(code: str) -> dict[str, int]:
    """Size and branching of a solution: lines, AST nodes, decision points (if/for/while/bool ops...)."""
    lines = [l for l in code.splitlines() if l.strip() and not l.strip().startswith("#")]
    try:
        tree = ast.parse(textwrap.dedent(code))  # a solution is an indented function body
    except SyntaxError:
        return {"lines": len(lines), "ast_nodes": 0, "decisions": 0}
    nodes = list(ast.walk(tree))
    decisions = sum(isinstance(n, (ast.If, ast.For, ast.While, ast.IfExp, ast.comprehension, ast.Try,
                                   ast.BoolOp, ast.ExceptHandler)) for n in nodes)
    return {"lines": len(lines), "ast_nodes": len(nodes), "decisions": decisions}


def stdlib_share(import_counts: dict[str, int]) -> float | None:
    """Share of imports that are standard-library modules."""
    total = sum(import_counts.values())
    if not total:
        return None
    std = getattr(sys, "stdlib_module_names", set())
    return sum(v for k, v in import_counts.items() if k in std) / total


# --------------------------------------------------------------------------- programs
def exercise_program(prompt: str, solution: str, tests: Sequence[str]) -> str:
    return prompt.rstrip("\n") + "\n" + solution.rstrip("\n") + "\n\n" + "\n".join(tests) + "\n"


def validate_programs(programs: Sequence[str], timeout_s: float, desc: str = "running exercises") -> list[tuple[str, str]]:
    """(status, detail) per program: `kept` when it ran to its end, else `failed_tests`/`timeout`."""
    out = []
    for res in run_sandboxed(programs, timeout_s, desc):
        if res.passed:
            out.append(("kept", ""))
        elif res.status == "timed out":
            out.append(("timeout", res.detail or "timed out"))
        else:
            out.append(("failed_tests", (res.detail or res.stderr[-300:]).strip()))
    return out


# --------------------------------------------------------------------------- generation
def generate_exercises(teacher: Any, n: int, base_seed: int, max_tokens: int,
                       desc: str = "exercises") -> list[dict[str, Any]]:
    """`n` raw replies with their draws (name, topic, audience, seed)."""
    draws = [draw_exercise(sample_seed(base_seed, "exercise", i)) for i in range(n)]
    reqs = [{"messages": exercise_messages(d), "max_tokens": max_tokens, "seed": d.seed, "sample_index": i}
            for i, d in enumerate(draws)]
    results = teacher.chat_many(reqs, desc=desc) if reqs else []
    return [{**d.to_dict(), "reply": r.text or "", "teacher": teacher.label, "completion_tokens": r.completion_tokens,
             "cached": r.cached, "finish_reason": r.finish_reason, "error": r.error, "origin": "generated"}
            for d, r in zip(draws, results)]


def parse_rows(rows: list[dict[str, Any]]) -> None:
    """Fill prompt/solution/tests/entry_point (or status `parse_failed` + reason) from each reply."""
    for r in rows:
        if r.get("error") or not r.get("reply", "").strip():
            r.update(status="teacher_error", detail=str(r.get("error") or "empty reply"))
            continue
        ex, why = parse_exercise(r["reply"], r.get("function_name"))
        if ex is None:
            r.update(status="parse_failed", detail=why)
            continue
        _fill(r, ex)
        r["name_followed"] = ex.entry_point == r.get("function_name")


def _fill(r: dict[str, Any], ex: ParsedExercise) -> None:
    r.update(status="pending", detail="", entry_point=ex.entry_point, prompt=ex.prompt, solution=ex.solution,
             tests=list(ex.tests), docstring=ex.docstring)


def _open_rows(source: str, limit: int) -> list[dict[str, Any]]:
    """Open exercises (no tests of their own): kept when the joined code parses and runs."""
    from .opendata import exercise_rows

    out = []
    for i, r in enumerate(exercise_rows(source, limit)):
        row: dict[str, Any] = {"seed": None, "function_name": None, "topic": None, "audience": None, "category": None,
                               "reply": None, "teacher": r["teacher"], "origin": r["origin"], "cached": None,
                               "completion_tokens": None, "error": None, "name_followed": None, "open_index": i}
        code = r["code"]
        if code is None:
            row.update(status="parse_failed", detail="syntax_error (problem + solution do not parse)")
        else:
            tree = ast.parse(code)
            fn = next((n for n in tree.body if isinstance(n, ast.FunctionDef)), None)
            doc = ast.get_docstring(fn) if fn else None
            if fn is None or not doc:
                row.update(status="parse_failed", detail="no_function" if fn is None else "no_docstring")
            else:
                lines = code.splitlines()
                doc_end = fn.body[0].end_lineno
                body = fn.body[1:]
                if not body or all(isinstance(b, ast.Pass) or (isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant))
                                   for b in body):
                    row.update(status="parse_failed", detail="empty_solution")
                    out.append(row)
                    continue
                row.update(status="pending", detail="", entry_point=fn.name, docstring=doc, tests=[],
                           prompt="\n".join(lines[:doc_end]) + "\n", solution="\n".join(lines[doc_end:]) + "\n")
        out.append(row)
    return out


# --------------------------------------------------------------------------- stage
@dataclass
class ExercisesResult:
    """The `exercises` step's `metrics.json`, typed (what `run_exercises` returns)."""

    funnel_generated: dict[str, int]
    """Generated exercises surviving each check in order (generated, reply, parsed, ..., not_near_duplicate)."""
    funnel_topup: dict[str, int]
    """The same for the open top-up exercises."""
    status_generated: dict[str, int]
    """Verdict (`STATUSES`) -> generated exercises."""
    status_topup: dict[str, int]
    """Verdict -> top-up exercises."""
    parse_failures: dict[str, int]
    """Why generated replies failed to parse -> replies."""
    parse_rate: float | None
    """Share of generated replies that parsed (None without any)."""
    pass_rate_of_parsed: float | None
    """Share of parsed exercises whose solution passes its own tests."""
    pass_rate_of_generated: float | None
    """The same over all generated exercises."""
    name_followed_rate: float | None
    """Share of parsed exercises that use the drawn function name."""
    contamination: dict[str, Any]
    """Decontamination: checked, flagged, ngram_flagged, embedding_flagged, excluded, max_similarity."""
    imports: dict[str, int]
    """Imported module -> kept exercises, most common first."""
    stdlib_import_share: float | None
    """Share of the imports from the standard library."""
    exercises_with_imports: int
    """Kept exercises that import anything."""
    difficulty: dict[str, list[int]]
    """Per kept solution: lines, ast_nodes, decisions."""
    tests_per_exercise: list[int]
    """Assert tests of each kept exercise."""
    generation: dict[str, Any]
    """Generation throughput: exercises, wall_s, cached, exercises_per_min."""
    kept_by_origin: dict[str, int]
    """Origin (generated / open top-up) -> kept exercises."""
    tokens_by_origin: dict[str, int]
    """Approximate tokens of the kept exercises per origin."""
    diversity: dict[str, Any] | None
    """`diversity_report` of all kept exercises (None under 2)."""
    diversity_generated: dict[str, Any] | None
    """The same for the kept generated exercises only."""
    teacher: str | None
    """Label of the teacher that wrote the exercises (None when none was used)."""
    notes: list[str]
    """Notes on the run (sources, top-ups, shortfalls)."""
    wall_s: float
    """Seconds from the step's start until the exercises were measured (before the datasets were written)."""
    benchmarks_checked: dict[str, int]
    """Benchmark -> problems the exercises were checked against (humaneval, mbpp)."""

    retired_fields = ("finetune_budget",)
    """Keys earlier versions wrote that this one ignores (the finetuning budget belongs to the finetuning
    step's configuration: `finetune_epochs` computes it when shown)."""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ExercisesResult":
        """From `metrics.json`'s dict (its keys are the fields)."""
        return cls(**d)


def run_exercises(cfg: ProfileConfig, rd: RunDir, force: bool = False) -> ExercisesResult:
    """Notebook 04: generate (or load) exercises, parse, run against their tests, decontaminate,
    dedup, measure, and write `exercises/code_exercises`. Returns the metrics, typed."""
    cfg = rd.view(STEP, cfg)
    ec = cfg.exercises
    with rd.step(STEP, force, config=ec) as rec:
        if rec is None:
            return load_metrics(rd)
        out_dir = Path(rd.path) / STEP
        t_start = time.time()
        notes: list[str] = []
        rows: list[dict[str, Any]] = []
        teacher_label = None
        gen_wall = 0.0
        if ec.source == "generate":
            if ec.n_exercises:
                teacher = open_teacher(cfg, rd)
                try:
                    teacher_label = teacher.label
                    t0 = time.time()
                    rows = generate_exercises(teacher, ec.n_exercises, cfg.seed, ec.max_tokens)
                    gen_wall = time.time() - t0
                finally:
                    teacher.close()
            parse_rows(rows)
        else:
            rows = _open_rows(ec.source, ec.n_exercises)
            notes.append(f"source: open dataset {ec.source} instead of generation (no tests: kept when the code runs)")
        topup: list[dict[str, Any]] = []
        if ec.topup_source and ec.topup_max:
            from .opendata import OpenDataError, missing_local

            if missing_local(ec.topup_source):
                notes.append(f"top-up source {ec.topup_source} not found (SHARED_DATA absent?); exercises are generated only")
            else:
                try:
                    topup = _open_rows(ec.topup_source, ec.topup_max)
                    notes.append(f"top-up: {len(topup)} exercises from {ec.topup_source} (no tests of their own: "
                                 "kept when signature + solution run)")
                except OpenDataError as e:
                    notes.append(f"top-up source unavailable ({e}); exercises are generated only")

        allrows = rows + topup
        pend = [r for r in allrows if r["status"] == "pending"]
        verdicts = validate_programs([exercise_program(r["prompt"], r["solution"], r["tests"]) for r in pend],
                                     ec.run_timeout_s)
        for r, (st, det) in zip(pend, verdicts):
            r.update(status=st, detail=det)

        # decontamination (flag everything that passed; exclude when configured)
        passing = [r for r in allrows if r["status"] == "kept"]
        from .decontaminate import benchmark_texts, check_contamination

        refs = benchmark_texts()
        flags = check_contamination([r["docstring"] for r in passing], ec.ngram, ec.embedding_threshold)
        for r, f in zip(passing, flags):
            r["contamination"] = f.to_dict()
            if f.flagged and ec.decontaminate:
                r.update(status="contaminated", detail=f"n-gram {f.ngram_matches[:3]} / nearest {f.nearest} "
                                                       f"cos {f.max_similarity:.3f}" if f.max_similarity is not None else "n-gram")
        pool = [r for r in allrows if r["status"] == "kept"]
        for r, dup in zip(pool, near_duplicate_mask([r["prompt"] + r["solution"] for r in pool], ec.near_dup_threshold)):
            if dup:
                r["status"], r["detail"] = "near_duplicate", "MinHash Jaccard >= threshold with an earlier exercise"
        kept = [r for r in allrows if r["status"] == "kept"]

        if not any(r["status"] == "kept" for r in rows) and rows:
            notes.append("no generated exercise passed its tests" +
                         ("; CodeExercises comes from the open top-up set" if topup else "; CodeExercises is empty"))
        result = _measure(rows, topup, kept, flags, ec, gen_wall, teacher=teacher_label,
                          notes=notes, t_start=t_start,
                          benchmarks_checked={"humaneval": sum(b.benchmark == "humaneval" for b in refs),
                                              "mbpp": sum(b.benchmark == "mbpp" for b in refs)})
        write_jsonl_atomic(out_dir / "exercises.jsonl", allrows)
        save_code_exercises(kept, out_dir / "code_exercises")
        write_json_atomic(out_dir / "metrics.json", result)
        rec.counts = {"generated": len(rows), "topup": len(topup), "kept": len(kept),
                      **{f"dropped_{s}": sum(r["status"] == s for r in allrows) for s in STATUSES if s != "kept"}}
        rec.extra = {"teacher": teacher_label, "notes": notes}
        return result


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _measure(rows: list[dict[str, Any]], topup: list[dict[str, Any]], kept: list[dict[str, Any]], flags: list[Any],
             ec: Any, gen_wall: float, *, teacher: str | None, notes: list[str], t_start: float,
             benchmarks_checked: dict[str, int]) -> ExercisesResult:
    """The step's result; `wall_s` ends here, after the diversity reports (before the datasets are written)."""
    ran = [r for r in rows if r["status"] not in ("teacher_error", "parse_failed")]
    passed = [r for r in ran if r["status"] not in ("failed_tests", "timeout")]
    texts = [r["prompt"] + r["solution"] for r in kept]
    imports: Counter[str] = Counter()
    for t in texts:
        imports.update(imports_of(t))
    diffs = [difficulty(r["solution"]) for r in kept]
    tokens = tokens_by_origin([r["origin"] for r in kept], [approx_tokens(t) for t in texts])
    gen_kept = [t for r, t in zip(kept, texts) if r["origin"] == "generated"]
    diversity = diversity_report(texts, ec.near_dup_threshold) if len(texts) >= 2 else None
    diversity_generated = diversity_report(gen_kept, ec.near_dup_threshold) if len(gen_kept) >= 2 else None
    similarities = [f.max_similarity for f in flags if f.max_similarity is not None]
    return ExercisesResult(
        funnel_generated=funnel(rows, FILTERS), funnel_topup=funnel(topup, FILTERS),
        status_generated=dict(Counter(r["status"] for r in rows)),
        status_topup=dict(Counter(r["status"] for r in topup)),
        parse_failures=dict(Counter(r["detail"] for r in rows if r["status"] == "parse_failed")),
        parse_rate=_rate(len(ran), len(rows)), pass_rate_of_parsed=_rate(len(passed), len(ran)),
        pass_rate_of_generated=_rate(len(passed), len(rows)),
        name_followed_rate=_rate(sum(bool(r.get("name_followed")) for r in ran), len(ran)),
        contamination={"checked": len(flags), "flagged": sum(f.flagged for f in flags),
                       "ngram_flagged": sum(bool(f.ngram_matches) for f in flags),
                       "embedding_flagged": sum(s >= ec.embedding_threshold for s in similarities),
                       "excluded": ec.decontaminate, "max_similarity": max(similarities, default=None)},
        imports=dict(imports.most_common()), stdlib_import_share=stdlib_share(dict(imports)),
        exercises_with_imports=sum(bool(imports_of(t)) for t in texts),
        difficulty={k: [d[k] for d in diffs] for k in ("lines", "ast_nodes", "decisions")},
        tests_per_exercise=[len(r.get("tests") or []) for r in kept],
        generation={"exercises": len(rows), "wall_s": gen_wall, "cached": sum(bool(r.get("cached")) for r in rows),
                    "exercises_per_min": (60 * len(rows) / gen_wall) if gen_wall > 0 else None},
        kept_by_origin=dict(Counter(r["origin"] for r in kept)), tokens_by_origin=tokens,
        diversity=diversity, diversity_generated=diversity_generated,
        teacher=teacher, notes=notes, wall_s=time.time() - t_start, benchmarks_checked=benchmarks_checked)


def finetune_epochs(exercise_tokens: int, ft: TrainConfig) -> dict[str, Any]:
    """The finetuning token budget (steps x batch x sequence length) and the epochs it makes over
    CodeExercises (approximate tokens: the tokenizer is trained later). The paper: 6,000 steps x 256
    x 2,048 = ~3.1B tokens over ~180M, i.e. ~17 epochs (derived from its reported sizes)."""
    budget = int(ft.max_steps) * int(ft.global_batch_size) * int(ft.seq_len)
    return {"steps": int(ft.max_steps), "tokens_per_step": int(ft.global_batch_size) * int(ft.seq_len),
            "budget_tokens": budget, "exercise_tokens": int(exercise_tokens),
            "epochs": (budget / exercise_tokens) if exercise_tokens else None,
            "token_unit": "approx (word-and-symbol pieces) for the exercises"}


def save_code_exercises(kept: list[dict[str, Any]], path: Path) -> None:
    """CodeExercises in the brief's schema (+ origin, seed, function_name, topic)."""
    from datasets import Dataset

    data: dict[str, list[Any]] = {
        "task_id": [f"{'gen' if r['origin'] == 'generated' else 'open'}/{r.get('seed') if r.get('seed') is not None else r.get('open_index')}"
                    for r in kept],
        "prompt": [r["prompt"] for r in kept], "solution": [r["solution"] for r in kept],
        "tests": [list(r.get("tests") or []) for r in kept], "entry_point": [r["entry_point"] for r in kept],
        "text": [r["prompt"] + r["solution"] for r in kept], "teacher": [r["teacher"] for r in kept],
        "origin": [r["origin"] for r in kept], "seed": [(-1 if r.get("seed") is None else int(r["seed"])) for r in kept],
        "function_name": [r.get("function_name") or "" for r in kept], "topic": [r.get("topic") or "" for r in kept],
    }
    data["n_tokens"] = [approx_tokens(t) for t in data["text"]]
    save_dataset(Dataset.from_dict(data), path)


def load_metrics(rd: RunDir) -> ExercisesResult:
    """The complete step's `metrics.json`, typed."""
    from ..rundir import read_result

    return read_result(ExercisesResult, Path(rd.require(STEP)) / "metrics.json")


def load_candidates(rd: RunDir) -> list[dict[str, Any]]:
    """Every exercise candidate of the run with its verdict."""
    return read_jsonl(Path(rd.require(STEP)) / "exercises.jsonl")


def conclusions(metrics: ExercisesResult, finetune: TrainConfig) -> list[str]:
    """Sentences on the teacher's error rate and CodeExercises' size, from the metrics, and the epochs the
    finetuning budget (`finetune`, the run's finetuning TrainConfig) makes over it."""
    from ..stats import wilson_interval

    out = []
    fg = metrics.funnel_generated
    n = fg.get("generated", 0)
    if n:
        k = int(round((metrics.pass_rate_of_generated or 0.0) * n))
        lo, hi = wilson_interval(k, n)
        out.append(f"{k} of {n} generated exercises parse and pass their own tests ({k / n:.0%}, 95% CI {lo:.0%}-{hi:.0%}).")
    ct = metrics.contamination
    out.append(f"Decontamination flagged {ct['flagged']} of {ct['checked']} passing exercises.")
    fb = finetune_epochs(sum(metrics.tokens_by_origin.values()), finetune)
    if fb and fb.get("epochs") is not None:
        out.append(f"CodeExercises holds {fb['exercise_tokens']:,} tokens ("
                   + ", ".join(f"{o} {t:,}" for o, t in metrics.tokens_by_origin.items())
                   + f"); the finetuning budget of {fb['budget_tokens']:,} tokens ({fb['steps']} steps) is "
                   f"{fb['epochs']:.1f} epochs over it (paper, derived from its reported sizes: ~17).")
    return out
