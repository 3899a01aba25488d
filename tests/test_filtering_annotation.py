"""Teacher annotation: prompt, sampling, agreement maths, and real ratings by the local SmolLM2 teacher."""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest

from phi_utils.config import AnnotationConfig, get_profile
from phi_utils.filtering.annotate import (PAPER_PHRASE, PROMPT_VERSION, agreement_stats, annotate, auc_good_bad,
                                          build_prompt, card_snippets, load_labels_jsonl, run_annotation,
                                          stratified_sample)
from phi_utils.steps import open_run

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


def test_annotate_with_local_teacher(local_teacher):
    acfg = AnnotationConfig(n_samples=3, reliability_subset=1, max_prompt_chars=300)
    stub = {**_rows()[0], "path": "pkg/__init__.py", "text": "from .a import b\n", "n_chars": 17}
    res = annotate(_rows() + [stub], acfg, local_teacher, seed=0)
    assert res.summary["substance_rule"] == {"n_corpus": 5, "n_eligible": 4, "dropped": {"reexport_stub": 1}}
    main = [r for r in res.labels if r["pass"] == "main"]
    assert all(r["path"] != "pkg/__init__.py" for r in res.labels)
    assert len(main) == 3 and sum(r["pass"] == "repeat" for r in res.labels) == 1
    for r in res.labels:
        assert r["teacher"] == local_teacher.label and r["prompt_version"].startswith(PROMPT_VERSION)
        assert r["method"] in ("logprobs", "parsed", "failed")
        assert r["score"] is None or 0.0 <= r["score"] <= 9.0
        assert r["raw"] is not None
    for r in main:  # files longer than the prompt budget are cut, and the cut is recorded
        assert r["truncated"] == (r["n_chars"] > 300) and r["shown_chars"] <= 300
        assert 0 <= r["window_start"] < r["window_end"] <= r["n_chars"]
    assert res.summary["n_rated"] == 3 and res.summary["two_pass"]["n"] <= 1
    # A second run is answered from the teacher cache: identical and fast.
    t0 = time.time()
    again = annotate(_rows(), acfg, local_teacher, seed=0)
    assert time.time() - t0 < 5.0
    assert [r["score"] for r in again.labels] == [r["score"] for r in res.labels]


def test_run_annotation_stage_resumes(tmp_path, local_teacher):
    import datasets

    cfg = get_profile("smoke", **{"annotation.reliability_subset": 1, "annotation.n_samples": 3,
                                       "annotation.max_prompt_chars": 300})
    rd = open_run(cfg, tmp_path / "run")
    datasets.Dataset.from_list(_rows()).save_to_disk(str(rd.step_dir("corpus") / "dataset"))
    rd.mark_complete("corpus")
    s = run_annotation(cfg, rd, teacher=local_teacher)
    labels = load_labels_jsonl(rd)
    assert len(labels) == 4 and s.teacher == local_teacher.label
    assert rd.manifest("annotation")["teacher"] == local_teacher.label
    # A killed run leaves no marker: the rerun redoes the step from the cache, same labels.
    rd.invalidate("annotation")
    run_annotation(cfg, rd, teacher=local_teacher)
    assert [r["score"] for r in load_labels_jsonl(rd)] == [r["score"] for r in labels]
