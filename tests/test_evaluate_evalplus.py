"""HumanEval+ / MBPP+ verdicts of our harness (`check-samples`'s `check_completions`) equal those of
the `evalplus` package's own evaluator on the same samples, both reading the shared EvalPlus files.

Samples: each task's canonical solution (passes), an empty body (fails) and mutants of the canonical
solution (an operator or constant changed), which pass or fail depending on the inputs: the cases
where a harness's comparison, tolerance or input handling shows."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest

from phi_utils.config import SHARED_DATA
from phi_utils.evaluation.harness import check_completions
from phi_utils.evaluation.problems import load_plus

evalplus = pytest.importorskip("evalplus", reason="pip install evalplus (the dev extra)")
pytestmark = pytest.mark.slow

FILES = {"humaneval+": "HumanEvalPlus-v0.1.10.jsonl.gz", "mbpp+": "MbppPlus-v0.2.0.jsonl.gz"}
N_TASKS = 12
MUTATIONS = [(r" < ", " <= "), (r" <= ", " < "), (r" > ", " >= "), (r"\+ 1\b", "+ 2"), (r"- 1\b", ""),
             (r" == ", " != "), (r"\breturn True\b", "return False"), (r"\[1:\]", "[2:]"), (r"\b0\b", "1")]


def _mutants(code: str) -> list[str]:
    out = []
    for pat, rep in MUTATIONS:
        m = re.search(pat, code)
        if m:
            out.append(code[:m.start()] + rep + code[m.end():])
    return out


def _subset(benchmark: str, tmp: Path) -> tuple[Path, list[str]]:
    src = SHARED_DATA / "evalplus" / FILES[benchmark]
    if not src.exists():
        pytest.skip(f"no EvalPlus file at {src}")
    with gzip.open(src, "rt", encoding="utf-8") as f:
        records = [json.loads(x) for x in f][:N_TASKS]
    path = tmp / f"{benchmark}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path, [r["task_id"] for r in records]


def _evalplus_verdicts(benchmark: str, subset: Path, samples: list[dict], monkeypatch, tmp: Path) -> list[bool]:
    import evalplus.data.humaneval as he
    import evalplus.data.mbpp as mb
    import evalplus.evaluate as ev
    from evalplus.eval import PASS

    monkeypatch.setattr(ev, "CACHE_DIR", str(tmp / "evalplus-cache"))  # ground truth of this subset only
    if benchmark == "humaneval+":
        monkeypatch.setattr(he, "HUMANEVAL_OVERRIDE_PATH", str(subset))
        problems, dataset, not_none = he.get_human_eval_plus(), "humaneval", []
        digest = he.get_human_eval_plus_hash()
    else:
        monkeypatch.setattr(mb, "MBPP_OVERRIDE_PATH", str(subset))
        problems, dataset, not_none = mb.get_mbpp_plus(), "mbpp", ev.MBPP_OUTPUT_NOT_NONE_TASKS
        digest = mb.get_mbpp_plus_hash()
    expected = ev.get_groundtruth(problems, digest, not_none)
    verdicts = []
    for i, s in enumerate(samples):
        p = problems[s["task_id"]]
        r = ev.check_correctness(dataset, i, p, p["prompt"] + s["completion"], expected[s["task_id"]],
                                 fast_check=True, identifier=str(i))
        verdicts.append(r["base"][0] == PASS and r["plus"][0] == PASS)
    return verdicts


@pytest.mark.parametrize("benchmark", ["humaneval+", "mbpp+"])
def test_plus_verdicts_equal_evalplus(benchmark: str, tmp_path: Path, monkeypatch) -> None:
    subset, ids = _subset(benchmark, tmp_path)
    ours = {p.task_id: p for p in load_plus(benchmark) if p.task_id in ids}
    samples = []
    for tid in ids:
        p = ours[tid]
        sol = p.canonical_solution if benchmark == "humaneval+" else "\n" + p.canonical_solution
        samples.append({"task_id": tid, "completion": sol})
        samples.append({"task_id": tid, "completion": "    pass\n" if benchmark == "humaneval+" else "\npass\n"})
        samples += [{"task_id": tid, "completion": m} for m in _mutants(sol)]
    res = check_completions(ours, [dict(s) for s in samples], workers=2, timeout_s=20.0, progress=False)
    mine = [r["passed"] for r in res.rows]
    theirs = _evalplus_verdicts(benchmark, subset, samples, monkeypatch, tmp_path)
    differ = [(s["task_id"], s["completion"][:80], a, b) for s, a, b in zip(samples, mine, theirs) if a != b]
    assert not differ, f"{len(differ)}/{len(samples)} verdicts differ (task, sample, ours, evalplus): {differ[:5]}"
    assert 0 < sum(theirs) < len(theirs) and sum(theirs) > len(ids)  # both kinds, and more than the canonicals
