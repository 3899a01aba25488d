"""The datatrove data pipelines: the same kept set for any number of tasks and on Ray, the same
verdicts as the in-memory reference path, per-task resume after a failure, and the executor settings."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from phi_utils.config import ConfigError, DataConfig, get_profile
from phi_utils.corpus import Candidate, build_corpus, corpus_jobs, load_corpus, run_corpus
from phi_utils.datapipe.dedup import code_shingles, minhash_bands, read_drops, read_shards
from phi_utils.datapipe.executor import DataPipelineError, PipelineJob, plan, run_jobs
from phi_utils.datapipe.steps import shard_bounds
from phi_utils.rundir import write_jsonl_atomic
from phi_utils.steps import open_run

GOOD = '''def gcd(a: int, b: int) -> int:
    """Greatest common divisor by Euclid's algorithm."""
    while b:
        a, b = b, a % b
    return a
'''


def _module(i: int, n_funcs: int = 30) -> str:
    return "\n".join(f"def func_{i}_{j}(x):\n    total = x * {j} + {i}\n    return total - {j * i}\n" for j in range(n_funcs))


def _crafted() -> list[Candidate]:
    """A visiting order with exact and near duplicates on both sides of any shard boundary."""
    texts = [
        _module(1), _module(2), GOOD * 3, _module(3),
        _module(2),                                               # 4: exact copy of 1
        _module(1).replace("func_1_7(", "renamed_7(", 1),         # 5: near copy of 0
        "",                                                       # 6: empty
        _module(4), _module(4).replace("func_4_2(", "g_2(", 1),   # 8: near copy of 7
        GOOD * 3,                                                 # 9: exact copy of 2
        _module(5), "x = [" + ",".join(map(str, range(900))) + "]\n",  # 11: minified
        _module(1).replace("func_1_9(", "other_9(", 1),           # 12: near copy of 0
        _module(6), _module(7), _module(6),                       # 15: exact copy of 13
    ]
    return [Candidate(f"f{i:02d}.py", "extra", "crafted", "MIT", text=t) for i, t in enumerate(texts)]


def _run_crafted(tmp: Path, tasks: int, executor: str = "local", workers: int = 2) -> tuple[list[int], set]:
    cfg = get_profile("smoke", **{"data.tasks": tasks, "data.workers": workers, "data.executor": executor})
    rows = _crafted()
    list_file = tmp / "candidates.jsonl"
    write_jsonl_atomic(list_file, (asdict(c) for c in rows))
    work = tmp / f"work{tasks}{executor}"
    run_jobs(corpus_jobs(cfg, work, list_file, len(rows)), cfg.data, work, desc="test")
    kept = [d.metadata["order"] for d in read_shards(work / "kept", tasks)]
    drops = {(d["order"], d["reason"]) for d in read_drops(work / "dropped")}
    return kept, drops


EXPECTED_KEPT = [0, 1, 2, 3, 7, 10, 13, 14]
EXPECTED_DROPS = {(4, "exact_duplicate"), (9, "exact_duplicate"), (15, "exact_duplicate"), (5, "near_duplicate"),
                  (8, "near_duplicate"), (12, "near_duplicate"), (6, "empty"), (11, "minified")}


def test_kept_set_is_the_same_for_1_2_and_3_tasks(tmp_path):
    results = {n: _run_crafted(tmp_path, n) for n in (1, 2, 3)}
    for n, (kept, drops) in results.items():
        assert kept == EXPECTED_KEPT, n
        assert drops == EXPECTED_DROPS, n


def test_same_verdicts_as_the_in_memory_path(tmp_path):
    kept, drops = _run_crafted(tmp_path, 2)
    ref = build_corpus(get_profile("smoke").corpus, candidates=_crafted())
    assert [r["path"] for r in ref.records] == [f"f{i:02d}.py" for i in kept]
    assert ref.counts["exact_duplicates"] == sum(r == "exact_duplicate" for _, r in drops)
    assert ref.counts["near_duplicates"] == sum(r == "near_duplicate" for _, r in drops)


def test_run_corpus_1_and_2_tasks_identical_dataset_and_counts(tmp_path):
    out = {}
    for tasks in (1, 2):
        cfg = get_profile("smoke", **{"corpus.max_files": 150, "data.tasks": tasks, "data.workers": tasks})
        rd = open_run(cfg, tmp_path / f"run{tasks}")
        counts = run_corpus(cfg, rd)
        out[tasks] = (load_corpus(rd)["sha256"], counts)
        manifest = rd.manifest("corpus")
        assert manifest["pipeline"]["engine"] == "datatrove" and manifest["pipeline"]["tasks"] == tasks
        # every examined candidate is kept or dropped for one counted reason
        assert counts.examined == counts.kept + counts.exact_duplicates + counts.near_duplicates + sum(
            getattr(counts, f"skipped_{r}") for r in ("huge", "unreadable", "binary", "non_utf8", "empty", "minified", "generated"))
    assert out[1][0] == out[2][0] and len(out[1][0]) == 150
    assert out[1][1] == out[2][1]
    # The intermediate shards are gone; kept shards, drop logs and completion markers stay.
    work = tmp_path / "run2" / "corpus" / rd.manifest("corpus")["pipeline"]["work_dir"]
    assert not (work / "clean").exists() and (work / "kept").is_dir()
    assert len(list((work / "minhash-filter" / "logs" / "completions").iterdir())) == 2


class _FailRankOnce:
    """A pipeline step that fails task 1 the first time it runs (the flag file remembers)."""

    name = "fail once"

    def __init__(self, flag: Path) -> None:
        self.flag = flag

    def __call__(self, data, rank: int = 0, world_size: int = 1):
        for doc in data:
            if rank == 1 and not self.flag.exists():
                self.flag.write_text("failed")
                raise RuntimeError("task 1 dies")
            yield doc


def test_a_failed_job_resumes_only_its_unfinished_task(tmp_path):
    cfg = get_profile("smoke", **{"data.tasks": 2, "data.workers": 1})
    rows = _crafted()
    list_file = tmp_path / "candidates.jsonl"
    write_jsonl_atomic(list_file, (asdict(c) for c in rows))
    work = tmp_path / "work"
    jobs = corpus_jobs(cfg, work, list_file, len(rows))
    jobs[0].steps = [jobs[0].steps[0], _FailRankOnce(tmp_path / "flag"), *jobs[0].steps[1:]]
    with pytest.raises(DataPipelineError, match="'clean'.*resumes"):
        run_jobs(jobs, cfg.data, work, desc="test")
    done = work / "clean" / "logs" / "completions"
    assert [p.name for p in done.iterdir()] == ["00000"]
    shard0 = (work / "clean" / "00000.jsonl.gz").stat().st_mtime_ns
    seconds = run_jobs(jobs, cfg.data, work, desc="test")
    assert (work / "clean" / "00000.jsonl.gz").stat().st_mtime_ns == shard0  # task 0 was not redone
    assert sorted(p.name for p in done.iterdir()) == ["00000", "00001"]
    assert [d.metadata["order"] for d in read_shards(work / "kept", 2)] == EXPECTED_KEPT
    assert run_jobs(jobs, cfg.data, work, desc="test")["clean"] < seconds["clean"] + 1  # all done: nothing runs


def test_minhash_bands_match_datasketch():
    from datasketch.lsh import _optimal_param

    for threshold in (0.7, 0.8, 0.85, 0.9):
        assert minhash_bands(threshold, 128) == _optimal_param(threshold, 128, 0.5, 0.5), threshold


def test_code_shingles_are_the_set_of_5_token_windows():
    text = _module(3)
    toks = __import__("re").findall(r"\w+|[^\w\s]", text)
    grams = {" ".join(toks[i:i + 5]) for i in range(len(toks) - 4)}
    assert len(set(code_shingles(text).ravel().tolist())) == len(grams)  # no collisions, nothing lost
    # the same windows in another order hash to the same set; one changed token changes 5 windows
    assert set(code_shingles("a b c d e f").ravel()) == set(code_shingles("a b c d e f\n").ravel())
    assert len(set(code_shingles("a b c d e f g").ravel()) - set(code_shingles("a b c X e f g").ravel())) == 3
    assert code_shingles("a b").shape == (1, 1) and code_shingles("").shape == (0, 1)


def test_shards_are_contiguous_and_cover_everything():
    for n in (0, 1, 7, 100):
        for world in (1, 2, 3, 8):
            bounds = [shard_bounds(n, r, world) for r in range(world)]
            assert bounds[0][0] == 0 and bounds[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))


def test_executor_settings_and_plan(tmp_path):
    with pytest.raises(ConfigError, match="data.executor"):
        DataConfig(executor="spark")
    with pytest.raises(ConfigError, match="data.tasks"):
        DataConfig(tasks=0)
    paper = get_profile("paper")
    assert paper.data.executor == "slurm" and paper.data.tasks > 100
    jobs = [PipelineJob("one", [lambda data, rank, ws: data], 3, "nothing")]
    with pytest.raises(DataPipelineError, match="slurm_partition"):
        run_jobs(jobs, paper.data, tmp_path, desc="test")
    lines = plan(jobs, paper.data, tmp_path)
    assert "sbatch" in lines[0] and "one: 3 task(s), 0/3 done" in lines[1]
    assert "Ray at auto" in plan(jobs, DataConfig(executor="ray", ray_address="auto"))[0]
    from phi_utils.corpus import corpus_plan

    tiny = get_profile("tiny")
    lines = corpus_plan(tiny, tmp_path / "run")  # `run --dry-run`: builds nothing
    examined = int(tiny.corpus.max_files * tiny.corpus.examine_factor)
    assert f"first {examined} candidates" in lines[0] and len(lines) == 8 and "minhash-buckets: 8 task(s), 0/8 done" in lines[5]
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_ray_executor_gives_the_same_kept_set(tmp_path):
    pytest.importorskip("ray")
    kept, drops = _run_crafted(tmp_path, 2, executor="ray", workers=2)
    assert kept == EXPECTED_KEPT and drops == EXPECTED_DROPS


def test_drop_log_holds_no_text(tmp_path):
    _run_crafted(tmp_path, 2)
    for path in (tmp_path / "work2local" / "dropped").glob("*/*.jsonl.gz"):
        import gzip

        for line in gzip.open(path, "rt"):
            assert set(json.loads(line)) == {"order", "reason", "path"}
    assert np.array_equal(code_shingles(GOOD), code_shingles(GOOD))
