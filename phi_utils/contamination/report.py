"""Reading the contamination stage's outputs back for notebook 11: closest pairs side by side
(like the paper's Appendix C), n-gram overlaps, removed counts vs τ, and the figures' data."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..rundir import RunDir
from ..rundir import read_jsonl
from .stage import STEP, humaneval_problems, load_exercises, mbpp_problems
from .tables import PAPER_REMOVED


def out_dir(rd: RunDir) -> Path:
    return rd.require(STEP)


def prune_counts(rd: RunDir) -> pd.DataFrame:
    return pd.read_csv(out_dir(rd) / "prune_counts.csv")


def table3(rd: RunDir) -> pd.DataFrame:
    return pd.read_csv(out_dir(rd) / "table3.csv")


def closest_pairs(rd: RunDir, by: str = "ast", n: int = 4) -> list[dict[str, Any]]:
    """The `n` closest (HumanEval problem, exercise) pairs by `ast` match rate or `embedding` distance."""
    he = {p.task_id: p for p in humaneval_problems()}
    ex = load_exercises(rd)
    rows = []
    for r in read_jsonl(out_dir(rd) / "neighbours.jsonl"):
        if r[by]:
            best = r[by][0]
            score = best["match_rate"] if by == "ast" else best["l2"]
            rows.append((score, r["task_id"], best["index"], best["exercise"], best.get("exact_match_rate")))
    rows.sort(key=lambda x: -x[0] if by == "ast" else x[0])
    out = []
    for score, tid, idx, exid, exact in rows[:n]:
        row = {"task_id": tid, "exercise": exid, "metric": "AST match rate" if by == "ast" else "L2 distance",
               "score": round(float(score), 3), "humaneval": he[tid].code, "exercise_code": ex[int(idx)]["text"]}
        if exact is not None:
            row["exact (APTED)"] = round(float(exact), 3)
        out.append(row)
    return out


def ngram_pairs(rd: RunDir, which: str = "exercises", n: int = 10) -> list[dict[str, Any]]:
    """Overlapping n-gram pairs with both texts (`which`: `exercises` or `textbook`)."""
    path = out_dir(rd) / f"ngram_{which}.jsonl"
    if not path.exists():
        return []
    rows = read_jsonl(path)[:n]
    docs = {p.task_id: p.docstring for p in humaneval_problems() + mbpp_problems()}
    if which == "exercises":
        ex = load_exercises(rd)
        ids = [str(x) for x in (ex["task_id"] if "task_id" in ex.column_names else range(len(ex)))]
        pos = {i: k for k, i in enumerate(ids)}
        text = lambda d: ex[pos[d]]["prompt"] if "prompt" in ex.column_names else ex[pos[d]]["text"]  # noqa: E731
    else:
        from .stage import load_code_textbook

        tb = load_code_textbook(rd)
        text = lambda d: tb[int(d.split("/")[1])]["text"]  # noqa: E731
    return [{**r, "benchmark_text": docs.get(r["problem_id"], ""), "doc_text": text(r["doc_id"])} for r in rows]


def pairs_html(pairs: list[dict[str, Any]], left: str = "humaneval", right: str = "exercise_code",
               label: str = "score", max_chars: int = 1500) -> str:
    """Side-by-side HTML table of code pairs (rendered with IPython.display.HTML)."""
    cells = []
    for p in pairs:
        head = " · ".join(f"{k}: {p[k]}" for k in ("task_id", "problem_id", "exercise", "doc_id", "metric", label, "exact (APTED)", "ngram")
                          if k in p)
        l, r = (html.escape(str(p[left])[:max_chars]), html.escape(str(p[right])[:max_chars]))
        cells.append(f"<tr><td colspan=2><b>{html.escape(head)}</b></td></tr>"
                     f"<tr><td style='vertical-align:top'><pre style='font-size:11px'>{l}</pre></td>"
                     f"<td style='vertical-align:top'><pre style='font-size:11px'>{r}</pre></td></tr>")
    return "<table>" + "".join(cells) + "</table>"


def best_scores(rd: RunDir) -> dict[str, np.ndarray]:
    """Per exercise: best AST match rate (NaN when it does not parse) and smallest embedding distance."""
    rows = read_jsonl(out_dir(rd) / "exercise_scores.jsonl")
    ast_best = np.array([r["ast_best"] if r.get("parsed", True) else np.nan for r in rows], dtype=float)
    emb = np.array([np.nan if r["emb_best"] is None else r["emb_best"] for r in rows], dtype=float)
    return {"ast_best": ast_best, "emb_best": emb}


def removed_vs_tau(rd: RunDir) -> dict[str, Any]:
    """Removed fraction per τ (this run) and the paper-reported endpoints, for the figure."""
    c = prune_counts(rd)
    lo, hi = PAPER_REMOVED["tau_range"]
    r_lo, r_hi = PAPER_REMOVED["removed"]
    return {"tau": c["tau"].tolist(), "removed": c["removed"].tolist(), "removed_fraction": c["removed_fraction"].tolist(),
            "exercises": int(c["exercises"].iloc[0]) if len(c) else 0,
            "similar_problems": c["similar_problems"].tolist(),
            "paper_reported": {"tau": [lo, hi], "removed_fraction": [r_lo / PAPER_REMOVED["of"], r_hi / PAPER_REMOVED["of"]],
                               "removed": [r_lo, r_hi], "of": PAPER_REMOVED["of"]}}


def summary(rd: RunDir) -> dict[str, Any]:
    return json.loads((out_dir(rd) / "summary.json").read_text())


def retrain_info(rd: RunDir) -> dict[str, Any] | None:
    """What was retrained (`retrain.json`): evaluated problems, steps, the reference model, runs per τ."""
    p = out_dir(rd) / "retrain.json"
    return json.loads(p.read_text()) if p.exists() else None
