"""Figures of notebooks 01 and 02: each function returns `(fig, data)` for `plots.save_figure`."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

if TYPE_CHECKING:
    from .classifier import ClassifierReport


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _snippet(text: str, lines: int = 14, width: int = 78) -> str:
    out = []
    for ln in text.splitlines()[:lines]:
        out.append(ln if len(ln) <= width else ln[: width - 1] + "…")
    return "\n".join(out)


def label_distribution(labels: Sequence[dict[str, Any]], teacher: str) -> tuple[Any, dict[str, Any]]:
    """Histogram of main-pass scores and a scatter of pass 1 vs pass 2 on the reliability subset."""
    plt = _plt()
    main = [r for r in labels if r["pass"] == "main" and r["score"] is not None]
    rep = {r["id"]: r["score"] for r in labels if r["pass"] == "repeat" and r["score"] is not None}
    pairs = [(r["score"], rep[r["id"]]) for r in main if r["id"] in rep]
    scores = [r["score"] for r in main]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    axes[0].hist(scores, bins=np.arange(0, 9.51, 0.5), color="tab:blue", edgecolor="white")
    axes[0].set(xlabel="educational value (0-9, probability-weighted)", ylabel="files",
                title=f"Teacher labels (n={len(scores)})")
    if pairs:
        a, b = zip(*pairs)
        axes[1].scatter(a, b, s=18)
        axes[1].plot([0, 9], [0, 9], "k--", lw=0.8)
    axes[1].set(xlim=(0, 9), ylim=(0, 9), xlabel="pass 1", ylabel="pass 2 (rubric reversed)",
                title=f"Two independent passes (n={len(pairs)})")
    fig.suptitle(textwrap.shorten(f"teacher: {teacher}", 110), fontsize=9)
    fig.tight_layout()
    return fig, {"scores": scores, "pairs": pairs, "teacher": teacher}


def text_examples(high: Sequence[dict[str, Any]], low: Sequence[dict[str, Any]], score_key: str, title: str,
                  lines: int = 14) -> tuple[Any, dict[str, Any]]:
    """Side-by-side code panels: highest-scored files (left) and lowest (right), like the paper's
    "educational values deemed by the filter" figure."""
    plt = _plt()
    n = max(len(high), len(low), 1)
    fig, axes = plt.subplots(n, 2, figsize=(13, 2.9 * n), squeeze=False)
    for col, (group, name) in enumerate(((high, "high"), (low, "low"))):
        for row in range(n):
            ax = axes[row][col]
            ax.axis("off")
            if row >= len(group):
                continue
            r = group[row]
            ax.set_title(f"{name} {score_key}={r[score_key]:.2f}  {textwrap.shorten(str(r.get('path')), 60)}",
                         fontsize=8, loc="left")
            ax.text(0, 1, _snippet(r.get("text") or "", lines), family="monospace", fontsize=6.5, va="top",
                    transform=ax.transAxes,
                    bbox={"facecolor": "#eef7ee" if name == "high" else "#fbeeee", "edgecolor": "none"})
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    data = {name: [{"path": r.get("path"), score_key: r[score_key], "head": _snippet(r.get("text") or "", lines)}
                   for r in group] for group, name in ((high, "high"), (low, "low"))}
    return fig, data


def score_histogram(probs: Sequence[float], threshold: float, keep_fraction: float) -> tuple[Any, dict[str, Any]]:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.hist(probs, bins=40, color="tab:green", edgecolor="white")
    ax.axvline(threshold, color="k", ls="--", label=f"threshold {threshold:.3f} (keep {keep_fraction:.0%})")
    ax.set(xlabel="classifier P(educational)", ylabel="corpus files", title=f"Filter scores over the corpus (n={len(probs)})")
    ax.legend()
    fig.tight_layout()
    return fig, {"scores": list(map(float, probs)), "threshold": threshold, "keep_fraction": keep_fraction}


def roc_and_calibration(report: "ClassifierReport") -> tuple[Any, dict[str, Any]]:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    if report.roc:
        ax.plot(report.roc["fpr"], report.roc["tpr"], label=f"random forest (AUC {report.auc:.2f})")
    if report.roc_control:
        ax.plot(report.roc_control["fpr"], report.roc_control["tpr"], ls=":",
                label=f"shuffled-label control (AUC {report.auc_control:.2f})")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate",
           title=f"Held-out ROC (n_test={report.n_test})")
    if report.roc:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no classifier: the labels do not separate files", ha="center", fontsize=9)
    cal = report.calibration
    if cal:
        axes[1].plot(cal["mean_predicted"], cal["fraction_positive"], "o-")
    axes[1].plot([0, 1], [0, 1], "k--", lw=0.8)
    axes[1].set(xlabel="mean predicted P(educational)", ylabel="fraction labelled educational",
                title="Calibration (held-out, quantile bins)")
    fig.tight_layout()
    return fig, {k: getattr(report, k) for k in ("roc", "roc_control", "calibration", "auc", "auc_control")}
