"""`python -m phi_utils evaluate` on the four kinds of model: a run's checkpoint (our Phi), a
transformers model with a chat template, a hub name (offline: one line), an endpoint by URL (a
scripted one) and the embedded llama.cpp server (real); resume after a real SIGKILL; refusals that
keep finished work."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from phi_utils.cli import main as cli_main
from phi_utils.config import SHARED_DATA
from phi_utils.evaluation.evaluate import EvaluateConfig, EvaluateError, evaluate, read_finished, score_rows
from phi_utils.evaluation.generation import INSTRUCT_FORMAT, chat_prompt, instruct_prompt, keep_definitions, load_model
from phi_utils.evaluation.harness import check_samples_file
from phi_utils.evaluation.problems import load_humaneval
from stub_teacher import Reply

REPO = Path(__file__).resolve().parents[1]
# MBPP has no copy in any PyPI package: the two-benchmark test covers it only when shared data is present.
BENCHMARKS = ("humaneval", "mbpp") if (SHARED_DATA / "mbpp" / "mbpp.jsonl").exists() else ("humaneval",)


@pytest.fixture(scope="module")
def humaneval():
    return load_humaneval()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, humaneval) -> Path:
    """A run directory holding `finetune/final` as notebook 07 writes it: a tiny random
    PhiForCausalLM with a BPE trained on HumanEval text."""
    from phi_utils.model import PhiForCausalLM, get_model_config, save_checkpoint
    from phi_utils.model.tokenizer import train_tokenizer

    tok = train_tokenizer([p.prompt + p.canonical_solution for p in humaneval], 400, show_progress=False)
    torch.manual_seed(0)
    model = PhiForCausalLM(get_model_config("smoke", vocab_size=len(tok)))
    run = tmp_path_factory.mktemp("run")
    save_checkpoint(model, tok, run / "finetune" / "final")
    return run


def _rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def test_run_checkpoint_base_format_writes_samples_results_and_summary(tmp_path: Path, run_dir: Path) -> None:
    ckpt = run_dir / "finetune" / "final"
    out = tmp_path / "ev"
    rc = cli_main(["evaluate", "--model", str(run_dir / "finetune"), "--benchmarks", ",".join(BENCHMARKS), "--limit", "3",
                   "--n", "2", "--temperature", "0.8", "--max-new-tokens", "12", "--out", str(out), "--no-progress"])
    assert rc == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["identity"]["kind"] == "checkpoint" and s["identity"]["path"] == str(ckpt.resolve())
    assert s["identity"]["sha256"] == hashlib.sha256((ckpt / "model.safetensors").read_bytes()).hexdigest()
    assert s["identity"]["model_class"] == "PhiForCausalLM" and s["prompt_format"]["name"] == "base"
    assert s["settings"]["n"] == 2 and s["settings"]["temperature"] == 0.8 and s["settings"]["max_new_tokens"] == 12
    assert s["commit"] and s["date"] and s["machine"]["cpus"]
    for b in BENCHMARKS:
        samples = out / f"{b}_samples.jsonl"
        rows = _rows(samples)
        assert [r["task_id"] for r in rows][::2] == [r["task_id"] for r in rows][1::2]  # 2 samples per problem
        assert len(rows) == 6 and all(isinstance(r["completion"], str) for r in rows)
        res = _rows(Path(str(samples) + "_results.jsonl"))
        assert [r["task_id"] for r in res] == [r["task_id"] for r in rows] and all("passed" in r for r in res)
        e = s["benchmarks"][b]
        assert e["n_problems"] == 3 and e["n_samples"] == 6 and e["generated_now"] == 3
        p1 = e["pass@1"]
        assert p1["ci95"][0] <= p1["value"] <= p1["ci95"][1] and p1["n_problems"] == 3
        # the same verdicts as check-samples on the same file (one harness)
        again = check_samples_file(samples, b, ks=[1], progress=False)
        assert [r["passed"] for r in again.rows] == [r["passed"] for r in res]


def test_pass_at_k_and_interval_from_real_verdicts(humaneval) -> None:
    probs = humaneval[:4]
    good = [{"task_id": p.task_id, "completion": p.canonical_solution} for p in probs]
    bad = [{"task_id": p.task_id, "completion": "    return None\n"} for p in probs]
    scores, rows = score_rows(probs, good + bad, workers=2, timeout_s=5.0, source="t", progress=False)
    assert [r["passed"] for r in rows] == [True] * 4 + [False] * 4
    assert scores["pass@1"]["value"] == pytest.approx(0.5)  # each problem: 1 of 2 samples passes
    from phi_utils.stats import wilson_interval

    assert scores["pass@1"]["ci95"] == pytest.approx(list(wilson_interval(2.0, 4)))


def test_chat_model_gets_the_instruct_prompt_and_code_extraction(tmp_path: Path, run_dir: Path, humaneval) -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    from phi_utils.model.tokenizer import load_tokenizer

    tok = load_tokenizer(run_dir / "finetune" / "final")
    tok.chat_template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
                         "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=1024, n_embd=32, n_layer=1, n_head=2,
                                       eos_token_id=tok.eos_token_id, bos_token_id=tok.eos_token_id))
    model.save_pretrained(tmp_path / "chat")
    tok.save_pretrained(tmp_path / "chat")
    lm = load_model(tmp_path / "chat")
    prompt = chat_prompt(lm, humaneval[0])
    assert prompt.startswith("<|im_start|>user\n" + INSTRUCT_FORMAT.instruction_prefix + "\n```\n")
    assert prompt.endswith("<|im_start|>assistant\n" + INSTRUCT_FORMAT.response_prefix + "\n```python\n")
    s = evaluate(EvaluateConfig(model=str(tmp_path / "chat"), benchmarks=("humaneval",), limit=2, max_new_tokens=16,
                                out=tmp_path / "ev", progress=False), log=lambda m: None)
    assert s["prompt_format"]["name"] == "instruct" and s["identity"]["chat_template"] is True
    assert s["prompt_format"]["stop"][0] == "\n```\n" and s["identity"]["model_class"] == "GPT2LMHeadModel"
    rows = _rows(tmp_path / "ev" / "humaneval_samples.jsonl")
    assert len(rows) == 2 and all("raw" in r for r in rows)


def test_code_block_extraction_keeps_definitions_only(humaneval) -> None:
    from phi_utils.evaluation.generation import sanitize_completion

    p = humaneval[0]
    reply = ("Here it is:\n```python\nimport math\n\n@staticmethod\ndef helper(x):\n    return x\n\n"
             f"def {p.entry_point}(numbers, threshold):\n    return False\n\nassert {p.entry_point}([1.0], 0.5) is True\n"
             f"{p.entry_point}([1.0], 0.5)\n```\nThis works.")
    got = sanitize_completion(reply, p, chat=True)
    assert "assert" not in got and "This works" not in got and "@staticmethod\ndef helper" in got
    assert keep_definitions("def f(:\n") == "def f(:\n"  # unparseable: left for the sandbox to report


def test_hub_name_offline_fails_at_once_in_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    def unreachable(*a, **k):
        raise OSError(101, "Network is unreachable")

    monkeypatch.setattr(socket, "create_connection", unreachable)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # nothing cached
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    t = time.time()
    rc = cli_main(["evaluate", "--model", "microsoft/phi-1", "--out", str(tmp_path / "ev")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and time.time() - t < 5
    assert len(err.splitlines()) == 1
    assert err.startswith("error: --model microsoft/phi-1:") and "huggingface.co" in err and "unreachable" in err
    assert not (tmp_path / "ev" / "summary.json").exists()


def test_endpoint_by_url_gets_the_instruct_prompt_and_resumes_after_errors(tmp_path: Path, stub_teacher,
                                                                          humaneval) -> None:
    probs, refused = humaneval[:3], {humaneval[2].task_id}

    def endpoint(req):  # the first problem solved, the second answered wrongly, the third refused until retried
        p = next(p for p in probs if req.user == instruct_prompt(p, INSTRUCT_FORMAT))
        if p.task_id in refused:
            return Reply.error(400, "context length exceeded")
        body = p.canonical_solution if p is not probs[1] else "    return None\n"
        return f"```python\n{p.prompt}{body}```\nThis passes the tests."

    stub_teacher.script = endpoint
    out = tmp_path / "url"
    argv = ["evaluate", "--model", f"openai:{stub_teacher.model}", "--base-url", stub_teacher.base_url, "--limit", "3",
            "--max-new-tokens", "400", "--out", str(out), "--no-progress"]
    assert cli_main(argv) == 2 and not (out / "summary.json").exists()
    assert [r["task_id"] for r in _rows(out / "humaneval_samples.jsonl")] == [p.task_id for p in probs[:2]]
    refused.clear()
    assert cli_main(argv) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["identity"]["endpoint"] == stub_teacher.base_url and s["prompt_format"]["name"] == "instruct"
    assert s["prompt_format"]["prefilled"] is False  # an endpoint by URL may not continue an assistant turn
    e = s["benchmarks"]["humaneval"]
    assert (e["n_problems"], e["resumed_from"], e["generated_now"]) == (3, 2, 1)
    assert e["pass@1"]["value"] == pytest.approx(2 / 3)
    rows = _rows(out / "humaneval_samples.jsonl")
    assert [r["task_id"] for r in rows] == [p.task_id for p in probs] and all(r["error"] is None for r in rows)
    assert all(r["raw"].startswith("```python\n") and "This passes" not in r["raw"] for r in rows)  # cut at the stop
    # EvalPlus's request: its user turn alone, greedy, its stop sequences; the refused problem asked twice
    assert sorted(q.user for q in stub_teacher.requests) == sorted(
        instruct_prompt(p, INSTRUCT_FORMAT) for p in probs + [probs[2]])
    for q in stub_teacher.requests:
        assert len(q.messages) == 1 and q.body["model"] == stub_teacher.model
        assert (q.body["temperature"], q.body["max_tokens"], q.body["stop"]) == (0.0, 400, list(INSTRUCT_FORMAT.stop))


def test_embedded_local_server_and_the_teacher_reference_row(tmp_path: Path) -> None:
    """The one `evaluate` test on a real server: without --base-url, our own llama.cpp server for the
    named model (its GGUF hash recorded, the reply begun by EvalPlus's prefix continued), here as
    notebook 08's teacher row of Table 1."""
    from phi_utils.config import get_profile
    from phi_utils.evaluation.evaluate import teacher_reference
    from phi_utils.evaluation.scores import EvalScores
    from phi_utils.evaluation.stage import reference_teacher_entry
    from phi_utils.evaluation.tables import table1_rows
    from phi_utils.steps import open_run
    from phi_utils.teacher.models import MODELS

    cfg = get_profile("smoke")
    cfg.teacher.local_model = "smollm2-135m"
    rd = open_run(cfg, tmp_path / "run")
    e = teacher_reference(cfg, rd, limit=2, max_new_tokens=48)
    out = rd.path / "eval" / "teacher_reference"
    s2 = json.loads((out / "summary.json").read_text())
    assert s2["identity"]["sha256"] == MODELS["smollm2-135m"].sha256
    assert s2["identity"]["endpoint"] == "embedded llama.cpp server"
    assert s2["benchmarks"]["humaneval"]["n_samples"] == 2
    # our own llama-server continues the reply begun with EvalPlus's response prefix and a fence
    prefilled = s2["identity"]["engine"] == "llama-server"
    assert s2["prompt_format"]["prefilled"] is prefilled
    assert json.loads((out / "evaluate.json").read_text())["prefilled"] is prefilled
    if prefilled:  # and its slots decode the default 4 requests in flight together
        assert "--parallel 4" in (out / "teacher" / "server.log").read_text()
        import sqlite3

        with sqlite3.connect(out / "teacher" / "cache" / "responses.sqlite") as db:
            requests = db.execute("select request from responses").fetchall()
        assert len(requests) == 2
        for (request,) in requests:
            last = json.loads(request)["messages"][-1]
            assert last == {"role": "assistant", "content": INSTRUCT_FORMAT.response_prefix + "\n```python\n"}
        # the server returns the begun reply with its continuation; the completion is the code alone
        for row in _rows(out / "humaneval_samples.jsonl"):
            assert row["raw"].startswith(INSTRUCT_FORMAT.response_prefix)
            assert INSTRUCT_FORMAT.response_prefix not in row["completion"]

    assert "SmolLM2" in e.label and e.greedy["humaneval"].n_problems == 2 and e.prompt_format == "instruct"
    lo, hi = e.greedy["humaneval"].ci95
    assert lo <= e.greedy["humaneval"].mean <= hi
    row = table1_rows(EvalScores("smoke", teacher=e))[-1]
    assert row["model"] == f"teacher: {e.label}" and row["n_problems"] == "2"
    # the same summary, read back as a committed reference; refused for another teacher file
    cfg.eval.teacher_reference = str(out)
    ref = reference_teacher_entry(cfg)
    assert ref is not None and ref.greedy["humaneval"] == e.greedy["humaneval"] and ref.date[:2] == "20"
    ref_row = table1_rows(EvalScores("smoke", teacher=ref))[-1]
    assert ref_row["humaneval_pass@1_%"] == row["humaneval_pass@1_%"] and "evaluate" in ref_row["source"]
    cfg.teacher.local_model = "qwen2.5-coder-0.5b"
    assert reference_teacher_entry(cfg) is None
    cfg.eval.teacher_reference = str(tmp_path / "nowhere")
    assert reference_teacher_entry(cfg) is None


def test_killed_evaluate_resumes_without_regenerating(tmp_path: Path, run_dir: Path) -> None:
    out, n_problems = tmp_path / "ev", 12
    cmd = [sys.executable, "-m", "phi_utils", "evaluate", "--model", str(run_dir / "finetune" / "final"),
           "--limit", str(n_problems), "--batch-size", "1", "--max-new-tokens", "24", "--out", str(out), "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    samples = out / "humaneval_samples.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if samples.exists() and samples.read_bytes().count(b"\n") >= 3:
            break
        time.sleep(0.02)
    assert proc.poll() is None, f"finished or failed before it could be killed: {proc.stderr.read().decode()[-500:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = samples.read_bytes()
    k = before.count(b"\n")
    assert 3 <= k < n_problems and before.endswith(b"\n")
    with open(samples, "ab") as f:  # as if killed in the middle of writing a line
        f.write(b'{"task_id": "HumanEval/9", "compl')
    assert not (out / "summary.json").exists()

    msgs: list[str] = []
    s = evaluate(EvaluateConfig(model=str(run_dir / "finetune" / "final"), limit=n_problems, batch_size=8,
                                max_new_tokens=24, out=out, progress=False), log=msgs.append)
    after = samples.read_bytes()
    assert after.startswith(before)  # finished problems kept byte for byte
    rows = [json.loads(x) for x in after.decode().splitlines()]
    ids = [r["task_id"] for r in rows]
    assert len(ids) == len(set(ids)) == n_problems  # none generated twice
    runs = [r["run"] for r in rows]
    assert len(set(runs[:k])) == 1 and len(set(runs[k:])) == 1 and runs[0] != runs[k]
    e = s["benchmarks"]["humaneval"]
    assert e["resumed_from"] == k and e["generated_now"] == n_problems - k
    assert any(f"{k}/{n_problems} problems already in" in m and "resuming" in m for m in msgs)
    # a finished evaluation re-run generates nothing
    s = evaluate(EvaluateConfig(model=str(run_dir / "finetune" / "final"), limit=n_problems, max_new_tokens=24, out=out,
                                progress=False), log=lambda m: None)
    assert s["benchmarks"]["humaneval"]["generated_now"] == 0 and samples.read_bytes() == after


def test_refusals_keep_finished_work(tmp_path: Path, run_dir: Path) -> None:
    ckpt = str(run_dir / "finetune" / "final")
    out = tmp_path / "ev"
    evaluate(EvaluateConfig(model=ckpt, limit=2, max_new_tokens=8, out=out, progress=False), log=lambda m: None)
    samples = out / "humaneval_samples.jsonl"
    kept = samples.read_bytes()
    with pytest.raises(EvaluateError, match="another evaluation.*temperature"):
        evaluate(EvaluateConfig(model=ckpt, limit=2, max_new_tokens=8, temperature=0.5, out=out, progress=False))
    samples.write_bytes(b"not json\n" + kept)
    with pytest.raises(EvaluateError, match=rf"{samples.name}:1: not valid JSON"):
        read_finished(samples)
    assert samples.read_bytes() == b"not json\n" + kept
    samples.write_bytes(kept)
    with pytest.raises(EvaluateError, match="--benchmarks: unknown humaneval-x"):
        evaluate(EvaluateConfig(model=ckpt, benchmarks=("humaneval-x",), out=out))
    with pytest.raises(EvaluateError, match="no such directory, and not a hub name"):
        evaluate(EvaluateConfig(model=str(tmp_path / "nothing_here"), out=out))
    (tmp_path / "empty").mkdir()
    with pytest.raises(EvaluateError, match="no config.json"):
        evaluate(EvaluateConfig(model=str(tmp_path / "empty"), out=out))
    assert samples.read_bytes() == kept
