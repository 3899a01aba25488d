"""Embeddings (real all-MiniLM-L6-v2), the random-forest filter and the filtering stage."""

from __future__ import annotations

import copy
import json
import random

import numpy as np
import pytest

from phi_utils.config import FilterConfig, get_profile
from phi_utils.filtering.classifier import (FilteringError, binary_labels, keep_threshold, load_filtered,
                                            run_filtering, train_classifier)
from phi_utils.corpus import DATASET_NAME
from phi_utils.filtering.embed import (MAX_EMBED_CHARS, EmbeddingError, cached_embeddings, embed_texts, load_embedder,
                                       minilm_model_path)
from phi_utils.filtering.scoring import score_corpus
from phi_utils.steps import open_run


def _educational(i: int, rng: random.Random) -> str:
    name = rng.choice(["numbers", "values", "items", "scores", "prices"])
    op = rng.choice([("sum", "total += x"), ("max", "best = max(best, x)"), ("count", "count += 1")])
    return (f'def compute_{op[0]}_{i}({name}):\n    """Return the {op[0]} of a list of {name}.\n\n'
            f'    Loops over the list once, so it runs in linear time.\n    """\n'
            f"    total = best = count = 0\n    for x in {name}:\n        {op[1]}\n    return total\n\n\n"
            f"print(compute_{op[0]}_{i}([3, 1, 4, 1, 5]))  # example usage\n")


def _boilerplate(i: int, rng: random.Random) -> str:
    keys = rng.sample(["host", "port", "user", "timeout", "debug", "name", "path", "mode", "level", "token"], 6)
    body = "\n".join(f"        self._{k}_{i} = None" for k in keys)
    return f"class Default{i}(object):\n    def __init__(self, vim):\n{body}\n        self._vim = vim\n"


@pytest.fixture(scope="module")
def minilm():
    return load_embedder("minilm")


def test_minilm_path_from_package():
    p = minilm_model_path()
    assert (p / "model.safetensors").exists() and (p / "modules.json").exists()


def test_minilm_embeddings_are_real(minilm):
    texts = ["def add(a, b):\n    return a + b", "def plus(x, y):\n    return x + y",
             "DATABASES = {'default': {'ENGINE': 'django.db.backends.sqlite3'}}"]
    e = minilm.encode(texts, batch_size=2, progress=False)
    assert e.shape == (3, 384) and e.dtype == np.float32
    assert np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-4)
    assert e[0] @ e[1] > e[0] @ e[2] + 0.1  # two adders are closer than an adder and a settings dict
    # Batching does not change the result (padding is masked).
    e1 = minilm.encode(texts, batch_size=1, progress=False)
    assert np.allclose(e, e1, atol=1e-4)


def test_unknown_or_missing_embedders(tmp_path):
    with pytest.raises(EmbeddingError, match="pretrain"):
        cfg = get_profile("smoke", **{"filter.embedder": "own"})
        load_embedder(cfg.filter, open_run(cfg, tmp_path / "run"))


def test_embedding_cache_and_two_processes(tmp_path):
    cfg = get_profile("smoke", **{"filter.batch_size": 4})
    rd = open_run(cfg, tmp_path / "run")
    rng = random.Random(0)
    texts = [_educational(i, rng) for i in range(10)] + [_boilerplate(i, rng) for i in range(10)]
    keys = [str(hash(t)) for t in texts]
    e = cached_embeddings(texts, keys, cfg.filter, rd)
    npy = rd.path / "filtering" / "embeddings" / "minilm.npy"
    assert npy.exists()
    mtime = npy.stat().st_mtime_ns
    assert np.array_equal(cached_embeddings(texts, keys, cfg.filter, rd), e)
    assert npy.stat().st_mtime_ns == mtime  # served from the cache
    # datasets.map over 2 processes gives the same vectors as one process.
    e2 = embed_texts(texts, FilterConfig(batch_size=4, num_proc=2), rd)
    assert np.allclose(e, e2, atol=1e-4)


def test_classifier_beats_shuffled_control(minilm):
    rng = random.Random(1)
    good = [_educational(i, rng) for i in range(40)]
    bad = [_boilerplate(i, rng) for i in range(40)]
    X = minilm.encode(good + bad, batch_size=16, progress=False)
    scores = np.array([rng.uniform(6.5, 8.5) for _ in good] + [rng.uniform(1.0, 3.5) for _ in bad])
    model, report, y = train_classifier(X, scores, FilterConfig(n_estimators=100, test_fraction=0.25), seed=0)
    assert report.n_positive == 40 and report.n_test == 20
    assert report.auc >= 0.95
    assert report.cv_auc >= 0.95
    assert report.cv_auc_control < 0.8 and report.cv_auc > report.cv_auc_control + 0.2
    for point, ci in ((report.auc, report.auc_ci), (report.cv_auc, report.cv_auc_ci),
                      (report.auc_control, report.auc_control_ci), (report.cv_auc_control, report.cv_auc_control_ci)):
        assert ci[0] <= point <= ci[1]
    assert report.cv_auc_ci[0] > report.cv_auc_control_ci[1]  # resolved against the control at 95%
    assert report.cv_auc_control_ci[0] < 0.5 < report.cv_auc_control_ci[1]  # the control is indistinguishable from chance
    probs = model.predict_proba(X)[:, 1]
    thr = keep_threshold(probs, 0.5)
    assert (probs[:40] >= thr).mean() > 0.9  # the kept half is the educational half


def test_constant_labels_are_refused():
    X = np.random.default_rng(0).normal(size=(20, 8))
    with pytest.raises(FilteringError, match="do not separate"):
        train_classifier(X, np.full(20, 5.0), FilterConfig(), seed=0)
    y, thr = binary_labels(np.array([1, 2, 3, 4.0]))
    assert thr == 2.5 and y.tolist() == [0, 0, 1, 1]


def _crafted_run(path, **overrides):
    """A run directory whose corpus and labels are crafted, written in the run-directory formats."""
    import datasets

    cfg = get_profile("smoke", **{"filter.keep_fraction": 0.5, "filter.n_estimators": 50, **overrides})
    rd = open_run(cfg, path)
    rng = random.Random(2)
    texts = [_educational(i, rng) for i in range(30)] + [_boilerplate(i, rng) for i in range(30)]
    rows = [{"path": f"f{i}.py", "source": "extra", "distribution": "crafted", "licence": "MIT", "text": t,
             "n_chars": len(t), "n_tokens": len(t.split()), "sha256": str(i)} for i, t in enumerate(texts)]
    stub = "from .core import Engine\n__all__ = ['Engine']\n"  # no substance: never kept, counted
    rows.append({**rows[0], "path": "pkg/__init__.py", "text": stub, "n_chars": len(stub), "sha256": "stub"})
    datasets.Dataset.from_list(rows).save_to_disk(str(rd.step_dir("corpus") / "dataset"))
    rd.mark_complete("corpus")
    labelled = list(range(0, 60, 2))
    with open(rd.step_dir("annotation") / "labels.jsonl", "w") as f:
        for i in labelled:
            f.write(json.dumps({"id": i, "pass": "main", "score": 8.0 if i < 30 else 2.0, "method": "crafted"}) + "\n")
    rd.mark_complete("annotation", teacher="crafted labels")
    return cfg, rd


def test_run_filtering_stage(tmp_path, minilm):
    """The stage on a crafted corpus + labels."""
    cfg, rd = _crafted_run(tmp_path / "run")
    m = run_filtering(cfg, rd)
    assert m.n_kept == 30 and m.substance_rule == {"n_eligible": 60, "dropped": {"reexport_stub": 1}}
    filt = load_filtered(rd)
    assert "pkg/__init__.py" not in filt["path"]
    assert "score" in filt.column_names and len(filt) == 30
    assert sum(p.startswith("f") and int(p[1:-3]) < 30 for p in filt["path"]) >= 27
    assert m.tokens_kept_est == sum(filt["n_tokens"])
    assert (rd.path / "filtering" / "classifier.joblib").exists()
    assert run_filtering(cfg, rd) == m  # complete: skipped
    # The scoring pipeline's tasks each score a contiguous slice: 1 task gives the very same scores
    # (the stage's own classifier, scored again by a 1-task pipeline).
    assert m.world_size == 2
    assert len(list((rd.path / "filtering" / "pipeline" / "tasks2" / "score" / "logs" / "completions").iterdir())) == 2
    cfg1 = copy.deepcopy(cfg)
    cfg1.data.tasks, cfg1.data.workers = 1, 1
    one = score_corpus(cfg1, rd.require("corpus") / DATASET_NAME, rd.path, rd.path / "filtering" / "classifier.joblib",
                       tmp_path / "tasks1", MAX_EMBED_CHARS, m.n_corpus)
    rows = [json.loads(line) for line in (rd.path / "filtering" / "scores.jsonl").read_text().splitlines()]
    assert one.probs.tolist() == [r["score"] for r in rows] and one.reasons == [r["no_substance"] for r in rows]


@pytest.mark.distributed
def test_rank_sharded_embeddings_match_single_process(tmp_path, minilm, monkeypatch):
    """Two torchrun-style ranks (RANK/WORLD_SIZE; rank 1 in a subprocess, rank 0 in this process)
    each embed half and both end with the full matrix."""
    import os
    import subprocess
    import sys

    cfg = get_profile("smoke", **{"filter.batch_size": 4})
    rd = open_run(cfg, tmp_path / "run")
    rng = random.Random(3)
    texts = [_educational(i, rng) for i in range(6)] + [_boilerplate(i, rng) for i in range(6)]
    keys = [str(i) for i in range(len(texts))]
    (tmp_path / "texts.json").write_text(json.dumps(texts))
    script = (
        "import json, sys, numpy as np\n"
        "from phi_utils.config import get_profile\nfrom phi_utils.steps import open_run\n"
        "from phi_utils.filtering.embed import cached_embeddings\n"
        f"cfg = get_profile('smoke', **{{'filter.batch_size': 4}})\nrd = open_run(cfg, {str(rd.path)!r})\n"
        f"texts = json.load(open({str(tmp_path / 'texts.json')!r}))\n"
        "e = cached_embeddings(texts, [str(i) for i in range(len(texts))], cfg.filter, rd, wait_timeout_s=300)\n"
        "np.save(sys.argv[1], e)\n")
    rank1 = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "out1.npy")],
                             env={**os.environ, "RANK": "1", "WORLD_SIZE": "2"})
    try:
        monkeypatch.setenv("RANK", "0")
        monkeypatch.setenv("WORLD_SIZE", "2")
        e0 = cached_embeddings(texts, keys, cfg.filter, rd, wait_timeout_s=300)
        assert rank1.wait(timeout=600) == 0
    finally:
        rank1.kill()
        rank1.wait()
    shards = sorted((rd.path / "filtering" / "embeddings").glob("minilm.*.rank*-of-2.npy"))
    assert len(shards) == 2 and [len(np.load(s)) for s in shards] == [6, 6]
    e1 = np.load(tmp_path / "out1.npy")
    assert e0.shape == (12, 384) and np.array_equal(e0, e1)
    single = minilm.encode(texts, batch_size=4, progress=False)
    assert np.allclose(e0, single, atol=1e-4)
