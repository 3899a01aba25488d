"""Readable outputs of notebooks 09 and 10: the side-by-side HTML table and Table 2."""

from __future__ import annotations

import html
from typing import Any, Sequence

PAPER_TABLE2: tuple[dict[str, Any], ...] = (
    {"model": "CodeGen-Mono-350M", "size": "350M", "train_tokens": "577B", "llm_grade_pct": 19, "humaneval_pct": 13},
    {"model": "CodeGen-Mono-16.1B", "size": "16.1B", "train_tokens": "577B", "llm_grade_pct": 38, "humaneval_pct": 29},
    {"model": "Replit", "size": "2.7B", "train_tokens": "525B", "llm_grade_pct": 37, "humaneval_pct": 22},
    {"model": "StarCoder", "size": "15.5B", "train_tokens": "1T", "llm_grade_pct": 51, "humaneval_pct": 34},
    {"model": "phi-1-base", "size": "1.3B", "train_tokens": "7B", "llm_grade_pct": 37, "humaneval_pct": 29},
    {"model": "phi-1-small", "size": "350M", "train_tokens": "7B", "llm_grade_pct": 45, "humaneval_pct": 45},
    {"model": "phi-1", "size": "1.3B", "train_tokens": "7B", "llm_grade_pct": 52, "humaneval_pct": 51},
)
"""Table 2 of the paper (GPT-4 score on its 50 unpublished problems, HumanEval pass@1), paper-reported."""

_VERDICT_COLOUR = {"runs": "#d9f2d9", "crashes": "#f8d7d7", "calls non-existent API": "#fde8c8",
                   "no code": "#eeeeee"}

_CSS = """<style>
table.phi-qual {border-collapse: collapse; font-size: 12px; table-layout: fixed; width: 100%;}
table.phi-qual th, table.phi-qual td {border: 1px solid #bbb; padding: 4px; vertical-align: top; text-align: left;}
table.phi-qual pre {white-space: pre-wrap; word-break: break-word; margin: 0; font-size: 11px;}
table.phi-qual .verdict {font-weight: bold; margin-bottom: 3px; padding: 2px;}
table.phi-qual .detail {color: #555; font-size: 11px;}
</style>"""


def qualitative_html(rows: Sequence[dict[str, Any]], models: Sequence[str], prompts: Sequence[Any],
                     decoding: dict[str, Any], title: str = "§3 prompts: completions side by side") -> str:
    """One row per prompt, one column per model: completion, verdict, API findings.

    `rows` are the records written to `completions.jsonl` (keys: model, prompt, completion,
    verdict, run_verdict, error, api_issues, cut_at_limit).
    """
    by_key = {(r["model"], r["prompt"]): r for r in rows}
    esc = html.escape
    out = [_CSS, f"<h3>{esc(title)}</h3>",
           "<p><b>Decoding:</b> " + esc(", ".join(f"{k}={v}" for k, v in decoding.items())) + "</p>",
           '<table class="phi-qual"><tr><th style="width:18%">prompt</th>'
           + "".join(f"<th>{esc(m)}</th>" for m in models) + "</tr>"]
    for p in prompts:
        cells = [f"<td><b>{esc(p.name)}</b> <span class='detail'>({esc(p.paper_ref)}, {esc(p.kind)})</span>"
                 f"<pre>{esc(p.prompt)}</pre><div class='detail'>Paper: {esc(p.description)}</div></td>"]
        for m in models:
            r = by_key.get((m, p.name))
            if r is None:
                cells.append("<td>-</td>")
                continue
            colour = _VERDICT_COLOUR.get(r["verdict"], "#fff")
            details = []
            if r.get("cut_at_limit"):
                details.append("cut at the time limit (event loop), no exception")
            if r.get("error"):
                details.append("error: " + r["error"])
            for issue in r.get("api_issues") or []:
                details.append(f"missing API L{issue['line']}: {issue['expr']} ({issue['reason']})")
            cells.append(f"<td><div class='verdict' style='background:{colour}'>{esc(r['verdict'])}</div>"
                         + "".join(f"<div class='detail'>{esc(d)}</div>" for d in details)
                         + f"<pre>{esc(r['completion'])}</pre></td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """A small markdown table (for printing in notebooks and reports)."""
    fmt = lambda v: "n/a" if v is None else (f"{v:.1f}" if isinstance(v, float) else str(v))  # noqa: E731
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def table2_rows(run_rows: Sequence[dict[str, Any]], teacher_label: str | None) -> list[dict[str, Any]]:
    """Table 2: the paper's rows (labelled paper-reported) followed by this run's rows (labelled measured)."""
    rows: list[dict[str, Any]] = []
    for r in PAPER_TABLE2:
        rows.append({"source": "paper-reported (GPT-4 grader, 50 unpublished problems)", **r,
                     "tests_pass1_pct": None})
    for r in run_rows:
        rows.append({"source": f"this run (grader: {teacher_label or 'none'})", **r})
    return rows
