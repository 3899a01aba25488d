"""Generation from real models (our Phi, a transformers LM, the local teacher), sanitising, the loss
proxy and notebook 08's stage on a small run directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from phi_utils.config import get_profile
from phi_utils.evaluation.generation import (GenSettings, Placement, canonical_solution_loss, generate_completions,
                                             load_model, sanitize_completion, teacher_completions)
from phi_utils.evaluation.problems import load_humaneval
from phi_utils.evaluation.figures import figure_2_1
from phi_utils.evaluation.scores import load_scores
from phi_utils.evaluation.stage import run_evaluation
from phi_utils.evaluation.tables import failure_category
from phi_utils.steps import open_run


@pytest.fixture(scope="module")
def humaneval():
    return load_humaneval()


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory, humaneval) -> Path:
    """A tiny random PhiForCausalLM with a BPE trained on HumanEval text, saved in HF format."""
    from phi_utils.model import PhiForCausalLM, get_model_config, save_checkpoint
    from phi_utils.model.tokenizer import train_tokenizer

    tok = train_tokenizer([p.prompt + p.canonical_solution for p in humaneval], 400, show_progress=False)
    torch.manual_seed(0)
    model = PhiForCausalLM(get_model_config("smoke", vocab_size=len(tok)))
    out = tmp_path_factory.mktemp("ckpt") / "final"
    save_checkpoint(model, tok, out)
    return out


def test_sanitize_base_and_chat_completions(humaneval) -> None:
    p = humaneval[0]
    raw = "    return True\n\ndef other():\n    pass\nprint(1)"
    assert sanitize_completion(raw, p) == "    return True\n"
    chat = f"Sure!\n```python\ndef {p.entry_point}(numbers, threshold):\n    return False\n```\nDone."
    got = sanitize_completion(chat, p, chat=True)
    assert got.strip().startswith(f"def {p.entry_point}(") and "Sure" not in got
    assert failure_category("failed: AssertionError") == "assertion"
    assert failure_category("failed: SyntaxError: invalid syntax") == "syntax error"
    assert failure_category("failed: NameError: name 'x' is not defined") == "exception: NameError"
    assert failure_category("timed out") == "timed out"
    assert failure_category("failed: exited early (status 0) before the end of the program and its tests") == "early exit"


def test_generate_with_project_checkpoint_and_loss_proxy(tiny_checkpoint: Path, humaneval) -> None:
    from phi_utils.model import causal_lm_loss

    lm = load_model(tiny_checkpoint)
    assert lm.kind == "phi"
    probs = humaneval[:3]
    rows = generate_completions(lm, probs, GenSettings(max_new_tokens=12, n=2, temperature=0.8, seed=1),
                                progress=False)
    assert [r["task_id"] for r in rows] == [p.task_id for p in probs for _ in range(2)]
    assert all(isinstance(r["completion"], str) and "\ndef " not in r["completion"] for r in rows)
    # The proxy equals the causal-LM loss restricted to the solution tokens.
    p = probs[0]
    a = lm.tokenizer(p.prompt, add_special_tokens=False)["input_ids"]
    b = lm.tokenizer(p.canonical_solution, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([a + b])
    labels = ids.clone()
    labels[0, :len(a)] = -100
    with torch.no_grad():
        want = float(causal_lm_loss(lm.model(ids), labels))
    assert canonical_solution_loss(lm, [p]) == pytest.approx(want, rel=1e-4)


def test_placement_bfloat16_inference_matches_float32(tiny_checkpoint: Path, humaneval) -> None:
    """eval.dtype = bfloat16 loads our checkpoint in bf16: same loss to bf16 accuracy, and it generates."""
    assert Placement.resolve("cpu", "auto") == Placement("cpu", "float32")
    with pytest.raises(ValueError, match="eval.dtype"):
        Placement.resolve("cpu", "fp8")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            Placement.resolve("cuda", "auto")
    place = Placement.resolve("cpu", "bfloat16")
    lm32, lm16 = load_model(tiny_checkpoint), load_model(tiny_checkpoint, place.device, place.dtype)
    assert {p.dtype for p in lm16.model.parameters()} == {torch.bfloat16}
    loss32, loss16 = canonical_solution_loss(lm32, humaneval[:4]), canonical_solution_loss(lm16, humaneval[:4])
    assert loss16 == pytest.approx(loss32, rel=0.02) and loss16 != loss32
    rows = generate_completions(lm16, humaneval[:2], GenSettings(max_new_tokens=12), progress=False)
    assert len(rows) == 2 and all(isinstance(r["completion"], str) for r in rows)


def test_generate_with_any_transformers_model(tmp_path: Path, tiny_checkpoint: Path, humaneval) -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    from phi_utils.model.tokenizer import load_tokenizer

    tok = load_tokenizer(tiny_checkpoint)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=512, n_embd=32, n_layer=1, n_head=2,
                                       eos_token_id=tok.eos_token_id, bos_token_id=tok.eos_token_id))
    model.save_pretrained(tmp_path / "gpt2")
    tok.save_pretrained(tmp_path / "gpt2")
    lm = load_model(tmp_path / "gpt2")
    assert lm.kind == "hf"
    rows = generate_completions(lm, humaneval[:2], GenSettings(max_new_tokens=8), progress=False)
    assert len(rows) == 2 and all(isinstance(r["completion"], str) for r in rows)
    assert canonical_solution_loss(lm, humaneval[:2]) > 0


def test_teacher_completions_send_the_prompt_and_extract_the_code(stub_teacher, humaneval, tmp_path: Path) -> None:
    from dataclasses import replace

    from phi_utils.evaluation.generation import INSTRUCT_FORMAT, instruct_prompt, teacher_messages

    p = humaneval[0]
    fmt = replace(INSTRUCT_FORMAT, prefilled=True)
    begun = f"{fmt.response_prefix}\n```python\n"
    # notebook 08's request: the code in a fenced block among prose; an instruct request with the reply
    # begun: the server returns the begun reply with its continuation (as llama-server does)
    stub_teacher.script = lambda req: (begun + p.prompt + p.canonical_solution + "\n```\nMore." if
                                       req.messages[-1]["role"] == "assistant" else
                                       f"Here it is:\n```python\n{p.prompt}{p.canonical_solution}```\nDone.")
    teacher = stub_teacher.teacher(open_run(get_profile("smoke"), tmp_path / "run"))
    rows = teacher_completions(teacher, [p], GenSettings(max_new_tokens=400, n=2, temperature=0.8))
    assert [r["sample_index"] for r in rows] == [0, 1] and len(stub_teacher.requests) == 2
    assert all(r["teacher"] == stub_teacher.label and r["error"] is None and r["raw"].endswith("Done.") for r in rows)
    assert all(q.messages == teacher_messages(p) and q.body["temperature"] == 0.8 for q in stub_teacher.requests)
    code = rows[0]["completion"]
    assert p.canonical_solution.strip() in code and "Done." not in code and "Here it is" not in code
    inst, = teacher_completions(teacher, [p], GenSettings(max_new_tokens=400), fmt)
    q = stub_teacher.requests[-1]
    assert q.messages == [{"role": "user", "content": instruct_prompt(p, fmt)}, {"role": "assistant", "content": begun}]
    assert q.body["stop"] == list(fmt.stop) and inst["raw"] == begun + p.prompt + p.canonical_solution
    assert inst["completion"] == code


def test_run_evaluation_stage(tmp_path: Path, tiny_checkpoint: Path) -> None:
    import shutil

    cfg = get_profile("smoke")
    cfg.eval.limit, cfg.eval.teacher_limit, cfg.eval.loss_problems, cfg.eval.max_new_tokens = 3, 0, 4, 16
    cfg.eval.n_samples = 0
    cfg.pretrain.seeds = cfg.finetune.seeds = [0]
    rd = open_run(cfg, tmp_path / "run")
    shutil.copytree(tiny_checkpoint, rd.path / "pretrain_textbook_s0" / "final")
    # B's packed training data (the checkpoint's tokenizer on HumanEval text): its unigram/bigram baselines
    from phi_utils.model.tokenizer import eos_id, load_tokenizer
    from phi_utils.train.data import write_packed_arrays

    tok = load_tokenizer(tiny_checkpoint)
    stream = [t for p in load_humaneval()[10:60] for t in tok(p.prompt + p.canonical_solution)["input_ids"] + [eos_id(tok)]]
    packed = torch.tensor(stream[:len(stream) // 64 * 64]).view(-1, 64).numpy()
    write_packed_arrays(rd.path / "pretrain_textbook_s0" / "data", {"train": (packed[4:], packed[4:] * 0 + 1),
                        "val": (packed[:4], packed[:4] * 0 + 1)}, vocab=len(tok), eos=eos_id(tok))
    rd.mark_complete("pretrain_textbook_s0")  # the eval step reads done and current training steps only
    scores = run_evaluation(cfg, rd)
    assert load_scores(rd) == scores  # scores.json round-trips through the run directory
    base = scores.baselines["textbook"]
    assert base["steps"] == ["pretrain_textbook_s0"] and base["lambda"] in base["lambda_grid"]
    assert base["n_train_tokens"] == (len(packed) - 4) * 63
    with open(rd.path / "eval" / "problem_scores.csv") as f:
        import csv

        score_rows = list(csv.DictReader(f))
    assert all(float(r["bigram_loss"]) > 0 and float(r["unigram_loss"]) > 0 for r in score_rows if r["canonical_loss"])
    assert scores.missing_models == ["pretrain_raw_s0", "pretrain_filtered_s0", "finetune_s0"]
    e = scores.models["pretrain_textbook_s0"]
    assert e.greedy["humaneval"].n_problems == 3 and 0.0 <= e.greedy["humaneval"].mean <= 1.0
    loss = e.canonical_loss["humaneval"]
    assert loss.mean > 0 and loss.n_problems == 3  # the evaluated problems, at most loss_problems
    assert loss.bigram > 0 and loss.unigram > 0
    want = {"device": "cuda", "dtype": "bfloat16"} if torch.cuda.is_available() else {"device": "cpu", "dtype": "float32"}
    assert scores.placement == want or not torch.cuda.is_bf16_supported()  # device auto, dtype auto
    out = rd.path / "eval"
    results = [json.loads(x) for x in (out / "samples_pretrain_textbook_s0_humaneval.jsonl_results.jsonl").read_text().splitlines()]
    assert len(results) == 3 and all("passed" in r and "result" in r for r in results)
    table = (out / "table1.md").read_text()
    assert "| paper-reported | 2023 Jun | phi-1 | 1.3B | 7B | 50.6 % | 55.5 % |" in table
    assert "| B: CodeTextbook (phi-1-base analog) |" in table and "% [0.0, " in table  # measured rows carry intervals
    assert "measured (smoke profile)" in table
    assert (out / "per_problem.csv").exists() and (out / "failure_categories.csv").exists()
    fig, data = figure_2_1(scores)
    b = data["arms"]["B"]
    assert b["seeds"] == [0] and b["metrics"]["canonical_loss"]["humaneval"]["mean"] == pytest.approx(loss.mean)
    assert data["n_problems"]["humaneval"] == 3 and (out / "problem_scores.csv").exists()
    assert data["baselines"]["B"]["fit"]["lambda"] == base["lambda"] and {g["baseline"] for g in data["baseline_gaps"]} == {
        "unigram", "bigram"} and any("token statistics" in c for c in data["conclusions"])
    assert "bigram of own data" in table and table.count(" [") >= 3
    assert run_evaluation(cfg, rd) == scores  # complete: loaded, not re-run
