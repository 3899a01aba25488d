"""Notebook 08's Figure 2.1: paper-reported bars beside this run's measured arms, the canonical-solution
loss per arm with its n-gram baselines, and the paired differences between arms (from `EvalScores`)."""

from __future__ import annotations

from typing import Any

from ..arms import ARMS
from .fig21 import BASELINES, BIGRAM, GREEDY, LOSS, UNIGRAM, conclusions
from .scores import EvalScores
from .tables import PAPER_FIG21


def _err(mid: float, lo: float, hi: float) -> list[list[float]]:
    """Error-bar lengths; a percentile interval can end a rounding error past its point estimate."""
    return [[max(0.0, mid - lo)], [max(0.0, hi - mid)]]


ARM_COLORS = {"raw": "#f28e2b", "filtered": "#76b7b2", "textbook": "#8cd17d", "finetune": "#2e7d32"}


def figure_2_1(scores: EvalScores) -> tuple[Any, dict[str, Any]]:
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

    summary = scores.fig21 or {"arms": {}, "paired_differences": [], "n_problems": {}}
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
    groups = list(PAPER_FIG21) + [f"this run ({scores.profile}, measured)\nn={n_he} problems"]
    ax.set_xticks(range(len(groups)), groups, fontsize=8)
    ax.set_ylabel("HumanEval pass@1 (%)")
    ax.set_title("Figure 2.1: paper-reported vs this run (greedy, 95% CI)", fontsize=10)
    handles = [Patch(color=c, label=a.label) for c, a in zip(paper_colors, (a for a in ARMS if a.in_paper))]
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
    data = {"profile": scores.profile, "n_problems": summary["n_problems"],
            "paper_reported_pass@1_%": {g: list(v) for g, v in PAPER_FIG21.items()},
            "arms": {letter: {"key": a["key"], "label": a["label"], "seeds": a.get("seeds", []),
                              "steps": [f"{a['prefix']}_s{s}" for s in a.get("seeds", [])], "metrics": a["metrics"]}
                     for letter, a in arms.items()},
            "paired_differences": summary["paired_differences"],
            "baselines": {letter: {"key": a["key"], **{kind: a["metrics"].get(col) for kind, col in BASELINES.items()},
                                   "fit": scores.baselines.get(a["key"])}
                          for letter, a in arms.items()},
            "baseline_gaps": summary.get("baseline_gaps", []),
            "conclusions": conclusions(summary)}
    return fig, data
