"""Stage functions of notebooks 09 (§3 qualitative comparisons) and 10 (§4 unconventional problems).

`run_qualitative(cfg, rd, force)` writes `qualitative/`:
    completions.jsonl   one record per (model, prompt): completion, program, verdicts, API findings
    summary.csv         model, prompt, verdict (runs / crashes / calls non-existent API / no code)
    table.html          the side-by-side table (also returned for display)
    decoding.json       decoding settings and checkpoints used
`run_unconventional(cfg, rd, force)` writes `unconventional/`:
    problem_check.jsonl every reference passes, every broken variant fails (re-checked each run)
    reliability.jsonl   teacher grades of references and broken variants (+ reliability.json summary)
    solutions.jsonl     model solutions: test verdict, grade, grader reply
    table2.csv/json     Table 2: paper-reported rows beside this run's rows
"""

from __future__ import annotations

import ast
import csv
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..config import ProfileConfig
from ..evaluation.generation import Placement
from ..evaluation.scores import scores_if_run
from ..arms import PAPER_ARMS, representative_steps
from ..rundir import RunDir, RunDirError, read_json, read_jsonl, write_json_atomic, write_jsonl_atomic
from .api_check import check_api, extract_code, trim_to_parseable
from .grading import grade_solutions, reliability_summary, resolve_grade_method
from .headless import run_headless
from .problems import UnconventionalProblem, load_problems
from .prompts import QualitativePrompt, get_prompts
from .report import markdown_table, qualitative_html, table2_rows

def compared_models(cfg: ProfileConfig) -> list[tuple[str, str]]:
    """The models notebooks 09 and 10 compare: the paper's Figure 2.1 arms, each at its first seed
    (step name, label; notebook 08's labels); each checkpoint is `<step>/final`."""
    return representative_steps(cfg, PAPER_ARMS)

SOLUTION_STOP: list[str] | None = None
"""Stop sequences for a solution body: None = the model package's HumanEval stops (a new top-level line ends it)."""


# ----------------------------------------------------------------------------- models
def available_models(cfg: ProfileConfig, rd: RunDir) -> list[tuple[str, str, Path]]:
    """(step, label, checkpoint dir) of the compared models that are done and current in the run directory."""
    return [(step, label, rd.require(step) / "final") for step, label in compared_models(cfg) if rd.is_complete(step)]


def require_models(cfg: ProfileConfig, rd: RunDir) -> list[tuple[str, str, Path]]:
    """The available checkpoints, or one clear error naming the notebooks that make them."""
    found = available_models(cfg, rd)
    if not found:
        missing = ", ".join(f"{rd.path / s / 'final'}" for s, _ in compared_models(cfg))
        raise RunDirError(
            f"no model checkpoint in {rd.path} (looked for {missing}); run notebook 06_pretraining "
            f"(pretrain_<arm>_s<seed>) and 07_finetuning (finetune_s<seed>) first")
    return found


def _generate(cfg: ProfileConfig, ckpt: Path, prompts: list[str], max_new_tokens: int, temperature: float, top_p: float,
              stop: list[str] | None, batch_size: int) -> list[str]:
    from ..model import load_checkpoint
    from ..model.generate import generate

    place = Placement.resolve(cfg.device, cfg.eval.dtype)
    model, tokenizer = load_checkpoint(str(ckpt), device=place.device, dtype=place.torch_dtype)
    model.eval()
    outs = generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens, temperature=temperature,
                    top_p=top_p, n=1, stop=stop, batch_size=batch_size)
    del model
    return [o[0] if o else "" for o in outs]


# ----------------------------------------------------------------------------- notebook 09
@dataclass
class QualitativeResult:
    rows: list[dict[str, Any]]
    """One record per (model, prompt)."""
    models: list[str]
    """Model labels in column order."""
    html: str
    """The side-by-side table."""
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    """model -> verdict -> number of prompts."""
    decoding: dict[str, Any] = field(default_factory=dict)
    """Decoding settings used."""


def program_for(prompt: QualitativePrompt, completion: str) -> tuple[str, bool]:
    """The program to run for a completion, and whether the completion contributed any code.

    Function/script prompts: prompt + completion trimmed to its longest parseable prefix, plus
    the prompt's driver. The chat prompt: the code inside the prose answer. A completion that adds
    no statement beyond the prompt (only comments or nothing parseable) contributes no code.
    """
    if prompt.kind == "chat":
        code, _ = trim_to_parseable(extract_code(completion))
        return code, bool(code.strip())
    code, _ = trim_to_parseable(prompt.prompt + completion)
    base, _ = trim_to_parseable(prompt.prompt)
    try:
        same = ast.dump(ast.parse(code)) == ast.dump(ast.parse(base))
    except SyntaxError:
        same = True
    if not code.strip() or same:
        return "", False
    return code + prompt.driver, True


def combined_verdict(run_verdict: str, api_ok: bool) -> str:
    """One verdict per cell: a call to a non-existent API wins over the run outcome (it may sit on a
    path the short run never reached); otherwise `runs`, `crashes` or `no code`."""
    if run_verdict == "no code":
        return "no code"
    if not api_ok:
        return "calls non-existent API"
    return run_verdict


def evaluate_completions(prompts: Sequence[QualitativePrompt], completions: dict[str, list[str]],
                         timeout_s: float, workers: int = 2,
                         script_timeout_s: float | None = None) -> list[dict[str, Any]]:
    """Run and API-check each model's completions; `completions` maps model label -> one per prompt."""
    records, codes, kinds = [], [], []
    for model, outs in completions.items():
        for p, completion in zip(prompts, outs):
            code, has_code = program_for(p, completion)
            api = check_api(code) if has_code else None
            records.append({"model": model, "prompt": p.name, "paper_ref": p.paper_ref, "kind": p.kind,
                            "completion": completion, "program": code,
                            "api_ok": True if api is None else api.ok,
                            "api_issues": [] if api is None else [asdict(i) for i in api.issues],
                            "api_checked": 0 if api is None else api.checked,
                            "api_unresolved": 0 if api is None else api.unresolved})
            codes.append(code)
            kinds.append("matplotlib" if p.kind == "chat" else p.kind)
    results = run_headless(codes, kinds, timeout_s=timeout_s, workers=workers, desc="§3 completions",
                           script_timeout_s=script_timeout_s)
    for rec, res in zip(records, results):
        rec.update(run_verdict=res.verdict, cut_at_limit=res.cut_at_limit, error=res.error,
                   run_wall_s=round(res.wall_s, 3), returncode=res.returncode, stdout=(res.stdout or "")[-500:],
                   verdict=combined_verdict(res.verdict, rec["api_ok"]))
    return records


def _verdict_counts(rows: Sequence[dict[str, Any]], models: Sequence[str]) -> dict[str, dict[str, int]]:
    counts = {m: {v: 0 for v in ("runs", "crashes", "calls non-existent API", "no code")} for m in models}
    for r in rows:
        counts[r["model"]][r["verdict"]] += 1
    return counts


def run_qualitative(cfg: ProfileConfig, rd: RunDir, force: bool = False) -> QualitativeResult:
    """Notebook 09: completions of every available model for the §3 prompts, run and API-checked."""
    cfg = rd.view("qualitative", cfg)
    q = cfg.qualitative
    prompts = get_prompts(q.prompts)
    out_dir = rd.path / "qualitative"
    with rd.step("qualitative", force, config=q) as rec:
        if rec is not None:
            models = require_models(cfg, rd)
            decoding = {"temperature": q.temperature, "top_p": q.top_p, "max_new_tokens": q.max_new_tokens,
                        "n": 1, "stop": [], "prompt_format": "raw continuation (no chat template)",
                        "placement": asdict(Placement.resolve(cfg.device, cfg.eval.dtype)),
                        "run_timeout_s (event loops)": q.run_timeout_s, "script_timeout_s": q.script_timeout_s,
                        "checkpoints": {label: str(path) for _, label, path in models}}
            completions = {}
            for _, label, path in models:
                completions[label] = _generate(cfg, path, [p.prompt for p in prompts], q.max_new_tokens,
                                               q.temperature, q.top_p, [], q.batch_size)
            rows = evaluate_completions(prompts, completions, q.run_timeout_s, q.run_workers, q.script_timeout_s)
            labels = [label for _, label, _ in models]
            write_jsonl_atomic(out_dir / "completions.jsonl", rows)
            _write_csv(out_dir / "summary.csv", rows, ["model", "prompt", "verdict", "run_verdict", "cut_at_limit",
                                                      "api_ok", "error"])
            write_json_atomic(out_dir / "decoding.json", {**decoding, "models": labels,
                                                         "prompts": [p.name for p in prompts]})
            (out_dir / "table.html").write_text(qualitative_html(rows, labels, prompts, decoding), encoding="utf-8")
            counts = _verdict_counts(rows, labels)
            rec.counts.update({"prompts": len(prompts), "models": len(labels), "completions": len(rows)})
            rec.extra["verdicts"] = counts
    rows = read_jsonl(out_dir / "completions.jsonl")
    meta = read_json(out_dir / "decoding.json")
    labels = meta["models"]
    return QualitativeResult(rows, labels, (out_dir / "table.html").read_text(encoding="utf-8"),
                             _verdict_counts(rows, labels), {k: v for k, v in meta.items() if k not in ("models",)})


# ----------------------------------------------------------------------------- notebook 10
@dataclass
class UnconventionalResult:
    problem_check: dict[str, Any]
    """References passing / broken variants failing (must be all / none)."""
    reliability: dict[str, Any]
    """Grader reliability summary (AUC, correlation, mean grades) and the teacher label."""
    solutions: list[dict[str, Any]]
    """Per model and problem: test verdict, grade."""
    table2: list[dict[str, Any]]
    """Paper-reported rows, then this run's rows."""
    teacher: str | None
    """Label of the teacher that graded (None when grading is off)."""


def check_problem_set(problems: Sequence[UnconventionalProblem], timeout_s: float = 5.0,
                      workers: int = 2) -> list[dict[str, Any]]:
    """Run every reference and broken variant against the hidden tests in the sandbox."""
    from ..sandbox import run_programs

    items: list[tuple[UnconventionalProblem, str, str]] = []
    for p in problems:
        items.append((p, "reference", p.canonical_solution))
        items.extend((p, f"broken: {b.description}", b.body) for b in p.broken)
    results = run_programs([p.program(body) for p, _, body in items], workers=workers, timeout_s=timeout_s,
                           desc="problem set check")
    return [{"task_id": p.task_id, "entry_point": p.entry_point, "variant": v, "passed": r.passed,
             "status": r.status, "detail": (r.stderr or r.detail or "")[-300:]}
            for (p, v, _), r in zip(items, results)]


def _reliability_items(problems: Sequence[UnconventionalProblem], broken_per_problem: int):
    for p in problems:
        yield p, "reference", p.canonical_solution, True
        broken = p.broken if broken_per_problem == 0 else p.broken[:broken_per_problem]
        for b in broken:
            yield p, f"broken: {b.description}", b.body, False


def run_unconventional(cfg: ProfileConfig, rd: RunDir, force: bool = False,
                       teacher: Any | None = None) -> UnconventionalResult:
    """Notebook 10: problem-set check, grader reliability (teacher only), model solutions, Table 2.

    The teacher-only parts run (and are saved) even without model checkpoints; then, if no
    checkpoint exists, one clear error names the notebooks to run. `teacher` may be passed in
    (tests); otherwise one is made from `cfg.teacher` and closed at the end.
    """
    from ..sandbox import run_programs

    cfg = rd.view("unconventional", cfg)
    q = cfg.qualitative
    out_dir = rd.path / "unconventional"
    if rd.is_complete("unconventional") and not force:
        return _load_unconventional(out_dir)
    rd.invalidate("unconventional")
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    all_problems = load_problems()
    problems = all_problems[: q.n_problems] if q.n_problems else all_problems

    # 1. the problem set itself: every reference passes, every broken variant fails
    checks = check_problem_set(all_problems, workers=q.run_workers)
    write_jsonl_atomic(out_dir / "problem_check.jsonl", checks)
    refs = [c for c in checks if c["variant"] == "reference"]
    broken = [c for c in checks if c["variant"] != "reference"]
    problem_check = {"problems": len(refs), "references_passing": sum(c["passed"] for c in refs),
                     "broken_variants": len(broken), "broken_failing": sum(not c["passed"] for c in broken)}
    write_json_atomic(out_dir / "problem_check.json", problem_check)

    own_teacher = teacher is None and q.grade_with_teacher
    if own_teacher:
        from ..teacher import Teacher
        teacher = Teacher.from_config(cfg.teacher, rd)
    label = getattr(teacher, "rating_label", getattr(teacher, "label", None)) if q.grade_with_teacher else None
    try:
        # 2. grader reliability: references vs broken variants (teacher only, no model needed)
        reliability: dict[str, Any] = {"teacher": label, "graded": False}
        method = resolve_grade_method(q.grade_method, teacher) if q.grade_with_teacher else None
        if q.grade_with_teacher:
            rel_problems = all_problems[: q.n_reliability] if q.n_reliability else all_problems
            items = list(_reliability_items(rel_problems, q.broken_per_problem))
            grades = grade_solutions(teacher, [(p.prompt, p.prompt + body) for p, _, body, _ in items],
                                     q.grade_max_tokens, desc="grading references and broken variants", method=method)
            rel_rows = [{"task_id": p.task_id, "entry_point": p.entry_point, "variant": v, "passes_tests": ok,
                         "grade": g.grade, "grade_method": g.method, "evaluation": g.evaluation, "error": g.error,
                         "teacher": label}
                        for (p, v, _, ok), g in zip(items, grades)]
            write_jsonl_atomic(out_dir / "reliability.jsonl", rel_rows)
            reliability = {"teacher": label, "graded": True, "grade_method": method, "problems": len(rel_problems),
                           "grades_from_follow_up": sum(g.method == "follow-up" for g in grades),
                           **reliability_summary([g.grade for g in grades], [ok for *_, ok in items])}
        write_json_atomic(out_dir / "reliability.json", reliability)

        # 3. model solutions (needs the checkpoints)
        models = require_models(cfg, rd)
        solutions: list[dict[str, Any]] = []
        for step, mlabel, path in models:
            bodies = _generate(cfg, path, [p.prompt for p in problems], q.problem_max_new_tokens, q.temperature,
                               q.top_p, SOLUTION_STOP, q.batch_size)
            results = run_programs([p.program(b) for p, b in zip(problems, bodies)], workers=q.run_workers,
                                   timeout_s=cfg.eval.timeout_s, desc=f"tests ({mlabel})")
            for p, body, r in zip(problems, bodies, results):
                solutions.append({"model": mlabel, "step": step, "task_id": p.task_id, "entry_point": p.entry_point,
                                  "completion": body, "passed": r.passed, "status": r.status,
                                  "grade": None, "evaluation": None, "teacher": label})
        if q.grade_with_teacher:
            graded_ids = {p.task_id for p in (problems[: q.n_graded] if q.n_graded else problems)}
            todo = [s for s in solutions if s["task_id"] in graded_ids]
            by_id = {p.task_id: p for p in problems}
            grades = grade_solutions(teacher, [(by_id[s["task_id"]].prompt, by_id[s["task_id"]].prompt + s["completion"])
                                               for s in todo], q.grade_max_tokens, desc="grading model solutions",
                                     method=method)
            for s, g in zip(todo, grades):
                s["grade"], s["evaluation"], s["grade_method"] = g.grade, g.evaluation, g.method
        write_jsonl_atomic(out_dir / "solutions.jsonl", solutions)
    finally:
        if own_teacher and teacher is not None:
            teacher.close()

    # 4. Table 2: this run's rows beside the paper's
    run_rows = []
    humaneval = _humaneval_scores(cfg, rd)
    for _, mlabel, _ in models:
        mine = [s for s in solutions if s["model"] == mlabel]
        graded = [s["grade"] for s in mine if s["grade"] is not None]
        run_rows.append({
            "model": mlabel, "size": None, "train_tokens": None,
            "llm_grade_pct": (100 * sum(graded) / (10 * len(graded))) if graded else None,
            "n_graded": len(graded),
            "tests_pass1_pct": 100 * sum(s["passed"] for s in mine) / len(mine) if mine else None,
            "n_problems": len(mine), "humaneval_pct": humaneval.get(mlabel)})
    table2 = table2_rows(run_rows, label)
    write_json_atomic(out_dir / "table2.json", table2)
    _write_csv(out_dir / "table2.csv", table2, ["source", "model", "size", "train_tokens", "llm_grade_pct",
                                                "tests_pass1_pct", "humaneval_pct", "n_graded", "n_problems"])
    # grade-vs-tests agreement on the model solutions too (weak: few tiny-model passes)
    sol_graded = [s for s in solutions if s["evaluation"] is not None]
    reliability["model_solutions"] = reliability_summary([s["grade"] for s in sol_graded],
                                                         [s["passed"] for s in sol_graded])
    write_json_atomic(out_dir / "reliability.json", reliability)
    rd.mark_complete("unconventional", counts={"problems": len(problems), "solutions": len(solutions),
                                              "graded": len(sol_graded)},
                     config=q, started=started, teacher=label, problem_check=problem_check)
    return UnconventionalResult(problem_check, reliability, solutions, table2, label)


def _humaneval_scores(cfg: ProfileConfig, rd: RunDir) -> dict[str, float]:
    """HumanEval greedy pass@1 (%) per model label from notebook 08's scores (`scores_if_run`), where
    the eval step has run and scored the model; otherwise no number (the table says n/a)."""
    scores = scores_if_run(rd)
    out: dict[str, float] = {}
    for step, mlabel in compared_models(cfg):
        m = scores.models.get(step) if scores else None
        if m is not None and "humaneval" in m.greedy:
            out[mlabel] = round(100.0 * m.greedy["humaneval"].mean, 1)
    return out


def _load_unconventional(out_dir: Path) -> UnconventionalResult:
    reliability = read_json(out_dir / "reliability.json")
    return UnconventionalResult(read_json(out_dir / "problem_check.json"), reliability,
                                read_jsonl(out_dir / "solutions.jsonl"), read_json(out_dir / "table2.json"),
                                reliability.get("teacher"))


# ----------------------------------------------------------------------------- small I/O helpers
def _write_csv(path: Path, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)


__all__ = ["run_qualitative", "run_unconventional", "QualitativeResult", "UnconventionalResult",
           "evaluate_completions", "check_problem_set", "available_models", "require_models",
           "program_for", "combined_verdict", "markdown_table", "compared_models"]
