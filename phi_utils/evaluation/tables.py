"""Notebook 08's tables: the paper-reported Table 1 and Figure 2.1 numbers (always labelled
paper-reported), Table 1 and the baseline table built from this run's `EvalScores`, their CSV and
Markdown renderings, and the per-sample CSVs (`per_problem.csv`, `failure_categories.csv`)."""

from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path
from typing import Any

from .fig21 import BIGRAM, GREEDY, LOSS, UNIGRAM
from .scores import EvalScores, PassRate

"""The paper's three Figure 2.1 bars at seed 0 (step -> label): the one model per recipe that
notebooks 09 and 10 show. Notebook 08 evaluates every arm and seed (`stage.evaluated_models`)."""

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


def write_per_problem(rows: list[dict[str, Any]], out: Path) -> None:
    """`per_problem.csv` (one row per sample: verdict and failure category) and `failure_categories.csv`
    (counts per model, benchmark and category)."""
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


def _fmt_params(n: int | None) -> str:
    if not n:
        return ""
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M"


def _fmt_tokens(n: int | None) -> str:
    if not n:
        return ""
    return f"{n / 1e9:.1f}B" if n >= 1e9 else (f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.0f}k")


def table1_rows(scores: EvalScores) -> list[dict[str, Any]]:
    """Table 1: the paper-reported rows, then this run's measured rows, one per arm (its seeds pooled;
    greedy pass@1 in % with a 95% Wilson interval over problems; the canonical-solution loss and, beside
    it, the unigram and bigram baselines of the arm's own training tokens, nats/token with 95% intervals,
    over every problem when there are several benchmarks), then the teacher."""
    no_loss = {"canonical_loss": "", "unigram_loss": "", "bigram_loss": ""}
    rows = [{"source": "paper-reported", "date": d, "model": m, "size": s, "train_tokens": t,
             "humaneval_pass@1_%": he, "mbpp_pass@1_%": mb, "humaneval_ci95_%": "", "mbpp_ci95_%": "",
             "n_problems": "", "seeds": "", **no_loss}
            for d, m, s, t, _, he, mb in PAPER_TABLE1]

    def pct(mean: float | None) -> float | None:
        return None if mean is None else round(100 * mean, 1)

    def ci(lohi: list[float] | None) -> str:
        return "" if not lohi else f"[{100 * lohi[0]:.1f}, {100 * lohi[1]:.1f}]"

    summary = scores.fig21 or {"arms": {}}
    loss_bench = "all" if (summary.get("n_problems") or {}).get("all") else "humaneval"
    for letter, a in summary["arms"].items():
        first = next((m for m in scores.models.values() if m.arm == a["key"]), None)
        g = a["metrics"].get(GREEDY, {})
        rows.append({"source": f"measured ({scores.profile} profile)", "date": "this run",
                     "model": a["label"], "size": _fmt_params(first.n_params if first else None),
                     "train_tokens": _fmt_tokens(first.tokens_seen if first else None),
                     **{f"{b}_pass@1_%": pct((g.get(b) or {}).get("mean")) for b in ("humaneval", "mbpp")},
                     **{f"{b}_ci95_%": ci((g.get(b) or {}).get("ci95")) for b in ("humaneval", "mbpp")},
                     "n_problems": "/".join(str(g[b]["n_problems"]) for b in ("humaneval", "mbpp") if b in g),
                     "seeds": len(a.get("seeds", [])),
                     **{m: loss_interval(a["metrics"].get(m, {}).get(loss_bench)) for m in (LOSS, UNIGRAM, BIGRAM)}})
    t = scores.teacher
    if t is not None and t.label is not None:
        rate: dict[str, PassRate] = {b: r for b, r in t.greedy.items() if b in ("humaneval", "mbpp")}
        src = (f"measured (`evaluate`, commit {str(t.commit)[:7]})" if t.summary
               else f"measured ({scores.profile} profile)")
        rows.append({"source": src, "date": (t.date or "this run") if t.summary else "this run",
                     "model": f"teacher: {t.label}", "size": "", "train_tokens": "",
                     **{f"{b}_pass@1_%": pct(rate[b].mean if b in rate else None) for b in ("humaneval", "mbpp")},
                     **{f"{b}_ci95_%": ci(rate[b].ci95 if b in rate else None) for b in ("humaneval", "mbpp")},
                     "n_problems": "/".join(str(rate[b].n_problems) for b in ("humaneval", "mbpp") if b in rate),
                     "seeds": "", **no_loss})
    return rows


def loss_interval(e: dict[str, Any] | None) -> str:
    """`6.043 [6.012, 6.075]` (nats/token) from a summary entry, or an empty cell."""
    return "" if not e else f"{e['mean']:.3f} [{e['ci95'][0]:.3f}, {e['ci95'][1]:.3f}]"


def baseline_rows(scores: EvalScores) -> list[dict[str, Any]]:
    """Per arm (seeds pooled, every problem when there are several benchmarks): the model's
    canonical-solution loss, its unigram and bigram baselines, the gaps arm minus baseline with 95%
    intervals, whether the model is below its bigram (resolved), and the fit (lambda, training tokens)."""
    summary = scores.fig21 or {"arms": {}, "n_problems": {}}
    bench = "all" if summary.get("n_problems", {}).get("all") else "humaneval"
    fits = scores.baselines
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
    """`table1.csv` and `table1.md` under `out`."""
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


