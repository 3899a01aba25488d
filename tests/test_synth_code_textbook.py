"""CodeTextbook's proportions: the filtered code is subsampled so the synthetic share holds, every
row carries its origin, and the filtered-code-alone set matches its token count."""

from __future__ import annotations

import pytest

from phi_utils.config import SHARED_DATA, TextbookConfig, get_profile
from phi_utils.rundir import RunDir
from phi_utils.steps import open_run
from phi_utils.synth.diversity import approx_tokens
from phi_utils.synth.textbooks import (FILTERED_CODE, build_code_textbook, code_token_budget,
                                       sample_to_budget, synthetic_share, tokens_by_origin)


def test_budget_and_share_arithmetic():
    assert code_token_budget(1000, 1 / 7, 0) == 6000
    assert code_token_budget(1000, 1 / 7, 50_000) == 50_000  # the floor wins when synthetic data is scarce
    assert code_token_budget(1000, 0.0, 0) is None
    assert tokens_by_origin(["a", "b", "a"], [1, 2, 3]) == {"a": 4, "b": 2}
    assert synthetic_share({FILTERED_CODE: 6, "generated": 1}) == pytest.approx(1 / 7)
    assert synthetic_share({}) is None


def test_sample_to_budget_is_seeded_and_within_budget():
    toks = [5, 17, 3, 40, 8, 8, 1, 22, 13, 9] * 20
    a = sample_to_budget(toks, 300, seed=1)
    assert a == sorted(a) and sum(toks[i] for i in a) <= 300 and sum(toks[i] for i in a) >= 290
    assert a == sample_to_budget(toks, 300, seed=1) and a != sample_to_budget(toks, 300, seed=2)
    assert sample_to_budget(toks, None, 0) == list(range(len(toks)))
    assert sample_to_budget(toks, 0, 0) == []


def _filtered(rd: RunDir, n_files: int) -> list[str]:
    from datasets import Dataset

    texts = [f"def f{i}(x):\n    return x + {i}  # add {i}\n" * (3 + i % 5) for i in range(n_files)]
    Dataset.from_dict({"text": texts}).save_to_disk(str(rd.path / "filtering" / "filtered"))
    return texts


def _passages(n: int, origin: str) -> list[dict]:
    return [{"text": f"## Loops {i}\n\nA loop repeats a block of statements. " * 6, "origin": origin} for i in range(n)]


def test_code_textbook_holds_the_synthetic_share(tmp_path):
    rd = open_run(get_profile("smoke"), tmp_path / "run")
    code = _filtered(rd, 400)
    kept = _passages(5, "generated") + _passages(20, "open:library-of-phi-textbooks")
    tc = TextbookConfig(synthetic_share=1 / 7)
    m = build_code_textbook(rd, kept, rd.path / "textbooks", tc, seed=0)
    ct = __import__("datasets").load_from_disk(str(rd.path / "textbooks" / "code_textbook"))
    # the accounting is the dataset's own: recount it from the rows
    recount = tokens_by_origin(ct["origin"], [approx_tokens(t) for t in ct["text"]])
    assert recount == m["tokens_by_origin"] and set(recount) == {FILTERED_CODE, "generated", "open:library-of-phi-textbooks"}
    syn = sum(approx_tokens(p["text"]) for p in kept)
    assert recount["generated"] + recount["open:library-of-phi-textbooks"] == syn
    assert m["synthetic_share"] >= 1 / 7 and m["synthetic_share"] < 1 / 7 + 0.02  # code fills the budget closely
    assert m["filtered_code_available_tokens"] == sum(approx_tokens(t) for t in code) > recount[FILTERED_CODE]
    assert not m["notes"]
    alone = __import__("datasets").load_from_disk(str(rd.path / "textbooks" / "filtered_code"))
    assert set(alone["origin"]) == {FILTERED_CODE} and set(ct.filter(lambda r: r["origin"] == FILTERED_CODE)["text"]) <= set(alone["text"])
    assert abs(sum(alone["n_tokens"]) - m["tokens"]) <= max(approx_tokens(t) for t in code)
    assert m["filtered_code_alone"]["tokens"] == sum(alone["n_tokens"])


def test_scarce_synthetic_data_reports_the_lower_share(tmp_path):
    rd = open_run(get_profile("smoke"), tmp_path / "run")
    _filtered(rd, 400)
    tc = TextbookConfig(synthetic_share=1 / 7, min_filtered_tokens=5000)
    m = build_code_textbook(rd, _passages(2, "generated"), rd.path / "textbooks", tc, seed=0)
    assert m["synthetic_share"] < 1 / 7 and m["tokens_by_origin"][FILTERED_CODE] >= 4900
    assert any("below the target" in n for n in m["notes"])


def test_missing_filtered_code_gives_passages_only(tmp_path):
    rd = open_run(get_profile("smoke"), tmp_path / "run")
    m = build_code_textbook(rd, _passages(3, "generated"), rd.path / "textbooks", TextbookConfig(), seed=0)
    assert m["filtered_code_missing"] and m["synthetic_share"] == 1.0 and m["filtered_code_alone"]["rows"] == 0


@pytest.mark.skipif(not (SHARED_DATA / "synthetic" / "library-of-phi-textbooks").exists(), reason="shared data absent")
def test_tiny_topups_reach_the_share():
    """The tiny profile's open top-ups hold enough tokens for a 1/7 share above its filtered-code floor."""
    from phi_utils.synth.textbooks import python_code_tokens, topup_rows

    tc = get_profile("tiny").textbooks
    rows, notes = topup_rows(tc)
    syn = sum(approx_tokens(r["text"]) for r in rows)
    assert len(rows) == tc.topup_max and code_token_budget(syn, tc.synthetic_share, 0) >= tc.min_filtered_tokens
    # the first source gives only passages with Python code, the second fills up with prose sections
    first = [r for r in rows if r["origin"] == "open:evol-codealpaca-2k"]
    assert first and all("```python" in r["text"] or "```py\n" in r["text"] for r in first)
    assert len(notes) == 2 and sum(python_code_tokens(r["text"]) for r in rows) > 0.2 * syn


def test_finetune_epochs_over_code_exercises():
    from phi_utils.synth.exercises import finetune_epochs

    ft = get_profile("tiny").finetune
    got = finetune_epochs(40_960, ft)
    assert got["budget_tokens"] == ft.max_steps * ft.global_batch_size * ft.seq_len
    assert got["epochs"] == pytest.approx(got["budget_tokens"] / 40_960)
    assert finetune_epochs(0, ft)["epochs"] is None
    paper = finetune_epochs(180_000_000, get_profile("paper").finetune)
    assert 17 < paper["epochs"] < 18  # 6,000 x 256 x 2,048 tokens over ~180M


def _unit(rows):
    import numpy as np

    rows = np.asarray(rows, dtype=float)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_prompt_ablation_interval_and_small_n():
    import numpy as np
    from scipy.stats import bootstrap

    from phi_utils.synth.diversity import ablation_interval, nn_similarities

    rng = np.random.default_rng(0)
    spread = _unit(rng.normal(size=(14, 32)))  # randomised prompts: replies point every way
    clustered = _unit(np.ones((14, 32)) + 0.2 * rng.normal(size=(14, 32)))  # fixed prompt: near-copies
    got = ablation_interval(spread, clustered, seed=1)
    assert got["n_randomised"] == got["n_fixed"] == 14
    assert got["difference"]["ci95"][1] < 0 and "less redundant" in got["conclusion"] and "resolved" in got["conclusion"]
    # an independent computation of the same percentile interval
    ref = bootstrap((nn_similarities(spread), nn_similarities(clustered)), lambda a, b: a.mean() - b.mean(),
                    n_resamples=10_000, method="percentile", random_state=3, vectorized=False)
    assert np.allclose(got["difference"]["ci95"], [ref.confidence_interval.low, ref.confidence_interval.high], atol=0.01)
    small = ablation_interval(spread[:4], clustered[:4])
    assert small["n_randomised"] == 4 and "too small for a conclusion" in small["conclusion"]
    same = ablation_interval(spread[:12], _unit(rng.normal(size=(12, 32))))
    assert "no resolved difference" in same["conclusion"]
