"""Plots for notebooks 03 and 04 (each returns the figure and the plotted numbers for `save_figure`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402

if TYPE_CHECKING:
    from .exercises import ExercisesResult
    from .textbooks import TextbooksResult

_DIV_KEYS = ("distinct_1", "distinct_2", "distinct_3", "embedding_spread", "nn_similarity", "near_dup_rate", "topic_entropy")


def textbook_funnel_and_coverage(m: "TextbooksResult") -> tuple[Any, dict[str, Any]]:
    """Left: passages surviving each filter (generated / top-up); right: categories of the drawn topics."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4))
    data: dict[str, Any] = {"funnel_generated": m.funnel_generated, "funnel_topup": m.funnel_topup,
                            "drawn_categories": m.drawn_topics["category_counts"],
                            "assigned_categories_final": m.final_assigned_categories}
    stages = list(m.funnel_generated)
    for k, (name, f) in enumerate((("generated", m.funnel_generated), ("open top-up", m.funnel_topup))):
        a.bar([i + 0.4 * k for i in range(len(stages))], [f.get(s, 0) for s in stages], width=0.4, label=name)
    a.set_xticks([i + 0.2 for i in range(len(stages))], stages, rotation=30, ha="right")
    a.set_ylabel("passages remaining")
    a.set_title("Validation funnel (execution + stated outputs + dedup)")
    a.legend()
    cats = sorted(set(data["drawn_categories"]) | set(data["assigned_categories_final"]))
    b.barh(cats, [data["drawn_categories"].get(c, 0) for c in cats], height=0.4, label="drawn (prompts)")
    b.barh([i + 0.4 for i in range(len(cats))], [data["assigned_categories_final"].get(c, 0) for c in cats], height=0.4,
           label="kept passages (nearest topic by MiniLM)")
    b.set_title("Topic coverage by category")
    b.legend(fontsize=8)
    fig.tight_layout()
    return fig, data


def diversity_ablation(m: "TextbooksResult") -> tuple[Any, dict[str, Any]]:
    """Diversity measures with vs without the randomised prompt (equal-size sets of raw replies)."""
    ab = m.ablation
    fig, ax = plt.subplots(figsize=(8, 4))
    if not ab:
        ax.text(0.5, 0.5, "ablation skipped (ablation_passages = 0)", ha="center")
        return fig, {"ablation": None}
    keys = [k for k in _DIV_KEYS if ab["randomised"].get(k) is not None and ab["fixed_prompt"].get(k) is not None]
    x = range(len(keys))
    ax.bar([i - 0.2 for i in x], [ab["randomised"][k] for k in keys], width=0.4, label="randomised prompt (topic/audience/style/words)")
    ax.bar([i + 0.2 for i in x], [ab["fixed_prompt"][k] for k in keys], width=0.4, label="fixed prompt (seed only)")
    ax.set_xticks(list(x), keys, rotation=30, ha="right")
    ax.set_title(f"Diversity with vs without randomisation (n = {ab['n_each']} each; nn_similarity/near_dup: lower = more diverse)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig, {"keys": keys, "randomised": ab["randomised"], "fixed_prompt": ab["fixed_prompt"], "n_each": ab["n_each"]}


def imports_histogram(m: "ExercisesResult") -> tuple[Any, dict[str, Any]]:
    """The paper's Figure 3.1 for this run's kept exercises."""
    imp = m.imports
    fig, ax = plt.subplots(figsize=(8, 4))
    if imp:
        names = list(imp)[:20]
        ax.bar(names, [imp[n] for n in names])
        ax.tick_params(axis="x", rotation=45)
    else:
        ax.text(0.5, 0.5, "no kept exercise imports a module", ha="center")
    ax.set_ylabel("exercises importing it")
    ax.set_title("Imports in CodeExercises (cf. paper Figure 3.1)")
    fig.tight_layout()
    return fig, {"imports": imp}


def exercise_stats(m: "ExercisesResult") -> tuple[Any, dict[str, Any]]:
    """Funnel of generated / open exercises and the length / difficulty distributions."""
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(14, 4))
    stages = list(m.funnel_generated)
    for k, (name, f) in enumerate((("generated", m.funnel_generated), ("open top-up", m.funnel_topup))):
        a.bar([i + 0.4 * k for i in range(len(stages))], [f.get(s, 0) for s in stages], width=0.4, label=name)
    a.set_xticks([i + 0.2 for i in range(len(stages))], stages, rotation=30, ha="right")
    a.set_title("Exercise funnel")
    a.legend()
    d = m.difficulty
    b.hist(d["lines"] or [0], bins=15)
    b.set_xlabel("solution lines")
    c.hist(d["decisions"] or [0], bins=10)
    c.set_xlabel("decision points (if/for/while/...)")
    fig.tight_layout()
    return fig, {"funnel_generated": m.funnel_generated, "funnel_topup": m.funnel_topup, "difficulty": d}


def code_textbook_origins(m: "TextbooksResult") -> tuple[Any, dict[str, Any]]:
    """CodeTextbook's tokens by origin (filtered code included) and its synthetic share."""
    ct = m.code_textbook
    by = ct["tokens_by_origin"]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    if by:
        names = list(by)
        ax.barh(names, [by[n] for n in names])
        ax.set_xscale("log")
        ax.set_xlabel(f"tokens ({ct['token_unit']}, log scale)")
    share = ct.get("synthetic_share")
    ax.set_title(f"CodeTextbook by origin: {ct['tokens']:,} tokens, {ct['rows']} rows, synthetic share "
                 + ("n/a" if share is None else f"{share:.1%}") + f" (target {ct['target_synthetic_share']:.1%}; "
                 "paper-reported ~14%)", fontsize=9)
    fig.tight_layout()
    return fig, {"tokens_by_origin": by, "rows_by_origin": ct["rows_by_origin"], "tokens": ct["tokens"],
                 "synthetic_share": share, "target_synthetic_share": ct["target_synthetic_share"],
                 "filtered_code_alone": ct["filtered_code_alone"], "token_unit": ct["token_unit"]}
