"""Recorded random draws that make synthetic prompts diverse (paper §2.2; TinyStories' random words).

Every draw comes from `random.Random(seed)` with a per-sample seed derived from (base seed, kind,
index), so any sample's prompt can be regenerated from its stored seed and audited.
The vocabularies are data files in `phi_utils/synth/data/` (written for this project).
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).resolve().parent / "data"


def sample_seed(base: int, kind: str, index: int) -> int:
    """A stable 31-bit seed for sample `index` of `kind` (independent of Python's hash seed)."""
    h = hashlib.sha256(f"{kind}:{base}:{index}".encode()).digest()
    return int.from_bytes(h[:4], "big") & 0x7FFFFFFF


@lru_cache(maxsize=None)
def topic_taxonomy() -> tuple[tuple[str, str], ...]:
    """(category, topic) pairs: a few hundred programming and algorithmic-reasoning topics."""
    data = json.loads((DATA_DIR / "topics.json").read_text(encoding="utf-8"))
    return tuple((cat, t) for cat, topics in data.items() for t in topics)


@lru_cache(maxsize=None)
def audiences() -> tuple[str, ...]:
    return tuple(json.loads((DATA_DIR / "audiences.json").read_text(encoding="utf-8")))


@lru_cache(maxsize=None)
def styles() -> tuple[str, ...]:
    return tuple(json.loads((DATA_DIR / "styles.json").read_text(encoding="utf-8")))


@lru_cache(maxsize=None)
def word_list() -> tuple[str, ...]:
    return tuple(w.strip() for w in (DATA_DIR / "words.txt").read_text(encoding="utf-8").splitlines() if w.strip())


@lru_cache(maxsize=None)
def function_name_vocab() -> dict[str, tuple[str, ...]]:
    data = json.loads((DATA_DIR / "function_names.json").read_text(encoding="utf-8"))
    return {k: tuple(v) for k, v in data.items()}


def vocab_sizes() -> dict[str, int]:
    """How many choices each draw has (for the notebook's prompt-space size)."""
    fn = function_name_vocab()
    return {"topics": len(topic_taxonomy()), "categories": len({c for c, _ in topic_taxonomy()}),
            "audiences": len(audiences()), "styles": len(styles()), "words": len(word_list()),
            "fn_verbs": len(fn["verbs"]), "fn_adjectives": len(set(fn["adjectives"])), "fn_nouns": len(fn["nouns"])}


@dataclass(frozen=True)
class TextbookDraw:
    """What one textbook prompt was composed from."""

    seed: int
    """Per-sample seed (drives the draw and the teacher's sampling)."""
    randomised: bool
    """False for the ablation's fixed prompt."""
    category: str | None
    topic: str | None
    audience: str | None
    style: str | None
    words: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["words"] = list(self.words)
        return d


def draw_textbook(seed: int, n_words: int = 3, randomised: bool = True) -> TextbookDraw:
    """Draw topic, audience, style and `n_words` random words from `seed` (nothing when not randomised)."""
    if not randomised:
        return TextbookDraw(seed, False, None, None, None, None, ())
    rng = random.Random(seed)
    category, topic = rng.choice(topic_taxonomy())
    return TextbookDraw(seed, True, category, topic, rng.choice(audiences()), rng.choice(styles()),
                        tuple(rng.sample(word_list(), n_words)))


def draw_function_name(seed: int) -> str:
    """A snake_case name `verb[_adjective]_noun` from the constrained vocabulary (the paper's lever
    for exercise diversity)."""
    rng = random.Random(seed)
    fn = function_name_vocab()
    parts = [rng.choice(fn["verbs"]), rng.choice(fn["adjectives"]), rng.choice(fn["nouns"])]
    return "_".join(p for p in parts if p)


@dataclass(frozen=True)
class ExerciseDraw:
    """What one exercise prompt was composed from."""

    seed: int
    function_name: str
    category: str
    topic: str
    audience: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def draw_exercise(seed: int) -> ExerciseDraw:
    rng = random.Random(seed ^ 0x5EED)
    category, topic = rng.choice(topic_taxonomy())
    return ExerciseDraw(seed, draw_function_name(seed), category, topic, rng.choice(audiences()))
