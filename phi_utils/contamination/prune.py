"""Pruning CodeExercises by similarity to HumanEval (paper §5.2, Table 3).

An exercise e and a HumanEval problem p are *close* at threshold τ when (per `combine`):

* `ast`:        τ(p, e) >= τ                          (AST match rate, `ast_match`)
* `embedding`:  d(p, e) <= embedding_threshold         (L2 of normalised embeddings)
* `or`:         either criterion (the default; the paper does not say how it combined them)
* `and`:        both criteria

An exercise is **removed** at τ when it is close to at least one HumanEval problem, and a HumanEval
problem is **similar** at τ when it is close to at least one exercise (the paper's definition of the
"similar" subset); the others are "non-similar". The pair matrices are processed chunk by chunk
(`PruneAccumulator.update`), so 164 × 880k pairs never need to sit in memory at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

COMBINES = ("or", "and", "ast", "embedding")


def close_pairs(ast_sim: np.ndarray | None, emb_dist: np.ndarray | None, tau: float, emb_threshold: float,
                combine: str) -> np.ndarray:
    """Boolean matrix of close (problem, exercise) pairs under one τ."""
    if combine not in COMBINES:
        raise ValueError(f"contamination.combine unknown: {combine!r}")
    a = None if ast_sim is None else ast_sim >= tau
    e = None if emb_dist is None else emb_dist <= emb_threshold
    if combine == "ast" or e is None:
        if a is None:
            raise ValueError("no similarity matrix given")
        return a
    if combine == "embedding" or a is None:
        return e
    return (a | e) if combine == "or" else (a & e)


@dataclass
class PruneAccumulator:
    """Accumulates, chunk by chunk over the exercises, removed exercises and similar problems per τ."""

    taus: list[float]
    emb_threshold: float
    combine: str
    n_problems: int
    n_exercises: int
    removed: dict[float, np.ndarray] = field(init=False)
    similar: dict[float, np.ndarray] = field(init=False)
    ast_best: np.ndarray = field(init=False)
    """Per exercise: its highest AST match rate to any problem."""
    emb_best: np.ndarray = field(init=False)
    """Per exercise: its smallest embedding distance to any problem."""

    def __post_init__(self) -> None:
        self.removed = {t: np.zeros(self.n_exercises, dtype=bool) for t in self.taus}
        self.similar = {t: np.zeros(self.n_problems, dtype=bool) for t in self.taus}
        self.ast_best = np.zeros(self.n_exercises, dtype=np.float32)
        self.emb_best = np.full(self.n_exercises, np.inf, dtype=np.float32)

    def update(self, start: int, ast_sim: np.ndarray | None, emb_dist: np.ndarray | None) -> None:
        """Add the (n_problems, chunk) matrices for exercises `start .. start + chunk`."""
        m = ast_sim if ast_sim is not None else emb_dist
        stop = start + m.shape[1]
        if ast_sim is not None and ast_sim.shape[1]:
            self.ast_best[start:stop] = ast_sim.max(axis=0)
        if emb_dist is not None and emb_dist.shape[1]:
            self.emb_best[start:stop] = emb_dist.min(axis=0)
        for t in self.taus:
            close = close_pairs(ast_sim, emb_dist, t, self.emb_threshold, self.combine)
            self.removed[t][start:stop] = close.any(axis=0)
            self.similar[t] |= close.any(axis=1)

    def counts(self) -> list[dict]:
        """One row per τ: removed/kept exercises and similar/non-similar problems."""
        rows = []
        for t in self.taus:
            r = int(self.removed[t].sum())
            s = int(self.similar[t].sum())
            rows.append({"tau": t, "combine": self.combine, "embedding_threshold": self.emb_threshold,
                         "exercises": self.n_exercises, "removed": r, "kept": self.n_exercises - r,
                         "removed_fraction": r / self.n_exercises if self.n_exercises else 0.0,
                         "similar_problems": s, "non_similar_problems": self.n_problems - s})
        return rows


def prune_counts(ast_sim: np.ndarray | None, emb_dist: np.ndarray | None, taus: list[float], emb_threshold: float,
                 combine: str) -> list[dict]:
    """Counts per τ for full (n_problems, n_exercises) matrices (small sets, tests)."""
    m = ast_sim if ast_sim is not None else emb_dist
    acc = PruneAccumulator(list(taus), emb_threshold, combine, m.shape[0], m.shape[1])
    acc.update(0, ast_sim, emb_dist)
    return acc.counts()
