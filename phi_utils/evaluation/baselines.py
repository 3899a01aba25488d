"""Reference lines for "learned": unigram and bigram count models fit on an arm's own training tokens,
scored on the canonical solutions exactly as `fig21.per_problem_loss` scores a transformer.

A model that predicts the canonical solutions no better than a bigram table fit on its own training
data has learned token statistics, not code. These baselines are a property of an arm's *data* (its
packed `train` split, `<run_dir>/<step>/data/`), so they are the same for every seed of the arm.

What is counted. A packed split is rows of a token stream (documents joined by `<|endoftext|>`, which
is counted like any token) and a loss mask. The counts are taken over exactly the positions the
transformer is trained to predict: position t >= 1 of a row whose mask is 1 (padding and, for
exercises packed with `loss_on_solution_only`, the prompts have mask 0). The bigram's context is the
token before, whatever its mask, as the transformer sees it; pairs never straddle two rows.

Smoothing (V = the vocabulary size of the packing, N = the number of counted tokens):
- unigram, add-one:  P1(w) = (c(w) + 1) / (N + V);
- bigram, interpolated with the add-one unigram:
  P2(w | v) = lam * c(v, w) / c(v) + (1 - lam) * P1(w), and P2(w | v) = P1(w) for a context v never
  seen in training (c(v) = 0). `lam` is the value of `LAMBDAS` with the highest likelihood of the
  arm's held-out `val` split (the lowest nats/token; ties go to the smaller `lam`); every value's
  held-out loss is kept in the result.

Memory: the bigram counts are sparse (sorted pair keys `v * V + w` with their counts), never a V x V
table: 5M training tokens give at most 5M distinct pairs, against 67M cells for V = 8192.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .fig21 import canonical_sequences

LAMBDAS: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
"""The grid the bigram's interpolation weight is chosen from, on the held-out split."""
KINDS: tuple[str, ...] = ("unigram", "bigram")
"""The baselines, in the order they are reported."""
_CHUNK_TOKENS = 1 << 22  # rows read from a memory map at a time: ~4M tokens (32 MB as int64)


@dataclass(frozen=True)
class NgramCounts:
    """Unigram and sparse bigram counts over the trained positions of some token rows."""

    vocab_size: int
    """V: token ids are in [0, V)."""
    unigram: np.ndarray
    """c(w), shape (V,), int64: how often each token is a trained target."""
    pair_keys: np.ndarray
    """Sorted distinct keys `v * V + w` of the (context v, target w) pairs seen, int64."""
    pair_counts: np.ndarray
    """c(v, w) of each key, int64."""

    @property
    def n_tokens(self) -> int:
        """N: the number of counted targets (also the number of pairs)."""
        return int(self.unigram.sum())

    @property
    def context(self) -> np.ndarray:
        """c(v) = sum over w of c(v, w), shape (V,)."""
        return np.bincount(self.pair_keys // self.vocab_size, weights=self.pair_counts,
                           minlength=self.vocab_size).astype(np.int64)


@dataclass
class NgramBaselines:
    """Unigram (add-one) and interpolated bigram models fit on one arm's training tokens."""

    counts: NgramCounts
    """The training counts."""
    lam: float
    """The bigram's interpolation weight (chosen on the held-out split, or given)."""
    val_loss: dict[float, float] = field(default_factory=dict)
    """Held-out nats/token of the bigram at every grid value of lam (empty when lam was given)."""
    val_unigram_loss: float | None = None
    """Held-out nats/token of the unigram."""
    n_val_tokens: int = 0
    """How many held-out targets lam was chosen on."""
    source: str = ""
    """Where the tokens came from (a packed data directory)."""
    fingerprint: str = ""
    """The packing's fingerprint (`meta.json`), which names the tokenizer and the data."""
    fit_s: float = 0.0
    """Seconds the fit took (counting + choosing lam)."""
    _context: np.ndarray | None = field(default=None, repr=False)

    @property
    def vocab_size(self) -> int:
        return self.counts.vocab_size

    @property
    def context(self) -> np.ndarray:
        if self._context is None:
            self._context = self.counts.context
        return self._context

    def unigram_prob(self, w: np.ndarray) -> np.ndarray:
        """P1(w) = (c(w) + 1) / (N + V)."""
        w = _check_ids(w, self.vocab_size)
        return (self.counts.unigram[w] + 1.0) / (self.counts.n_tokens + self.vocab_size)

    def bigram_prob(self, v: np.ndarray, w: np.ndarray, lam: float | None = None) -> np.ndarray:
        """P2(w | v) = lam * c(v, w) / c(v) + (1 - lam) * P1(w); P1(w) where c(v) = 0."""
        lam = self.lam if lam is None else lam
        v, w = _check_ids(v, self.vocab_size), _check_ids(w, self.vocab_size)
        ml, seen = _ml_bigram(self.counts, self.context, v, w)
        return np.where(seen, lam * ml + (1 - lam) * self.unigram_prob(w), self.unigram_prob(w))

    def summary(self) -> dict[str, Any]:
        """The fit in numbers (for `scores.json` and sidecars): no arrays."""
        return {"smoothing": {"unigram": "add-one", "bigram": "interpolated with the add-one unigram; the "
                              "unigram alone after a context unseen in training"},
                "lambda": self.lam, "lambda_grid": sorted(self.val_loss), "val_loss_by_lambda":
                    {f"{k:g}": v for k, v in sorted(self.val_loss.items())},
                "val_bigram_loss": self.val_loss.get(self.lam), "val_unigram_loss": self.val_unigram_loss,
                "n_val_tokens": self.n_val_tokens, "vocab_size": self.vocab_size,
                "n_train_tokens": self.counts.n_tokens, "n_distinct_pairs": int(self.counts.pair_keys.size),
                "source": self.source, "fingerprint": self.fingerprint, "fit_s": round(self.fit_s, 2)}


def _check_ids(x: Any, vocab: int) -> np.ndarray:
    a = np.asarray(x, dtype=np.int64)
    if a.size and (a.min() < 0 or a.max() >= vocab):
        raise ValueError(f"token ids outside [0, {vocab}): the tokenizer is not the one the data was packed with")
    return a


def _ml_bigram(counts: NgramCounts, context: np.ndarray, v: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(c(v, w) / c(v), c(v) > 0) for arrays of pairs; 0 where the pair was never seen."""
    keys = v * counts.vocab_size + w
    c_vw = np.zeros(keys.shape, dtype=np.int64)
    if counts.pair_keys.size:
        pos = np.minimum(np.searchsorted(counts.pair_keys, keys), counts.pair_keys.size - 1)
        c_vw = np.where(counts.pair_keys[pos] == keys, counts.pair_counts[pos], 0)
    c_v = context[v]
    return np.where(c_v > 0, c_vw / np.maximum(c_v, 1), 0.0), c_v > 0


# --------------------------------------------------------------------------- counting
def _row_chunks(tokens: np.ndarray, mask: np.ndarray):
    """(tokens, mask) of whole rows, a few million tokens at a time, as int64 / bool arrays."""
    tokens, mask = (np.asarray(tokens)[None] if np.ndim(tokens) == 1 else tokens,
                    np.asarray(mask)[None] if np.ndim(mask) == 1 else mask)
    if tokens.shape != mask.shape:
        raise ValueError(f"tokens {tokens.shape} and mask {mask.shape} differ in shape")
    step = max(1, _CHUNK_TOKENS // max(1, tokens.shape[1]))
    for i in range(0, tokens.shape[0], step):
        yield np.asarray(tokens[i:i + step], dtype=np.int64), np.asarray(mask[i:i + step], dtype=bool)


def target_pairs(tokens: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(context, target) of every trained position of rows `tokens` (n, T) under `mask` (n, T):
    position t >= 1 with mask 1, the context being the token at t - 1 of the same row. A 1-d array
    is one row."""
    vs, ws = [], []
    for tok, msk in _row_chunks(tokens, mask):
        keep = msk[:, 1:]
        vs.append(tok[:, :-1][keep])
        ws.append(tok[:, 1:][keep])
    if not vs:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(vs), np.concatenate(ws)


def count_ngrams(tokens: np.ndarray, mask: np.ndarray, vocab_size: int) -> NgramCounts:
    """Unigram and sparse bigram counts of the trained positions of `tokens` (see `target_pairs`);
    chunked over rows, so a memory map is never read whole."""
    uni = np.zeros(vocab_size, dtype=np.int64)
    keys, cnts = np.zeros(0, np.int64), np.zeros(0, np.int64)
    for tok, msk in _row_chunks(tokens, mask):
        keep = msk[:, 1:]
        v, w = _check_ids(tok[:, :-1][keep], vocab_size), _check_ids(tok[:, 1:][keep], vocab_size)
        uni += np.bincount(w, minlength=vocab_size)
        k, c = np.unique(v * vocab_size + w, return_counts=True)
        if keys.size:  # merge with the counts so far
            k, inv = np.unique(np.concatenate([keys, k]), return_inverse=True)
            c = np.bincount(inv, weights=np.concatenate([cnts, c]), minlength=k.size).astype(np.int64)
        keys, cnts = k, c.astype(np.int64)
    return NgramCounts(vocab_size, uni, keys, cnts)


# --------------------------------------------------------------------------- fitting
def held_out_losses(model: NgramBaselines, v: np.ndarray, w: np.ndarray,
                    lambdas: Sequence[float] = LAMBDAS) -> dict[float, float]:
    """Nats/token of the bigram on held-out pairs (v, w) at every lam of `lambdas`."""
    if v.size == 0:
        return {}
    ml, seen = _ml_bigram(model.counts, model.context, v, w)
    p1 = model.unigram_prob(w)
    return {float(lam): float(-np.log(np.where(seen, lam * ml + (1 - lam) * p1, p1)).mean()) for lam in lambdas}


def select_lambda(losses: dict[float, float], default: float = 0.5) -> float:
    """The lam of the lowest held-out loss (the highest likelihood); the smaller lam on a tie;
    `default` when there is nothing held out."""
    if not losses:
        return default
    best = min(losses.values())
    return min(lam for lam, loss in losses.items() if loss == best)


def fit_ngram(train_tokens: np.ndarray, train_mask: np.ndarray, vocab_size: int,
              val_tokens: np.ndarray | None = None, val_mask: np.ndarray | None = None,
              lambdas: Sequence[float] = LAMBDAS, lam: float | None = None, source: str = "",
              fingerprint: str = "") -> NgramBaselines:
    """Fit both baselines on token rows (n, T) with their loss mask; choose lam on the held-out rows
    from `lambdas` (unless `lam` is given; 0.5 when nothing is held out)."""
    t0 = time.perf_counter()
    model = NgramBaselines(count_ngrams(train_tokens, train_mask, vocab_size), lam if lam is not None else 0.5,
                           source=source, fingerprint=fingerprint)
    if lam is None and val_tokens is not None and val_mask is not None:
        v, w = target_pairs(val_tokens, val_mask)
        v, w = _check_ids(v, vocab_size), _check_ids(w, vocab_size)
        model.val_loss = held_out_losses(model, v, w, lambdas)
        model.n_val_tokens = int(w.size)
        model.val_unigram_loss = float(-np.log(model.unigram_prob(w)).mean()) if w.size else None
        model.lam = select_lambda(model.val_loss)
    model.fit_s = time.perf_counter() - t0
    return model


def fit_packed(train: Any, val: Any = None, lambdas: Sequence[float] = LAMBDAS, lam: float | None = None,
               source: str = "") -> NgramBaselines:
    """Fit on `PackedData` splits (`train`, and `val` to choose lam); V is the packing's vocabulary."""
    vocab = int(train.meta["vocab_size"])
    return fit_ngram(train.tokens, train.mask, vocab, None if val is None else val.tokens,
                     None if val is None else val.mask, lambdas=lambdas, lam=lam, source=source,
                     fingerprint=str(train.meta.get("fingerprint", "")))


def fit_arm_data(data_dir: str | Path, lambdas: Sequence[float] = LAMBDAS) -> NgramBaselines:
    """Fit on an arm's packed data, `<run_dir>/<step>/data/`: counts on `train`, lam on `val`.

    For the finetune arm (C) this is CodeExercises alone, with its loss mask (the solutions, when packed
    with `loss_on_solution_only`): C's model also saw CodeTextbook during the pretraining it starts
    from (B), but its baselines are those of the data it was last trained on, so C's gap reads like
    every other arm's (what finetuning on CodeExercises learned beyond CodeExercises' statistics).
    """
    from ..train.data import PackedData

    data_dir = Path(data_dir)
    train = PackedData.open(data_dir, "train")
    try:
        val = PackedData.open(data_dir, "val")
    except (KeyError, ValueError):
        val = None
    return fit_packed(train, val, lambdas=lambdas, source=str(data_dir))


# --------------------------------------------------------------------------- scoring
def score_sequences(model: NgramBaselines, seqs: Sequence[tuple[Sequence[int], int]]) -> dict[str, list[tuple[int, float]]]:
    """Per sequence (ids, prompt length): (scored tokens, nats/token) of each baseline, over positions
    `max(prompt length, 1)` to the end, each target given the token before it (the first solution
    token is conditioned on the last prompt token). Nothing to score: (0, nan)."""
    lengths, vs, ws = [], [], []
    for ids, n_a in seqs:
        ids = np.asarray(ids, dtype=np.int64)
        start = max(int(n_a), 1)
        lengths.append(max(0, ids.size - start))
        vs.append(ids[start - 1:-1] if ids.size > start else ids[:0])
        ws.append(ids[start:])
    v = np.concatenate(vs) if vs else np.zeros(0, np.int64)
    w = np.concatenate(ws) if ws else np.zeros(0, np.int64)
    nll = {"unigram": -np.log(model.unigram_prob(w)), "bigram": -np.log(model.bigram_prob(v, w))}
    ends = np.cumsum(lengths)
    out: dict[str, list[tuple[int, float]]] = {}
    for kind, arr in nll.items():
        sums = np.concatenate([[0.0], np.cumsum(arr)])
        out[kind] = [(n, float((sums[e] - sums[e - n]) / n) if n else float("nan")) for n, e in zip(lengths, ends)]
    return out


def score_problems(model: NgramBaselines, tokenizer: Any, problems: Sequence[Any],
                   max_len: int) -> dict[str, list[tuple[int, float]]]:
    """`{"unigram": [...], "bigram": [...]}`: per problem (scored tokens, nats/token) of its canonical
    solution given its prompt, the same tokens and positions as `fig21.per_problem_loss(lm, problems,
    max_len)` (pass `fig21.model_max_len(lm.model)` for the model it is compared with), so each
    baseline pairs with the transformer problem by problem."""
    return score_sequences(model, canonical_sequences(tokenizer, problems, max_len))
