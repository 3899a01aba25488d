"""Decontamination built into generation: flag exercises close to HumanEval or MBPP problems.

The paper checks contamination only after training (§5); here each exercise's docstring is
compared with every benchmark problem text *before* it enters CodeExercises:
* n-gram: shares a word n-gram (n = 13 by default, as §5) with a benchmark text, through the same
  index as the §5 analysis (`phi_utils.contamination.ngram`). A benchmark text shorter than n words
  (most MBPP prompts are one sentence) counts as matched when the exercise contains it whole, so
  short problems are not exempt by construction;
* embedding: MiniLM cosine similarity to some benchmark text >= a threshold.
Flagged exercises are excluded by default (`ExerciseConfig.decontaminate`) and counted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..contamination.ngram import build_index
from .diversity import embed

SHORT_TEXT_MIN_WORDS = 5
"""A benchmark text shorter than n words counts as matched when contained whole, if it has at least
this many words (a 1-4 word "problem" would match generic phrases)."""


@dataclass(frozen=True)
class BenchmarkText:
    benchmark: str
    """`humaneval` or `mbpp`."""
    task_id: str
    text: str
    """HumanEval: the prompt's docstring (signature line kept); MBPP: the problem statement."""


def _humaneval_docstring(prompt: str) -> str:
    m = re.search(r'("""|\'\'\')(.*?)(\1|\Z)', prompt, re.S)
    return m.group(2).strip() if m else prompt


def humaneval_texts() -> list[BenchmarkText]:
    """The 164 HumanEval docstrings (problems from `phi_utils.evaluation.problems.load_humaneval`)."""
    from ..evaluation.problems import load_humaneval

    return [BenchmarkText("humaneval", p.task_id, _humaneval_docstring(p.prompt)) for p in load_humaneval()]


def mbpp_texts() -> list[BenchmarkText]:
    """All 974 MBPP problem statements (`phi_utils.contamination.stage.mbpp_problems`; [] when absent)."""
    from ..contamination.stage import mbpp_problems

    return [BenchmarkText("mbpp", p.task_id.split("/", 1)[1], p.prompt) for p in mbpp_problems()]


@lru_cache(maxsize=1)
def benchmark_texts() -> tuple[BenchmarkText, ...]:
    return tuple(humaneval_texts() + mbpp_texts())


@dataclass
class ContaminationFlag:
    ngram_matches: list[str]
    """`benchmark/task_id` sharing an n-gram."""
    max_similarity: float | None
    """Highest MiniLM cosine similarity to a benchmark text."""
    nearest: str | None
    """`benchmark/task_id` of that closest text."""
    flagged: bool

    def to_dict(self) -> dict[str, Any]:
        return {"ngram_matches": self.ngram_matches, "max_similarity": self.max_similarity,
                "nearest": self.nearest, "flagged": self.flagged}


@lru_cache(maxsize=1)
def _benchmark_embeddings() -> np.ndarray:
    """MiniLM embeddings of all benchmark texts, cached on disk (outside the repo) by content hash:
    ~1,100 texts take tens of seconds on 2 busy cores, and they never change."""
    import hashlib
    import os

    texts = [r.text for r in benchmark_texts()]
    key = hashlib.sha256("\x00".join(texts).encode("utf-8")).hexdigest()[:16]
    cache = Path(os.environ.get("PHI_CACHE", Path.home() / ".cache" / "phi_utils")) / "synth" / f"bench_minilm_{key}.npy"
    if cache.exists():
        try:
            arr = np.load(cache)
            if arr.shape[0] == len(texts):
                return arr
        except (OSError, ValueError):
            pass  # corrupt cache: recompute
    arr = embed(texts)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npy")
        np.save(tmp, arr)
        os.replace(tmp, cache)
    except OSError:
        pass  # read-only home: just recompute next time
    return arr


def check_contamination(texts: Sequence[str], n: int = 13, sim_threshold: float = 0.9,
                        refs: Sequence[BenchmarkText] | None = None, use_embeddings: bool = True) -> list[ContaminationFlag]:
    """Flag each text sharing an n-gram with, or embedding within `sim_threshold` of, a benchmark text."""
    refs = list(benchmark_texts() if refs is None else refs)
    if not refs or not texts:
        return [ContaminationFlag([], None, None, False) for _ in texts]
    keys = [f"{r.benchmark}/{r.task_id}" for r in refs]
    idx = build_index(dict(zip(keys, (r.text for r in refs))), n, min_short_words=SHORT_TEXT_MIN_WORDS)
    sims = None
    if use_embeddings:
        ref_emb = _benchmark_embeddings() if refs == list(benchmark_texts()) else embed([r.text for r in refs])
        sims = embed(list(texts)) @ ref_emb.T
    out = []
    for k, t in enumerate(texts):
        ng = sorted(idx.query(t))
        ms, near = None, None
        if sims is not None:
            j = int(sims[k].argmax())
            ms, near = float(sims[k, j]), f"{refs[j].benchmark}/{refs[j].task_id}"
        out.append(ContaminationFlag(ng, ms, near, bool(ng) or (ms is not None and ms >= sim_threshold)))
    return out
