"""Word n-gram overlap between benchmark docstrings and training text (paper §5.1).

Definition: text is lower-cased and split into words with the regex `\\w+` (so punctuation and
whitespace never matter); an n-gram is n consecutive words (n = 13 by default, as in the paper).
A benchmark problem and a training document *overlap* when they share at least one n-gram.

Scaling: the small side (164 HumanEval + ~1000 MBPP docstrings) is indexed once in a dict from the
hash of each n-gram to the problems holding it; the large side (exercises, CodeTextbook) is
streamed document by document and each of its n-grams is looked up in O(1). Cost is linear in the
number of training words, with no loop over pairs, so it scales to billions of tokens (and
shards trivially across processes).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from ..progress import tqdm

_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    """Lower-cased `\\w+` words of `text`."""
    return _WORD.findall(text.lower())


def ngrams(ws: list[str], n: int) -> Iterator[tuple[int, str]]:
    """(start word index, n-gram joined by spaces) for every n-gram of a word list."""
    for i in range(len(ws) - n + 1):
        yield i, " ".join(ws[i:i + n])


@dataclass
class NgramOverlap:
    """One shared n-gram between a benchmark problem and a training document."""

    problem_id: str
    doc_id: str
    ngram: str
    n_shared: int
    """Number of distinct n-grams the pair shares."""

    def to_dict(self) -> dict:
        return {"problem_id": self.problem_id, "doc_id": self.doc_id, "ngram": self.ngram, "n_shared": self.n_shared}


@dataclass
class NgramIndex:
    """Hash index of the n-grams of a (small) set of benchmark texts.

    With `min_short_words` > 0, a benchmark text shorter than n words (most MBPP prompts are one
    sentence) but at least that long is matched when a document contains its whole word run, so
    short problems are not exempt by construction (generation-time decontamination uses 5). The
    paper's §5 definition is plain 13-gram overlap: `min_short_words = 0`.
    """

    n: int = 13
    min_short_words: int = 0
    table: dict[int, set[str]] = field(default_factory=lambda: defaultdict(set))
    texts: dict[int, str] = field(default_factory=dict)
    """hash -> the n-gram string (first seen), to show overlaps readably."""
    short: list[tuple[str, str]] = field(default_factory=list)
    """(" w1 w2 ... wk ", problem id) for benchmark texts shorter than n words."""

    def add(self, problem_id: str, text: str) -> int:
        """Index one benchmark text; returns how many n-grams (or whole short runs) it has."""
        ws = words(text)
        if len(ws) < self.n:
            if self.min_short_words and len(ws) >= self.min_short_words:
                self.short.append((" " + " ".join(ws) + " ", problem_id))
                return 1
            return 0
        k = 0
        for _, g in ngrams(ws, self.n):
            h = hash(g)
            self.table[h].add(problem_id)
            self.texts.setdefault(h, g)
            k += 1
        return k

    def query(self, text: str) -> dict[str, list[str]]:
        """problem_id -> the distinct n-grams (or whole short texts) it shares with `text`."""
        hits: dict[str, list[str]] = {}
        seen: set[int] = set()
        ws = words(text)
        for _, g in ngrams(ws, self.n):
            h = hash(g)
            if h in seen:
                continue
            seen.add(h)
            pids = self.table.get(h)
            if pids and self.texts.get(h) == g:  # guard against hash collisions
                for pid in pids:
                    hits.setdefault(pid, []).append(g)
        if self.short:
            joined = " " + " ".join(ws) + " "
            for run, pid in self.short:
                if run in joined:
                    hits.setdefault(pid, []).append(run.strip())
        return hits


def build_index(problems: dict[str, str], n: int = 13, min_short_words: int = 0) -> NgramIndex:
    """Index benchmark texts (problem id -> docstring); see `NgramIndex` for `min_short_words`."""
    idx = NgramIndex(n=n, min_short_words=min_short_words)
    for pid, text in problems.items():
        idx.add(pid, text)
    return idx


def find_overlaps(index: NgramIndex, docs: Iterable[tuple[str, str]], total: int | None = None,
                  desc: str = "n-gram overlap") -> list[NgramOverlap]:
    """Stream (doc id, text) pairs through the index; every overlapping (problem, doc) pair."""
    out: list[NgramOverlap] = []
    for doc_id, text in tqdm(docs, total=total, desc=desc, unit="doc", mininterval=1.0):
        for pid, grams in index.query(text).items():
            out.append(NgramOverlap(pid, str(doc_id), grams[0], len(grams)))
    out.sort(key=lambda o: (-o.n_shared, o.problem_id, o.doc_id))
    return out


def overlap_table(problems: dict[str, str], docs: Iterable[tuple[str, str]], n: int = 13,
                  total: int | None = None, desc: str = "n-gram overlap") -> list[NgramOverlap]:
    """Convenience: `find_overlaps(build_index(problems, n), docs)`."""
    return find_overlaps(build_index(problems, n), docs, total=total, desc=desc)
