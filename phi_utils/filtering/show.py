"""What a reader of §2.1 wants to see, rendered from the code that runs: the exact rating prompt of a
rated file with the teacher's answer (notebook 01), and the filter's decision rule (notebook 02)."""

from __future__ import annotations

import inspect
from typing import Any, Sequence

from .annotate import build_prompt
from .classifier import keep_threshold
from .scoring import WINDOW_RULE


def median_rated(labels: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The main-pass label of median score (a typical file, not an extreme one), or None."""
    rated = sorted((r for r in labels if r.get("pass") == "main" and r.get("score") is not None and r.get("id", -1) >= 0),
                   key=lambda r: (r["score"], r["id"]))
    return rated[len(rated) // 2] if rated else None


def rated_example(label: dict[str, Any], text: str, max_chars: int) -> str:
    """The prompt the teacher was sent for `label`'s file (rebuilt by `build_prompt`), and its answer."""
    system, user, info = build_prompt(text, max_chars)
    return (f"file: {label.get('path')} (characters {info['window_start']}-{info['window_end']} of {info['n_chars']} rated)\n"
            f"--- SYSTEM\n{system}\n--- USER\n{user}\n--- TEACHER ({label.get('teacher')})\n{label.get('raw') or ''}\n"
            f"--- READ AS: score {label['score']:.2f} of 9 (method: {label.get('method')}); reason: {label.get('reason')}")


def decision_rule(result: Any, keep_fraction: float) -> str:
    """Notebook 02's rule, with this run's thresholds: which files are kept, and the cut-off's code."""
    rep = result.report
    dropped = (result.substance_rule or {}).get("dropped") or {}
    lines = [
        f"1. substance: a file that `no_substance(path, text)` rejects is never kept (this run: "
        f"{sum(dropped.values())} files; {dropped or 'none'})",
        f"2. label: teacher score >= {rep.label_threshold:.3f} is a positive label for training the classifier",
        f"3. score: P(positive) from {result.classifier or 'no classifier'} over {result.embedder} embeddings of each "
        f"file's most informative window ({WINDOW_RULE})",
        f"4. keep: P(positive) >= {result.score_threshold:.4f}, the top {keep_fraction:.0%} of the files with substance "
        f"(kept {result.n_kept} of {result.n_corpus})",
    ]
    return "\n".join(lines) + "\n\n" + inspect.getsource(keep_threshold)
