"""Notebook 08's statistics on real per-problem numbers: real Phi models (one trained here on the
canonical solutions, the other not), the batched per-problem loss against the unbatched reference,
pooling over seeds, paired differences over the same problems, generated conclusions, the Figure 2.1
sidecar and sandbox scoring of duplicated completions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from phi_utils.evaluation.figures import figure_2_1
from phi_utils.evaluation.fig21 import (BIGRAM, GREEDY, LOSS, UNIGRAM, conclusions, learned_sentences, per_problem_loss,
                                        summarize)
from phi_utils.evaluation.generation import LoadedModel, canonical_solution_loss
from phi_utils.evaluation.problems import load_humaneval
from phi_utils.evaluation.scores import EvalScores, ModelScores
from phi_utils.evaluation.tables import table1_rows

N_PROBLEMS = 12


@pytest.fixture(scope="module")
def humaneval():
    return load_humaneval()[:N_PROBLEMS]


@pytest.fixture(scope="module")
def tokenizer(humaneval):
    from phi_utils.model.tokenizer import train_tokenizer

    return train_tokenizer([p.prompt + p.canonical_solution for p in humaneval], 300, show_progress=False)


def _model(tokenizer, seed: int, train_on=None, steps: int = 0) -> LoadedModel:
    """A smoke-preset Phi initialised with `seed`; trained `steps` AdamW steps on prompt + solution."""
    from phi_utils.model import PhiForCausalLM, get_model_config

    torch.manual_seed(seed)
    model = PhiForCausalLM(get_model_config("smoke", vocab_size=len(tokenizer)))
    if steps:
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
        seqs = [torch.tensor([tokenizer(p.prompt + p.canonical_solution, add_special_tokens=False)["input_ids"][:128]])
                for p in train_on]
        model.train()
        for i in range(steps):
            ids = seqs[i % len(seqs)]
            out = model(ids)
            logits = out if isinstance(out, torch.Tensor) else out.logits
            loss = torch.nn.functional.cross_entropy(logits[0, :-1], ids[0, 1:])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    return LoadedModel(model, tokenizer, "phi", f"seed{seed}")


@pytest.fixture(scope="module")
def rows(humaneval, tokenizer):
    """problem_scores rows of two arms x two seeds: `raw` untrained, `textbook` trained on the problems
    (one thread: the training is bit-reproducible; the previous count is restored for later modules)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = []
    try:
        for arm, steps in (("raw", 0), ("textbook", 24)):
            for seed in (0, 1):
                lm = _model(tokenizer, seed, humaneval, steps)
                for p, (n, v) in zip(humaneval, per_problem_loss(lm, humaneval, batch_tokens=600)):
                    out.append({"model": f"{arm}_s{seed}", "arm": arm, "seed": seed, "benchmark": "humaneval",
                                "task_id": p.task_id, "loss_tokens": n, LOSS: v, GREEDY: 0.0})
    finally:
        torch.set_num_threads(threads)
    return out


def test_batched_per_problem_loss_matches_the_unbatched_reference(humaneval, tokenizer):
    lm = _model(tokenizer, 3)
    per = per_problem_loss(lm, humaneval, batch_tokens=500)  # several batches of right-padded rows
    for p, (n, v) in zip(humaneval[:4], per):
        assert v == pytest.approx(canonical_solution_loss(lm, [p]), rel=1e-5)
        assert n == len(tokenizer(p.canonical_solution, add_special_tokens=False)["input_ids"])
    weighted = sum(n * v for n, v in per) / sum(n for n, _ in per)
    assert weighted == pytest.approx(canonical_solution_loss(lm, humaneval), rel=1e-5)


def test_summary_pools_seeds_and_pairs_the_same_problems(rows):
    s = summarize(rows, n_boot=2000)
    a, b = s["arms"]["A"], s["arms"]["B"]
    assert a["seeds"] == b["seeds"] == [0, 1] and s["n_problems"] == {"humaneval": N_PROBLEMS}
    la, lb = a["metrics"][LOSS]["humaneval"], b["metrics"][LOSS]["humaneval"]
    for e, arm in ((la, "raw"), (lb, "textbook")):
        vals = np.array([[r[LOSS] for r in rows if r["arm"] == arm and r["seed"] == k] for k in (0, 1)])
        assert e["mean"] == pytest.approx(vals.mean()) and e["per_seed"] == pytest.approx(vals.mean(axis=1).tolist())
        assert e["ci95"][0] <= e["mean"] <= e["ci95"][1] and e["n_problems"] == N_PROBLEMS and e["n_seeds"] == 2
    (d,) = [d for d in s["paired_differences"] if d["metric"] == LOSS]
    assert d["name"] == "B - A" and d["n_problems"] == N_PROBLEMS
    assert d["mean"] == pytest.approx(lb["mean"] - la["mean"])
    # training on the canonical solutions lowers their loss far beyond seed and problem noise
    assert d["ci95"][1] < 0 and d["resolved"] and "resolved at 95% (lower)" in d["verdict"]
    # pass rates of 0 keep a Wilson upper bound: 0 of 12 -> [0, 24.2%]
    g = a["metrics"][GREEDY]["humaneval"]
    assert g["mean"] == 0 and g["ci95"][0] == pytest.approx(0, abs=1e-12) and g["ci95"][1] == pytest.approx(0.2425, abs=1e-3)
    assert any("(A) solves none of 12 humaneval problems" in c and "24.2%" in c for c in conclusions(s))


def test_conclusions_follow_the_numbers(rows):
    """Swap the two arms' numbers: the generated verdict flips from lower to higher."""
    swapped = [{**r, "arm": {"raw": "textbook", "textbook": "raw"}[r["arm"]]} for r in rows]
    before = [c for c in conclusions(summarize(rows, n_boot=2000)) if c.startswith("B - A") and "loss" in c]
    after = [c for c in conclusions(summarize(swapped, n_boot=2000)) if c.startswith("B - A") and "loss" in c]
    assert len(before) == len(after) == 1
    assert "(lower)" in before[0] and "(higher)" in after[0]
    # two seeds of the same untrained recipe, relabelled as two arms: no resolved difference
    same = [{**r, "arm": "textbook" if r["seed"] == 1 else "raw", "seed": 0} for r in rows if r["arm"] == "raw"]
    (d,) = [d for d in summarize(same, n_boot=2000)["paired_differences"] if d["metric"] == LOSS]
    assert abs(d["mean"]) < 0.5 * abs(summarize(rows, n_boot=2000)["paired_differences"][0]["mean"])


def test_arms_scored_on_different_problems_are_refused(rows):
    bad = [r for r in rows if not (r["arm"] == "textbook" and r["seed"] == 1 and r["task_id"] == "HumanEval/0")]
    with pytest.raises(ValueError, match="same problems"):
        summarize(bad, n_boot=100)


def _models(arms, **kw):
    return {f"{a}_s{k}": ModelScores(kind="phi", n_params=1000, arm=a, arm_letter=a, seed=k, **kw)
            for a in arms for k in (0, 1)}


def test_figure_sidecar_holds_seeds_means_intervals_and_differences(rows):

    # sampled pass@10 for seed 0 only (eval.sample_seeds = 1): the arm still lists both seeds
    rows = [{**r, "pass@10": 0.0} if r["seed"] == 0 else r for r in rows]
    scores = EvalScores("smoke", fig21=summarize(rows, n_boot=2000), models=_models(("raw", "textbook"), tokens_seen=5000))
    fig, data = figure_2_1(scores)
    assert data["n_problems"] == {"humaneval": N_PROBLEMS}
    for letter in ("A", "B"):
        arm = data["arms"][letter]
        assert arm["seeds"] == [0, 1] and len(arm["metrics"][LOSS]["humaneval"]["ci95"]) == 2
        assert arm["steps"][0].endswith("_s0")
        assert arm["metrics"]["pass@10"]["humaneval"]["n_seeds"] == 1 and arm["metrics"]["pass@10"]["humaneval"]["ci95"][1] > 0
    assert data["paired_differences"][0]["n_problems"] == N_PROBLEMS and data["conclusions"]
    measured = [r for r in table1_rows(scores) if r["source"].startswith("measured")]
    assert [r["model"].split(":")[0] for r in measured] == ["A", "B"]
    assert all(r["humaneval_ci95_%"] == "[0.0, 24.2]" and r["seeds"] == 2 for r in measured)


def _with_baselines(rows, offsets):
    """Rows with an arm-level unigram/bigram column: seed 0's loss per problem plus the arm's offset
    (the same for every seed of the arm, as a baseline fit on the arm's data is)."""
    seed0 = {(r["arm"], r["task_id"]): r[LOSS] for r in rows if r["seed"] == 0}
    return [{**r, BIGRAM: seed0[(r["arm"], r["task_id"])] + offsets[r["arm"]],
             UNIGRAM: seed0[(r["arm"], r["task_id"])] + offsets[r["arm"]] + 0.5} for r in rows]


def test_baselines_per_arm_with_gaps_and_generated_sentences(rows):
    assert summarize(rows, n_boot=500)["baseline_gaps"] == []  # no baseline columns: nothing added
    based = _with_baselines(rows, {"raw": -1.0, "textbook": +1.0})
    s = summarize(based, n_boot=2000)
    for letter, arm, off in (("A", "raw", -1.0), ("B", "textbook", +1.0)):
        a = s["arms"][letter]
        e, loss = a["metrics"][BIGRAM]["humaneval"], a["metrics"][LOSS]["humaneval"]
        seed0 = np.array([r[LOSS] for r in rows if r["arm"] == arm and r["seed"] == 0])
        assert e["mean"] == pytest.approx(seed0.mean() + off) and e["n_seeds"] == 1 and e["n_problems"] == N_PROBLEMS
        assert e["ci95"][0] < e["mean"] < e["ci95"][1]
        gaps = {g["baseline"]: g for g in s["baseline_gaps"] if g["arm"] == letter}
        assert set(gaps) == {"unigram", "bigram"}
        assert gaps["bigram"]["mean"] == pytest.approx(loss["mean"] - e["mean"])
        assert gaps["unigram"]["mean"] == pytest.approx(gaps["bigram"]["mean"] - 0.5)
        assert gaps["bigram"]["n_problems"] == N_PROBLEMS and gaps["bigram"]["n_seeds"] == 2
    # A sits a nat above its bigram, B a nat below: resolved both ways, said in words
    said = learned_sentences(s)
    assert said[0].startswith("(A) did not learn more than token statistics") and "(higher)" in said[0]
    assert said[1].startswith("(B) learned more than token statistics") and "(lower)" in said[1]
    assert said == [c for c in conclusions(s) if c.startswith("(A) did") or c.startswith("(B) learned")]
    scores = EvalScores("smoke", fig21=s, baselines={"raw": {"lambda": 0.3}}, models=_models(("raw", "textbook")))
    fig, data = figure_2_1(scores)
    assert data["baselines"]["A"]["bigram"]["humaneval"] == s["arms"]["A"]["metrics"][BIGRAM]["humaneval"]
    assert data["baselines"]["A"]["fit"] == {"lambda": 0.3} and data["baselines"]["B"]["fit"] is None
    assert len(data["baseline_gaps"]) == 4 and any("token statistics" in c for c in data["conclusions"])
    measured = [r for r in table1_rows(scores) if r["source"].startswith("measured")]
    a_bigram = s["arms"]["A"]["metrics"][BIGRAM]["humaneval"]
    assert measured[0]["bigram_loss"] == f"{a_bigram['mean']:.3f} [{a_bigram['ci95'][0]:.3f}, {a_bigram['ci95'][1]:.3f}]"
    assert all(r["canonical_loss"] and r["unigram_loss"] for r in measured)


def test_duplicate_completions_run_once_and_score_alike():
    from phi_utils.evaluation.harness import check_completions

    probs = load_humaneval()[:2]
    good, bad = probs[0].canonical_solution, "    return None\n"
    rows = [{"task_id": probs[0].task_id, "completion": c, "sample_index": i} for i, c in enumerate([good, good, bad, good])]
    rows += [{"task_id": probs[1].task_id, "completion": bad, "sample_index": i} for i in range(4)]
    res = check_completions({p.task_id: p for p in probs}, rows, ks=(1, 2, 5), progress=False)
    assert res.n_programs == 3 and res.n_samples == 8
    assert [r["passed"] for r in res.rows] == [True, True, False, True, False, False, False, False]
    assert [r["sample_index"] for r in res.rows] == [0, 1, 2, 3, 0, 1, 2, 3]
    # unbiased estimator: problem 0 has 3 of 4 correct (pass@1 0.75, pass@2 1.0), problem 1 none; no pass@5 of 4
    assert res.scores.counts == {probs[0].task_id: (4, 3), probs[1].task_id: (4, 0)}
    assert res.pass_at_k == {"pass@1": pytest.approx(0.375), "pass@2": pytest.approx(0.5)}


def test_scores_round_trip_through_a_run_directory(tmp_path, rows):
    from phi_utils.config import get_profile
    from phi_utils.evaluation.scores import (LossScore, PassRate, SampledScores, TeacherScores, load_scores,
                                             scores_if_run)
    from phi_utils.rundir import RunDirError
    from phi_utils.steps import open_run

    cfg = get_profile("smoke")
    rd = open_run(cfg, tmp_path / "run")
    assert scores_if_run(rd) is None  # never run: no scores, no error
    with pytest.raises(RunDirError, match="notebook 08"):
        load_scores(rd)
    m = ModelScores(kind="phi", n_params=1000, arm="raw", arm_letter="A", seed=1, path="p",
                    canonical_loss={"humaneval": LossScore(6.25, 12, 0.5, unigram=7.0, bigram=float("nan"))},
                    greedy={"humaneval": PassRate(0.25, [0.1, 0.5], 12, 2.0)},
                    sampled={"humaneval": SampledScores({"pass@1": PassRate(0.2, [0.05, 0.4], 12),
                                                         "pass@10": PassRate(0.6, [0.3, 0.8], 12)}, 10, 3.0)},
                    tokens_seen=5000)
    scores = EvalScores("smoke", models={"pretrain_raw_s1": m}, fig21=summarize(rows, n_boot=200),
                        teacher=TeacherScores(label="t", greedy={"mbpp": PassRate(0.5, [0.2, 0.8], 4)}, errors={"mbpp": 1}),
                        n_problems={"humaneval": 12}, missing_models=["finetune_s0"], timeout_s=3.0)
    with rd.step("eval", config=cfg.eval) as rec:
        scores.write(rec.path / "scores.json")
    back = load_scores(rd)
    assert isinstance(back.models["pretrain_raw_s1"].sampled["humaneval"].pass_at_k["pass@10"], PassRate)
    assert back.models["pretrain_raw_s1"].canonical_loss["humaneval"].bigram is None  # strict JSON: NaN is null
    m.canonical_loss["humaneval"].bigram = None
    assert back == scores and scores_if_run(rd) == scores
    (rd.path / "eval" / "scores.json").write_text('{"profile": "smoke", "humaneval": {}}')
    with pytest.raises(RunDirError, match="unknown.*humaneval"):  # another version's layout: one clear error
        load_scores(rd)
