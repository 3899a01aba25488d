"""Teacher annotation: prompt, sampling, agreement maths, and ratings read from a scripted teacher."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from phi_utils.config import AnnotationConfig, get_profile
from phi_utils.filtering.annotate import (PAPER_PHRASE, PROMPT_VERSION, SYSTEM_PROMPT, agreement_stats, annotate,
                                          auc_good_bad, build_prompt, card_snippets, load_labels_jsonl, run_annotation,
                                          stratified_sample)
from phi_utils.steps import open_run
from phi_utils.teacher.rating import scale_grammar
from stub_teacher import Reply

SNIPPETS = [
    'def is_prime(n):\n    """Return True if n is a prime number."""\n    if n < 2:\n        return False\n'
    '    for d in range(2, int(n ** 0.5) + 1):\n        if n % d == 0:\n            return False\n    return True\n',
    "DEBUG = True\nALLOWED_HOSTS = []\nDATABASES = {'default': {'ENGINE': 'django.db.backends.sqlite3'}}\n" * 3,
    'def factorial(n):\n    """n! computed recursively."""\n    return 1 if n <= 1 else n * factorial(n - 1)\n',
    "class Default(object):\n    def __init__(self, vim):\n" + "".join(f"        self._a{i} = None\n" for i in range(40)),
]


def _rows():
    return [{"path": f"s{i}.py", "source": "extra", "distribution": "crafted", "licence": "MIT", "text": t,
             "n_chars": len(t), "n_tokens": len(t.split())} for i, t in enumerate(SNIPPETS)]


def test_prompt_wording_and_cut():
    long = "x = 1\n" * 200
    system, user, info = build_prompt(long, 120)
    assert PAPER_PHRASE in user and "single digit from 0 to 9" in user
    assert info["truncated"] and info["shown_chars"] <= 120 and info["n_chars"] == len(long)
    assert f"characters {info['window_start']}-{info['window_end']} of the file's {len(long)}" in user
    assert info["prompt_version"] == PROMPT_VERSION
    _, user2, info2 = build_prompt(long, 120, variant="repeat")
    assert user2 != user and info2["prompt_version"].startswith(PROMPT_VERSION)
    _, whole, info3 = build_prompt("def f():\n    return 1\n", 120)
    assert not info3["truncated"] and (info3["window_start"], info3["window_end"]) == (0, 22) and "excerpt" not in whole


def test_stratified_sample_is_deterministic_and_covers_strata():
    sources = ["stdlib"] * 50 + ["site-packages"] * 400 + ["extra"] * 5
    sizes = [500, 3000, 9000, 30000] * 113 + [500] * 3
    a = stratified_sample(sources, sizes, 40, seed=3)
    assert a == stratified_sample(sources, sizes, 40, seed=3) and len(a) == 40 == len(set(a))
    assert a != stratified_sample(sources, sizes, 40, seed=4)
    picked = Counter(sources[i] for i in a)
    assert picked["extra"] >= 1 and picked["stdlib"] >= 4 and picked["site-packages"] >= 30
    assert len(stratified_sample(sources, sizes, 10_000)) == len(sources)


def test_agreement_stats():
    s = agreement_stats([1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6])
    assert s["spearman"] == pytest.approx(1.0) and s["cohen_kappa"] == pytest.approx(1.0) and s["mean_abs_diff"] == 0
    r = agreement_stats([1, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1])
    assert r["spearman"] == pytest.approx(-1.0) and r["cohen_kappa"] < 0
    assert auc_good_bad([7, 8], [2, 3]) == 1.0 and auc_good_bad([5], [5]) == 0.5 and auc_good_bad([], [1]) is None


def test_card_snippets_are_read(tmp_path):
    cfg = get_profile("smoke")
    rd = open_run(cfg, tmp_path / "run")
    (rd.path / "teacher").mkdir()
    (rd.path / "teacher" / "card.json").write_text(json.dumps(
        {"rating_check": {"snippets": [{"name": "gcd", "label": "good", "code": "def gcd(a, b): ..."},
                                       {"name": "cfg", "label": "bad", "code": "A = 1"}]}}))
    got = card_snippets(rd)
    assert [s["label"] for s in got] == ["good", "bad"]


# What the scripted teacher answers per snippet (main pass; the reversed-rubric pass scores 1 lower):
# probabilities of the score digit (read as their expected value), a reply without logprobs
# (parsed), and a request the endpoint refuses (failed).
MARKERS = {"is_prime": "s0.py", "ALLOWED_HOSTS": "s1.py", "factorial": "s2.py", "self._a0": "s3.py"}
EXPECTED = {"s0.py": (8.5, "logprobs", "Clear prime test."), "s1.py": (1.0, "parsed", "Settings only."),
            "s2.py": (6.75, "logprobs", "Short recursion."), "s3.py": (None, "failed", None)}


def _reversed_rubric(user: str) -> bool:
    return user.index("0-3:") < user.index("7-9:")


def _rate_snippets(req):
    shift = 1 if _reversed_rubric(req.user) else 0
    path = next((p for marker, p in MARKERS.items() if marker in req.user), None)
    if path == "s0.py":
        return Reply.rating({8 - shift: 0.5, 9 - shift: 0.5}, "Clear prime test.")
    if path == "s1.py":
        return Reply.rating({1 - shift: 1.0}, "Settings only.", with_logprobs=False)
    if path == "s2.py":
        return Reply.rating({6 - shift: 0.25, 7 - shift: 0.75}, "Short recursion.")
    if path == "s3.py":
        return Reply.error(400, "the prompt exceeds the context")
    if "def gcd" in req.user:  # the teacher card's snippets
        return Reply.rating({9: 1.0}, "Good.")
    assert "A = 1" in req.user, req.user
    return Reply.rating({0: 1.0}, "Bad.")


def test_annotate_sends_the_prompts_and_reads_the_ratings(stub_teacher, tmp_path):
    acfg = AnnotationConfig(n_samples=3, reliability_subset=2, max_prompt_chars=300)
    rd = open_run(get_profile("smoke"), tmp_path / "run")
    teacher = stub_teacher.teacher(rd)
    stub_teacher.script = _rate_snippets
    stub_teacher.queue(Reply.error(429, retry_after=0))  # the first request is rate limited, then retried
    stub = {**_rows()[0], "path": "pkg/__init__.py", "text": "from .a import b\n", "n_chars": 17}
    card = [{"name": "gcd", "label": "good", "code": "def gcd(a, b):\n    return a if not b else gcd(b, a % b)\n"},
            {"name": "cfg", "label": "bad", "code": "A = 1\nB = 2\n"}]
    res = annotate(_rows() + [stub], acfg, teacher, seed=0, snippets=card)
    assert res.summary["substance_rule"] == {"n_corpus": 5, "n_eligible": 4, "dropped": {"reexport_stub": 1}}
    assert teacher.stats["retries"] == 1 and teacher.stats["errors"] == sum(r["path"] == "s3.py" for r in res.labels)
    main = [r for r in res.labels if r["pass"] == "main"]
    repeat = [r for r in res.labels if r["pass"] == "repeat"]
    assert len(main) == 3 and len(repeat) == 2 and {r["id"] for r in repeat} <= {r["id"] for r in main}
    for r in main + repeat:
        score, method, reason = EXPECTED[r["path"]]
        if score is not None and r["pass"] == "repeat":
            score -= 1.0
        assert (r["score"], r["method"]) == (score, method) and r["teacher"] == stub_teacher.label
        if method == "failed":
            assert "HTTP 400" in r["reason"] and "exceeds the context" in r["raw"]
        else:
            assert r["reason"] == reason and r["raw"].endswith(reason)
        assert r["prompt_version"] == PROMPT_VERSION + ("" if r["pass"] == "main" else "-rubric-reversed")
    for r in main:  # files longer than the prompt budget are cut, and the cut is recorded
        assert r["truncated"] == (r["n_chars"] > 300) and r["shown_chars"] <= 300
        assert 0 <= r["window_start"] < r["window_end"] <= r["n_chars"]
    scored = [r["score"] for r in main if r["score"] is not None]
    assert res.summary["n_rated"] == 3 and res.summary["n_scored"] == len(scored)
    assert res.summary["score_mean"] == pytest.approx(sum(scored) / len(scored))
    pairs = [r for r in repeat if r["score"] is not None]
    assert res.summary["two_pass"]["n"] == len(pairs)
    if len(pairs) == 2:
        assert res.summary["two_pass"]["mean_abs_diff"] == pytest.approx(1.0)
    assert res.summary["card"] == {"n_good": 1, "n_bad": 1, "auc_good_vs_bad": 1.0, "mean_good": 9.0, "mean_bad": 0.0}

    # exactly the prompts of the sampled files (the re-export stub never), greedy, with the score grammar
    texts = {r["path"]: r["text"] for r in _rows()}
    sent = stub_teacher.requests
    assert sorted(q.user for q in sent) == sorted(
        [build_prompt(texts[r["path"]], 300, "main" if r["pass"] == "main" else "repeat")[1] for r in main + repeat]
        + [build_prompt(s["code"], 300)[1] for s in card] + [sent[0].user])  # the rate-limited one, sent again
    for q in sent:
        assert q.system == SYSTEM_PROMPT and q.body["grammar"] == scale_grammar(range(10))
        assert (q.body["temperature"], q.body["max_tokens"], q.body["top_logprobs"]) == (0.0, acfg.reason_tokens, 10)

    # A second run is answered from the teacher cache: only the failed rating is asked again.
    n_sent, n_failed = len(stub_teacher.requests), sum(r["method"] == "failed" for r in res.labels)
    again = annotate(_rows(), acfg, teacher, seed=0)
    assert len(stub_teacher.requests) == n_sent + n_failed
    assert [r["score"] for r in again.labels] == [r["score"] for r in res.labels if r["pass"] != "card"]


def test_run_annotation_stage_resumes(tmp_path, stub_teacher):
    import datasets

    stub_teacher.script = _rate_snippets
    cfg = get_profile("smoke", **{"annotation.reliability_subset": 1, "annotation.n_samples": 4,
                                  "annotation.max_prompt_chars": 300})
    rd = open_run(cfg, tmp_path / "run")
    datasets.Dataset.from_list(_rows()).save_to_disk(str(rd.step_dir("corpus") / "dataset"))
    rd.mark_complete("corpus")
    s = run_annotation(cfg, rd)  # opens its own teacher: attached to the stub
    labels = load_labels_jsonl(rd)
    assert len(labels) == 5 and s.teacher == stub_teacher.label
    assert {r["path"]: r["score"] for r in labels if r["pass"] == "main"} == {p: e[0] for p, e in EXPECTED.items()}
    assert (s.n_rated, s.n_scored, s.n_failed) == (4, 3, 1) and s.methods == {"logprobs": 2, "parsed": 1, "failed": 1}
    assert rd.manifest("annotation")["teacher"] == stub_teacher.label
    usage = json.loads((rd.path / "teacher" / "usage.jsonl").read_text().splitlines()[-1])
    assert usage["label"] == stub_teacher.label and usage["requests"] == 4  # the failed rating is not a request
    # A killed run leaves no marker: the rerun redoes the step from the cache, same labels.
    n_sent = len(stub_teacher.requests)
    rd.invalidate("annotation")
    run_annotation(cfg, rd)
    assert [r["score"] for r in load_labels_jsonl(rd)] == [r["score"] for r in labels]
    assert len(stub_teacher.requests) == n_sent + s.n_failed + sum(r["pass"] == "repeat" and r["score"] is None
                                                                   for r in labels)
