"""The unigram/bigram reference lines of notebook 08 (`phi_utils/evaluation/baselines.py`): exact
probabilities against a brute-force count over a tiny corpus, the held-out choice of lambda, the loss
mask, packed data on disk, and the token positions of `fig21.per_problem_loss` on real tokenizers and
models."""

from __future__ import annotations

import math
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from phi_utils.evaluation.baselines import (LAMBDAS, count_ngrams, fit_arm_data, fit_ngram, held_out_losses,
                                            score_problems, score_sequences, select_lambda)
from phi_utils.evaluation.fig21 import per_problem_loss

V = 5
# three rows of a packed stream (token 0 plays <|endoftext|>); the last row ends in masked padding,
# the second has a masked prompt (an exercise packed with loss on the solution only)
TRAIN = np.array([[1, 2, 3, 0, 1, 2, 2, 4],
                  [3, 1, 2, 1, 2, 3, 0, 4],
                  [2, 2, 3, 1, 0, 0, 0, 0]])
TRAIN_MASK = np.array([[1, 1, 1, 1, 1, 1, 1, 1],
                       [0, 0, 0, 1, 1, 1, 1, 1],
                       [1, 1, 1, 1, 1, 0, 0, 0]])
VAL = np.array([[1, 2, 4, 3, 3, 0, 2, 1], [4, 4, 1, 2, 3, 0, 0, 0]])
VAL_MASK = np.array([[1] * 8, [1, 1, 1, 1, 1, 1, 0, 0]])


def brute_pairs(rows, mask):
    """(context, target) of every trained position, by loops: position t >= 1 of a row with mask 1."""
    return [(int(r[t - 1]), int(r[t])) for r, m in zip(rows.tolist(), mask.tolist()) for t in range(1, len(r)) if m[t]]


def brute_model(rows, mask, lam):
    pairs = brute_pairs(rows, mask)
    uni = Counter(w for _, w in pairs)
    big = Counter(pairs)
    ctx = Counter(v for v, _ in pairs)
    n = len(pairs)

    def p1(w):
        return (uni[w] + 1) / (n + V)

    def p2(v, w):
        if ctx[v] == 0:
            return p1(w)
        return lam * big[(v, w)] / ctx[v] + (1 - lam) * p1(w)

    return p1, p2


def brute_loss(prob, seq, n_prompt, bigram):
    start = max(n_prompt, 1)
    nll = [-math.log(prob(seq[t - 1], seq[t]) if bigram else prob(seq[t])) for t in range(start, len(seq))]
    return len(nll), sum(nll) / len(nll)


def test_unigram_and_bigram_probabilities_and_losses_match_a_brute_force_count():
    lam = 0.3
    m = fit_ngram(TRAIN, TRAIN_MASK, V, lam=lam)
    p1, p2 = brute_model(TRAIN, TRAIN_MASK, lam)
    assert m.counts.n_tokens == len(brute_pairs(TRAIN, TRAIN_MASK)) == int(TRAIN_MASK[:, 1:].sum())
    for v in range(V):
        for w in range(V):
            assert m.unigram_prob(np.array([w]))[0] == pytest.approx(p1(w), abs=1e-12)
            assert m.bigram_prob(np.array([v]), np.array([w]))[0] == pytest.approx(p2(v, w), abs=1e-12)
        assert m.bigram_prob(np.full(V, v), np.arange(V)).sum() == pytest.approx(1.0, abs=1e-12)
    # token 4 never precedes a trained target: its row is the unigram alone
    assert m.bigram_prob(np.full(V, 4), np.arange(V)) == pytest.approx(m.unigram_prob(np.arange(V)), abs=1e-15)
    seqs = [([1, 2, 3, 0, 4, 2], 2), ([3, 3, 1], 0), ([2, 1, 4, 4], 4), ([4, 0, 1, 2, 3, 1, 1], 5)]
    got = score_sequences(m, seqs)
    for (seq, n_a), u, b in zip(seqs, got["unigram"], got["bigram"]):
        if len(seq) <= max(n_a, 1):
            assert u[0] == b[0] == 0 and math.isnan(u[1]) and math.isnan(b[1])
            continue
        bu, bb = brute_loss(lambda w: p1(w), seq, n_a, False), brute_loss(p2, seq, n_a, True)
        assert u[0] == bu[0] == b[0] == bb[0]
        assert abs(u[1] - bu[1]) < 1e-9 and abs(b[1] - bb[1]) < 1e-9


def test_lambda_is_the_grid_value_of_highest_held_out_likelihood():
    m = fit_ngram(TRAIN, TRAIN_MASK, V, VAL, VAL_MASK)
    pairs = brute_pairs(VAL, VAL_MASK)
    brute = {}
    for lam in LAMBDAS:
        _, p2 = brute_model(TRAIN, TRAIN_MASK, lam)
        brute[lam] = -sum(math.log(p2(v, w)) for v, w in pairs) / len(pairs)
    assert set(m.val_loss) == set(LAMBDAS) and m.n_val_tokens == len(pairs)
    for lam in LAMBDAS:
        assert abs(m.val_loss[lam] - brute[lam]) < 1e-9
    assert m.lam == max(LAMBDAS, key=lambda lam: -brute[lam])
    s = m.summary()
    assert s["lambda"] == m.lam and s["val_bigram_loss"] == m.val_loss[m.lam] and s["n_train_tokens"] == m.counts.n_tokens
    # the choice follows the held-out data: scoring the training rows themselves favours the counts
    v = np.array([p[0] for p in brute_pairs(TRAIN, TRAIN_MASK)])
    w = np.array([p[1] for p in brute_pairs(TRAIN, TRAIN_MASK)])
    assert select_lambda(held_out_losses(m, v, w)) == max(LAMBDAS)
    assert select_lambda({0.2: 1.0, 0.5: 1.0, 0.9: 2.0}) == 0.2 and select_lambda({}) == 0.5


def test_masked_and_padding_tokens_are_not_counted():
    base = count_ngrams(TRAIN, TRAIN_MASK, V)
    other = TRAIN.copy()
    other[2, 5:] = [4, 3, 4]  # different padding: the trained positions and their contexts are unchanged
    other[1, 0:2] = [4, 4]    # a different masked prompt, except the token before the first target
    again = count_ngrams(other, TRAIN_MASK, V)
    assert np.array_equal(base.unigram, again.unigram)
    assert np.array_equal(base.pair_keys, again.pair_keys) and np.array_equal(base.pair_counts, again.pair_counts)
    assert base.n_tokens == 7 + 5 + 4
    # all masked: nothing counted, every probability the add-one unigram's
    empty = fit_ngram(TRAIN, np.zeros_like(TRAIN_MASK), V, lam=0.5)
    assert empty.counts.n_tokens == 0 and empty.bigram_prob(np.array([1]), np.array([2]))[0] == pytest.approx(1 / V)


def test_fit_on_packed_data_and_large_vocabularies_stay_sparse(tmp_path, monkeypatch):
    from phi_utils.train.data import write_packed_arrays
    import phi_utils.evaluation.baselines as bl

    write_packed_arrays(tmp_path, {"train": (TRAIN, TRAIN_MASK), "val": (VAL, VAL_MASK)}, vocab=V, eos=0)
    m = fit_arm_data(tmp_path)
    ref = fit_ngram(TRAIN, TRAIN_MASK, V, VAL, VAL_MASK)
    assert m.lam == ref.lam and m.val_loss == ref.val_loss and m.source == str(tmp_path)
    assert np.array_equal(m.counts.pair_counts, ref.counts.pair_counts)
    # counted a row at a time (chunks merged): the same counts
    monkeypatch.setattr(bl, "_CHUNK_TOKENS", 1)
    chunked = count_ngrams(TRAIN, TRAIN_MASK, V)
    assert np.array_equal(chunked.pair_keys, ref.counts.pair_keys) and np.array_equal(chunked.pair_counts, ref.counts.pair_counts)
    # V = 8192: the counts hold only the pairs seen
    rng = np.random.default_rng(0)
    big = rng.integers(0, 8192, size=(64, 128))
    c = count_ngrams(big, np.ones_like(big), 8192)
    assert c.pair_keys.size <= 64 * 127 and c.pair_counts.sum() == 64 * 127
    with pytest.raises(ValueError, match="outside"):
        count_ngrams(big, np.ones_like(big), 4096)


# --------------------------------------------------------------------------- against per_problem_loss
@pytest.fixture(scope="module")
def problems():
    from phi_utils.evaluation.problems import load_humaneval

    probs = load_humaneval()[:8]
    # a prompt-less problem: its first solution token has nothing to be conditioned on
    return probs + [SimpleNamespace(task_id="none/0", prompt="", canonical_solution=probs[0].canonical_solution)]


@pytest.fixture(scope="module")
def tokenizer(problems):
    from phi_utils.model.tokenizer import train_tokenizer

    return train_tokenizer([p.prompt + p.canonical_solution for p in problems], 300, show_progress=False)


@pytest.fixture(scope="module")
def fitted(problems, tokenizer):
    """Baselines fit on the problems' own text, tokenised and packed into rows as a run packs them."""
    from phi_utils.model.tokenizer import eos_id

    stream: list[int] = []
    for p in problems:
        stream += tokenizer(p.prompt + p.canonical_solution, add_special_tokens=False)["input_ids"] + [eos_id(tokenizer)]
    T = 64
    pad = (-len(stream)) % T
    toks = np.array(stream + [eos_id(tokenizer)] * pad).reshape(-1, T)
    mask = np.ones_like(toks)
    mask.reshape(-1)[len(stream):] = 0
    return fit_ngram(toks[1:], mask[1:], len(tokenizer), toks[:1], mask[:1])


class TableLM(torch.nn.Module):
    """A causal "language model" whose logits at each position are log P(. | previous token) of a
    count model: per_problem_loss on it must give that count model's per-problem loss."""

    def __init__(self, log_probs: np.ndarray) -> None:
        super().__init__()
        self.table = torch.nn.Embedding.from_pretrained(torch.tensor(log_probs, dtype=torch.float64))

    def forward(self, ids):
        return self.table(ids)


def test_scoring_takes_per_problem_loss_tokens_and_conditioning(problems, tokenizer, fitted):
    Vt = fitted.vocab_size
    vs, ws = np.repeat(np.arange(Vt), Vt), np.tile(np.arange(Vt), Vt)
    tables = {"bigram": np.log(fitted.bigram_prob(vs, ws)).reshape(Vt, Vt),
              "unigram": np.tile(np.log(fitted.unigram_prob(np.arange(Vt))), (Vt, 1))}
    for max_len in (48, 2048):  # with and without truncation of prompts and solutions
        ours = score_problems(fitted, tokenizer, problems, max_len)
        for kind, table in tables.items():
            lm = SimpleNamespace(tokenizer=tokenizer, model=TableLM(table))
            theirs = per_problem_loss(lm, problems, max_len=max_len, batch_tokens=300)
            assert [n for n, _ in ours[kind]] == [n for n, _ in theirs]
            for (_, a), (_, b) in zip(ours[kind], theirs):  # the model's logits go through float32
                assert a == pytest.approx(b, rel=1e-5)
    assert ours["bigram"][-1][0] == len(tokenizer(problems[0].canonical_solution, add_special_tokens=False)["input_ids"]) - 1


def test_scored_tokens_match_a_real_phi_model(problems, tokenizer, fitted):
    from phi_utils.evaluation.fig21 import model_max_len
    from phi_utils.evaluation.generation import LoadedModel
    from phi_utils.model import PhiForCausalLM, get_model_config

    torch.manual_seed(0)
    model = PhiForCausalLM(get_model_config("smoke", vocab_size=len(tokenizer))).eval()
    lm = LoadedModel(model, tokenizer, "phi", "smoke")
    for max_len in (None, 40):
        theirs = per_problem_loss(lm, problems, max_len=max_len)
        ours = score_problems(fitted, tokenizer, problems, max_len or model_max_len(model))
        assert [n for n, _ in ours["bigram"]] == [n for n, _ in ours["unigram"]] == [n for n, _ in theirs]
