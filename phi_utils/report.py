"""The results section of the README, regenerated from a run directory.

It gathers what the stages wrote (the runner's summary, the teacher card, Table 1 / Figure 2.1,
Table 2, Table 3) into one markdown block; paper-reported rows stay labelled as such in each table.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from .config import REPO_ROOT
from .rundir import RunDir, read_json

START, END = "<!-- results:start -->", "<!-- results:end -->"


def csv_to_markdown(path: Path, max_rows: int = 60) -> str:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows:
        return ""
    head, body = rows[0], rows[1:max_rows + 1]

    def fmt(cell: str) -> str:
        if re.fullmatch(r"-?\d+\.\d{4,}", cell):  # floats from the CSVs: 54.63666666666666 -> 54.64
            cell = f"{float(cell):.4g}" if abs(float(cell)) < 1 else f"{float(cell):.2f}"
        return cell.replace("|", "\\|")

    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(fmt(c) for c in r) + " |" for r in body]
    return "\n".join(lines)


def _summary_table(rd: RunDir) -> str:
    p = rd.path / "stages" / "summary.json"
    if not p.exists():
        return ""
    lines = ["| stage | status | wall time | key metric |", "|---|---|---|---|"]
    for r in read_json(p):
        m = r.get("metric") or {}
        value = m.get("value")
        value = f"{value:.4g}" if isinstance(value, float) else value
        wall = f"{r['wall_s'] / 60:.1f} min" if r.get("wall_s") else ""
        status = "done (earlier invocation)" if r["status"] == "skipped" else r["status"]
        lines.append(f"| {r['stage']} | {status} | {wall} | {m.get('name', '')}{' = ' if m else ''}"
                     f"{'' if value is None else value} |")
    return "\n".join(lines)


def _table1_note(rd: RunDir) -> str:
    """Figure 2.1 in numbers: the canonical-solution loss per arm (seeds pooled, 95% CI) and the paired
    differences between arms with their generated verdicts; plus what pass@1 shows at this scale."""
    from .evaluation.fig21 import GREEDY, LOSS, conclusions
    from .evaluation.scores import scores_if_run

    scores = scores_if_run(rd)
    summary = scores.fig21 if scores else None
    if not summary or not summary.get("arms"):
        return ""

    n = summary.get("n_problems", {})
    bench = "all" if "all" in n else "humaneval"
    lines = [f"**Figure 2.1, measured** (canonical-solution loss in nats/token over {n.get(bench)} problems "
             f"({', '.join(f'{k} {v}' for k, v in n.items() if k != 'all')}), mean over seeds and problems, "
             "95% CI from resampling both):", "",
             "| arm | seeds | loss [95% CI] | per seed | HumanEval greedy pass@1 [95% CI] |", "|---|---|---|---|---|"]
    for letter, a in summary["arms"].items():
        e = a["metrics"].get(LOSS, {}).get(bench)
        g = a["metrics"].get(GREEDY, {}).get("humaneval")
        if not e:
            continue
        gtxt = f"{100 * g['mean']:.1f} % [{100 * g['ci95'][0]:.1f}, {100 * g['ci95'][1]:.1f}]" if g else "–"
        lines.append(f"| {letter}: {a['label'].split(': ', 1)[-1]} | {len(a.get('seeds', []))} | {e['mean']:.4f} "
                     f"[{e['ci95'][0]:.4f}, {e['ci95'][1]:.4f}] | {', '.join(f'{x:.4f}' for x in e['per_seed'])} | {gtxt} |")
    lines.append("")
    where = "HumanEval + MBPP" if bench == "all" else "HumanEval"
    lines += [f"- {d['verdict']}" for d in summary["paired_differences"] if d["metric"] == LOSS and d["benchmark"] == bench]
    lines += [f"- {c}" for c in conclusions(summary, metrics=()) if "humaneval" in c]  # the zero-solved bounds
    lines.insert(0, f"Paired differences below are over the same {n.get(bench)} problems ({where}).")
    return "\n".join(lines)


def _table2_note(rd: RunDir) -> str:
    """How far the grader can be trusted: its grades of references vs deliberately broken variants."""
    p = rd.path / "unconventional" / "reliability.json"
    if not p.exists():
        return ""
    r = read_json(p)
    if not r.get("graded"):
        return ""
    auc = r.get("auc")
    fmt = lambda v: "n/a" if v is None else f"{v:.2f}"  # noqa: E731
    return (f"Grader reliability ({r.get('teacher')}, grades read by `{r.get('grade_method', 'verbal')}`): on "
            f"{r.get('n')} reference solutions and broken variants whose correctness the tests establish, the "
            f"grade separates them with ROC AUC {fmt(auc)} (0.5 = no signal; mean grade {fmt(r.get('mean_grade_passing'))} "
            f"for passing vs {fmt(r.get('mean_grade_failing'))} for failing code). Read the LLM-grade column against it.")


_TABLE_NOTES = {"eval/table1.csv": _table1_note, "unconventional/table2.csv": _table2_note}


def results_markdown(rd: RunDir) -> str:
    """The README's results block for the run in `rd`."""
    info = read_json(rd.path / "run.json")
    parts = [f"From the run of profile `{rd.profile}` (commit `{info.get('git_sha') or 'unknown'}`, "
             f"started {info.get('created')}). Rows marked *paper-reported* are the paper's; all others "
             f"were measured by this code on this run's tiny models and local teacher."]
    card_path = rd.path / "teacher" / "card.json"
    if card_path.exists():
        card = read_json(card_path)
        cap = card.get("capability") or {}
        he, rating = cap.get("humaneval") or {}, cap.get("rating") or {}
        auc = rating.get("auc")
        parts.append(f"**Teacher**: {card.get('label', card.get('model', '?'))}; capability check: "
                     f"HumanEval {he.get('passed')}/{he.get('n')} of the first problems (greedy), rating AUC "
                     f"{'n/a' if auc is None else f'{auc:.2f}'} on {rating.get('n')} labelled good/bad snippets "
                     f"(0.5 = no signal).")
    summary = _summary_table(rd)
    if summary:
        parts += ["### Stages", summary]
    for title, rel in (("Table 1: HumanEval / MBPP pass@1", "eval/table1.csv"),
                       ("Table 2: unconventional problems", "unconventional/table2.csv"),
                       ("Table 3: contamination pruning", "contamination/table3.csv")):
        p = rd.path / rel
        if p.exists():
            parts += [f"### {title}", csv_to_markdown(p)]
            note = _TABLE_NOTES[rel](rd) if rel in _TABLE_NOTES else ""
            if note:
                parts.append(note)
    figs = sorted((rd.path / "figures").glob("*.png"))
    if figs:
        parts.append("Figures: " + ", ".join(f"`figures/{f.name}`" for f in figs))
    return "\n\n".join(parts)


def update_readme(rd: RunDir, readme: Path = REPO_ROOT / "README.md") -> None:
    """Replace the block between the results markers with this run's results."""
    text = readme.read_text(encoding="utf-8")
    if START not in text or END not in text:
        raise ValueError(f"{readme} has no {START} ... {END} block")
    block = f"{START}\n{results_markdown(rd)}\n{END}"
    readme.write_text(re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _: block, text, flags=re.S),
                      encoding="utf-8")
