"""The contamination criteria of a run, rendered from its configuration and the rule that applies them."""

from __future__ import annotations

import inspect
from typing import Any

from ..config import ContaminationConfig, field_docs
from .prune import close_pairs

CRITERIA_FIELDS = ("ngram", "include_mbpp", "embedder", "embedding_threshold", "taus", "combine", "rerank_exact",
                   "rerank_margin")
"""The settings that decide whether a benchmark problem and a training example count as similar."""


def criteria_lines(cc: ContaminationConfig) -> list[str]:
    """One line per deciding setting: `name = value: its docstring`."""
    docs = field_docs(ContaminationConfig)
    return [f"{name} = {getattr(cc, name)!r}: {' '.join(docs.get(name, '').split())}" for name in CRITERIA_FIELDS]


def pair_rule_source() -> str:
    """The code that marks a (problem, exercise) pair close under one tau (`prune.close_pairs`)."""
    return inspect.getsource(close_pairs)


def criteria_text(cc: Any) -> str:
    """The criteria lines followed by the rule's source, for printing in notebook 11."""
    return "\n".join(criteria_lines(cc)) + "\n\n" + pair_rule_source()
