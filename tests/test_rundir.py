"""The run-directory contract: fingerprints, the step graph, the lock, strict JSON, overrides."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from phi_utils import rundir
from phi_utils.config import (PROFILE_NAMES, REPO_ROOT, ConfigError, config_from_dict, describe_config,
                              get_profile, read_overrides_file, resolve_config)
from phi_utils.rundir import (RunDir, RunDirError, RunLock, RunLockedError, StepGraph, StepSpec, UndeclaredRead,
                              loads_strict, write_json_atomic, write_jsonl_atomic)
from phi_utils.steps import open_run, open_stage, step_graph


# ------------------------------------------------------------------ the step graph
def test_every_step_the_code_writes_is_in_the_graph():
    """A step name used by a stage module but missing from the step graph would fail at run time; find it here."""
    names: set[str] = set()
    for p in (REPO_ROOT / "phi_utils").rglob("*.py"):
        src = p.read_text(encoding="utf-8")
        names.update(re.findall(r'^STEP = "([a-z_]+)"', src, re.M))
        names.update(re.findall(r'rd\.(?:step|mark_complete|is_complete|invalidate|require|view)\("([a-z_]+)"', src))
    from phi_utils.model.tokenizer import RUN_SOURCES
    from phi_utils.arms import scaling_steps, training_steps

    names.update(step for step, _ in RUN_SOURCES)
    for profile in PROFILE_NAMES:
        cfg = get_profile(profile)
        graph = step_graph(cfg)
        steps = names | set(training_steps(cfg)) | set(scaling_steps(cfg))
        assert {"corpus", "textbooks", "pretrain_raw_s0", "finetune_s0", "eval", "contamination", "scaling"} <= steps
        assert steps == set(graph), f"in the code, not the graph: {steps - set(graph)}; the reverse: {set(graph) - steps}"


def test_training_steps_come_from_the_arm_registry():
    from phi_utils.arms import ARMS

    cfg = get_profile("tiny")
    cfg.pretrain.seeds, cfg.finetune.seeds = [0, 3], [3]
    graph = step_graph(cfg)
    assert [s for s in graph if s.startswith("pretrain_textbook_s")] == ["pretrain_textbook_s0", "pretrain_textbook_s3"]
    assert graph["finetune_s3"].deps[-1] == "pretrain_textbook_s3"  # C of seed k reads B of seed k
    assert graph["finetune_div9_s0"].deps[-1] == "pretrain_textbook_div9_s0"  # ... at the same budget
    assert {"pretrain_raw_s0", "pretrain_raw_s3", "finetune_s3"} <= set(graph["eval"].deps)
    assert "finetune_s0" not in graph and "pretrain_raw_div3_s0" not in graph["eval"].deps
    assert {"pretrain_raw_div3_s0", "finetune_div9_s0"} <= set(graph["scaling"].deps)
    for a in ARMS:  # each arm's step: its notebook, its section, the step that writes its dataset
        spec = graph[f"{a.prefix}_s3"]
        assert (spec.stage, spec.reads[0], spec.deps[1]) == (a.stage, a.config, a.dataset.split("/")[0])
    # adding a seed redoes nothing that exists: the seed lists are not fingerprinted
    assert "pretrain.seeds" not in graph.fields(cfg, "pretrain_raw_s0")
    assert step_graph(get_profile("tiny")) != graph and "finetune_s3" not in step_graph(get_profile("tiny"))


def test_graph_is_ordered_and_every_read_resolves_in_every_profile():
    for profile in PROFILE_NAMES:
        cfg = get_profile(profile)
        graph = step_graph(cfg)
        seen: set[str] = set()
        for name, spec in graph.items():
            assert set(spec.deps) <= seen, f"{name} depends on a later step"
            seen.add(name)
            fields = graph.fields(cfg, name)
            assert fields and "teacher.base_url" not in fields
    graph = step_graph(get_profile("tiny"))
    assert "pretrain.max_steps" in graph.fields(get_profile("tiny"), "pretrain_textbook_s0")
    assert "pretrain.max_steps" not in graph.fields(get_profile("tiny"), "finetune_s0")


def test_unknown_step_and_bad_graphs_fail_loudly(tmp_path):
    rd = open_run(get_profile("smoke"), tmp_path / "run")
    with pytest.raises(RunDirError, match="'pretrain_filtered' is not in the run's step graph"):
        with rd.step("pretrain_filtered"):
            pass
    with pytest.raises(RunDirError, match="'x' depends on 'no_such_step', which is not an earlier step"):
        StepGraph({"x": StepSpec("06", ("pretrain",), ("no_such_step",))})
    with pytest.raises(RunDirError, match="'b' depends on 'a', which is not an earlier step"):
        StepGraph({"b": StepSpec("01", ("seed",), ("a",)), "a": StepSpec("01", ("seed",))})
    with pytest.raises(RunDirError, match="not a configuration field"):
        StepGraph({"bad_reads": StepSpec("06", ("pretrain.max_stepz",))}).fields(get_profile("smoke"), "bad_reads")
    bare = RunDir.open(get_profile("smoke"), tmp_path / "run")  # the teacher's cache needs no steps; steps do
    with pytest.raises(RunDirError, match="opened without a step graph"):
        bare.is_complete("corpus")


def test_a_step_reads_only_what_it_declares(tmp_path):
    """Inside a step the configuration is a view: a declared field (or one no fingerprint covers) reads as
    usual; any other field is one error naming the step and the field; nothing can be set."""
    import pickle

    rd = open_run(get_profile("smoke"), tmp_path / "run")
    cfg = rd.view("model_card")
    assert (cfg.pretrain.model, cfg.pretrain.seq_len, cfg.seed) == ("smoke", 128, 0)
    assert cfg.pretrain.num_threads == 0 and cfg.device == "auto"  # not fingerprinted: readable anywhere
    with pytest.raises(UndeclaredRead, match="step 'model_card' read 'pretrain.lr', which its StepSpec does not declare"):
        cfg.pretrain.lr
    with pytest.raises(UndeclaredRead, match="read 'corpus'"):
        cfg.corpus
    with pytest.raises(UndeclaredRead, match="read 'to_dict'"):  # a method reads every field
        cfg.to_dict()
    with pytest.raises(TypeError, match="read-only"):
        cfg.seed = 3
    assert rd.view("tokenizer").tokenizer is rd.cfg.tokenizer  # a declared section is the section itself
    assert pickle.loads(pickle.dumps(cfg)).pretrain.model == "smoke"  # views cross to worker processes
    assert rundir.strict(cfg.pretrain) == {"model": "smoke", "seq_len": 128, "keep_checkpoints": 2, "num_threads": 0,
                                           "parallel": "ddp", "seeds": [0, 1, 2]}


def test_changing_each_declared_field_redoes_exactly_its_readers_and_their_dependents(tmp_path):
    """Every step of the smoke graph marked done; then each field the `textbooks` step declares is changed
    in turn, and exactly the steps that read it (declared, by the graph's own rule) plus everything
    downstream of them report a reason to redo."""
    import copy

    from phi_utils.config import flatten

    base = get_profile("smoke")
    graph = step_graph(base)

    def done_run(path: Path) -> RunDir:
        rd = RunDir.open(base, path, graph=graph)
        for step in graph:
            rd.mark_complete(step)
        assert not any(rd.redo_reasons(s) for s in graph)
        return rd

    def changed(value: object) -> object:
        if isinstance(value, bool):
            return not value
        if isinstance(value, (int, float)):
            return value + 1
        if isinstance(value, str):
            return value + "x"
        if isinstance(value, list):
            return value + value[:1] if value else [1]
        return "changed" if value is None else None

    def set_dotted(cfg: object, dotted: str, value: object) -> None:
        *parents, leaf = dotted.split(".")
        for p in parents:
            cfg = getattr(cfg, p)
        object.__setattr__(cfg, leaf, value)

    rd = done_run(tmp_path / "run")
    declared = graph.fields(base, "textbooks")
    assert {"textbooks.n_passages", "teacher.model", "seed"} <= set(declared)
    flat = flatten(rundir.strict(base.to_dict()))
    for dotted in declared:
        cfg = copy.deepcopy(base)
        set_dotted(cfg, dotted, changed(flat[dotted]))
        readers = [s for s in graph if any(dotted == r or dotted.startswith(r + ".") for r in graph[s].reads)]
        expected = set(graph.downstream(readers))
        probe = RunDir(rd.path, base.name, cfg, graph)
        # a step is redone when its own fields changed, or (once they are redone) an upstream one was
        own = {s for s in graph if graph.fields(cfg, s) != graph.fields(base, s)}
        assert own == set(readers), dotted
        assert {s for s in graph if probe.redo_reasons(s)} == own, dotted
        assert "textbooks" in own and set(graph.downstream(own)) == expected
        assert "corpus" not in expected or dotted == "seed"
    unfingerprinted = copy.deepcopy(base)
    unfingerprinted.teacher.concurrency += 1
    assert not any(RunDir(rd.path, base.name, unfingerprinted, graph).redo_reasons(s) for s in graph)


# ------------------------------------------------------------------ fingerprints at the step level
def _do(rd: RunDir, step: str, log: list[str], force: bool = False) -> None:
    with rd.step(step, force) as rec:
        if rec is not None:
            log.append(step)
            (rec.path / "out.txt").write_text(step)


def test_changed_field_redoes_the_step_and_its_dependents_and_says_why(tmp_path, capsys):
    cfg = get_profile("smoke")
    rd = open_run(cfg, tmp_path / "run")
    log: list[str] = []
    for s in ("corpus", "textbooks", "tokenizer", "pretrain_raw_s0", "pretrain_textbook_s0"):
        _do(rd, s, log)
    assert log == ["corpus", "textbooks", "tokenizer", "pretrain_raw_s0", "pretrain_textbook_s0"]
    stamp = rd.manifest("corpus")["finished"], rd.manifest("corpus")["run_id"]

    cfg2 = get_profile("smoke")
    cfg2.textbooks.n_passages = cfg.textbooks.n_passages + 1
    rd2 = open_run(cfg2, tmp_path / "run")
    assert rd2.redo_reasons("textbooks") == [f"textbooks.n_passages {cfg.textbooks.n_passages} -> "
                                            f"{cfg.textbooks.n_passages + 1}"]
    assert rd2.redo_reasons("corpus") == []
    capsys.readouterr()
    log.clear()
    for s in ("corpus", "textbooks", "tokenizer", "pretrain_raw_s0", "pretrain_textbook_s0"):
        _do(rd2, s, log)
    out = capsys.readouterr().out
    # textbooks, then what reads it (the tokenizer trains on it), then what reads the tokenizer
    assert log == ["textbooks", "tokenizer", "pretrain_raw_s0", "pretrain_textbook_s0"]
    assert "textbooks: textbooks.n_passages" in out and "tokenizer: upstream textbooks was redone" in out
    assert (rd2.manifest("corpus")["finished"], rd2.manifest("corpus")["run_id"]) == stamp
    # A field no step's result depends on redoes nothing.
    cfg3 = get_profile("smoke")
    cfg3.textbooks.n_passages = cfg2.textbooks.n_passages
    cfg3.teacher.concurrency = 7
    rd3 = open_run(cfg3, tmp_path / "run")
    assert all(rd3.redo_reasons(s) == [] for s in ("corpus", "textbooks", "tokenizer", "pretrain_raw_s0"))


def test_partial_work_is_kept_for_the_same_fingerprint_and_wiped_for_another(tmp_path):
    cfg = get_profile("smoke")
    rd = open_run(cfg, tmp_path / "run")
    with pytest.raises(KeyboardInterrupt):
        with rd.step("exercises") as rec:
            (rec.path / "partial.jsonl").write_text("{}\n")
            raise KeyboardInterrupt  # killed mid-step
    assert rd.redo_reasons("exercises") == ["interrupted before it finished"]
    rd.invalidate("exercises")  # restarting under the same configuration: resume from the partial file
    assert (rd.path / "exercises" / "partial.jsonl").exists()
    cfg.exercises.n_exercises += 1
    open_run(cfg, rd.path).invalidate("exercises")  # another configuration: its partial work is not ours
    assert not (rd.path / "exercises" / "partial.jsonl").exists()


def test_manifest_without_fingerprint_is_redone(tmp_path):
    rd = open_run(get_profile("smoke"), tmp_path / "run")
    write_json_atomic(rd.path / "corpus" / "_COMPLETE.json", {"step": "corpus", "counts": {}})
    assert rd.redo_reasons("corpus") == ["its manifest predates fingerprints"]
    assert not rd.is_complete("corpus")
    with pytest.raises(RunDirError, match="stale"):
        rd.require("corpus")


# ------------------------------------------------------------------ one run per directory
def test_second_run_on_a_locked_directory_refuses_at_once_naming_the_pid(tmp_path):
    path = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom phi_utils.rundir import RunLock\n"
                               f"with RunLock({str(path)!r}):\n    print('locked', flush=True)\n    time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT)
    try:
        assert holder.stdout.readline().strip() == "locked"
        t0 = time.monotonic()
        with pytest.raises(RunLockedError, match=rf"in use by PID {holder.pid} .*kill {holder.pid}"):
            with RunLock(path):
                pass
        proc = subprocess.run([sys.executable, "-m", "phi_utils", "run", "--profile", "smoke", "--run-dir", str(path),
                               "--stages", "05"], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
        assert proc.returncode == 2 and f"in use by PID {holder.pid}" in proc.stderr
        assert time.monotonic() - t0 < 60  # at once, not after waiting for the holder
    finally:
        holder.kill()
        holder.wait()
    with RunLock(path):  # a killed holder leaves no stale lock
        pass


# ------------------------------------------------------------------ strict JSON
def test_sidecars_and_manifests_are_strict_json(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from phi_utils.plots import save_figure

    data = {"nan": float("nan"), "inf": float("inf"), "ninf": -math.inf, "np": np.float32("nan"),
            "arr": np.array([1.0, np.nan]), "ok": 1.5, "tuple": (1, 2), "int": np.int64(3)}
    p = tmp_path / "x.json"
    write_json_atomic(p, data)
    got = loads_strict(p.read_text())
    assert got == {"nan": None, "inf": None, "ninf": None, "np": None, "arr": [1.0, None], "ok": 1.5,
                   "tuple": [1, 2], "int": 3}
    write_jsonl_atomic(tmp_path / "x.jsonl", [data])
    assert loads_strict((tmp_path / "x.jsonl").read_text()) == got
    with pytest.raises(ValueError, match="NaN is not JSON"):
        loads_strict('{"a": NaN}')

    rd = open_run(get_profile("smoke"), tmp_path / "run")
    fig = plt.figure()
    save_figure(fig, "99_test", data, rd)
    plt.close(fig)
    assert loads_strict((rd.path / "figures" / "99_test.json").read_text())["nan"] is None
    with rd.step("corpus") as rec:
        rec.counts = {"loss": float("nan")}
    assert loads_strict((rd.path / "corpus" / "_COMPLETE.json").read_text())["counts"] == {"loss": None}


def test_committed_figure_sidecars_are_strict_json():
    for p in sorted((REPO_ROOT / "figures").glob("*.json")):
        loads_strict(p.read_text(encoding="utf-8"))


# ------------------------------------------------------------------ overrides
def test_set_parses_by_the_fields_type_and_names_bad_input():
    cfg = resolve_config("tiny", sets=["compute.minutes_per_run=0", "pretrain.max_steps=200",
                                       "teacher.base_url=http://127.0.0.1:8000/v1",
                                       "pretrain.betas=0.9,0.99", "eval.benchmarks=humaneval",
                                       "contamination.retrain_taus=null", "exercises.decontaminate=false",
                                       "textbooks.near_dup_threshold=0.5"], seed=3)
    assert (cfg.pretrain.max_steps, cfg.teacher.base_url, cfg.pretrain.betas, cfg.eval.benchmarks) == \
        (200, "http://127.0.0.1:8000/v1", (0.9, 0.99), ["humaneval"])
    assert cfg.contamination.retrain_taus is None and cfg.exercises.decontaminate is False and cfg.seed == 3
    # fields checked together can be changed together, in either order; the result round-trips
    for sets in (["pretrain.global_batch_size=4", "pretrain.micro_batch_size=2"],
                 ["pretrain.micro_batch_size=2", "pretrain.global_batch_size=4"]):
        cfg = resolve_config("smoke", sets=sets)
        assert (cfg.pretrain.global_batch_size, cfg.pretrain.micro_batch_size) == (4, 2)
        assert config_from_dict(json.loads(json.dumps(cfg.to_dict()))).to_dict() == cfg.to_dict()
    with pytest.raises(ConfigError, match="global_batch_size must be a multiple of micro_batch_size"):
        resolve_config("smoke", sets=["pretrain.global_batch_size=6", "pretrain.micro_batch_size=4"])
    # with compute sizing on, the sized fields are the rule's: a hand-set value is one error naming it
    with pytest.raises(ConfigError, match="pretrain.max_steps is set by compute sizing"):
        resolve_config("tiny", sets=["pretrain.max_steps=200"])
    sized = resolve_config("tiny", sets=["compute.minutes_per_run=8"])
    assert sized.pretrain.max_steps > get_profile("tiny").pretrain.max_steps
    assert resolve_config("tiny", sets=[f"pretrain.max_steps={get_profile('tiny').pretrain.max_steps}"])  # its own value
    for bad, msg in (("pretrain.max_step=3", "unknown config field 'pretrain.max_step' .*did you mean 'max_steps'"),
                     ("pretrain.max_steps=abc", "pretrain.max_steps: expected an integer, got 'abc'"),
                     ("pretrain=3", "'pretrain' is a section"),
                     ("teacher.temperature=9", r"teacher.temperature must be in \[0, 2\]"),
                     ("exercises.decontaminate=maybe", "expected true or false"),
                     ("pretrain.precision=fp8", "pretrain.precision must be one of 'fp32', 'bf16', 'fp16'; got 'fp8'"),
                     ("eval.benchmarks=humaneval,humaneval++", r"eval.benchmarks\[1\] must be one of 'humaneval', .*"
                                                                r"got 'humaneval\+\+'"),
                     ("nokey", "expected FIELD=VALUE")):
        with pytest.raises(ConfigError, match=msg):
            resolve_config("tiny", sets=[bad])


def test_config_files_yaml_json_and_run_json(tmp_path):
    y = tmp_path / "o.yaml"
    y.write_text("pretrain:\n  max_steps: 7\nteacher.model: gpt-4-0613\n")
    j = tmp_path / "o.json"
    j.write_text(json.dumps({"finetune": {"lr": 0.5}}))
    cfg = resolve_config("smoke", [y, j], ["pretrain.max_steps=8"])
    assert (cfg.pretrain.max_steps, cfg.teacher.model, cfg.finetune.lr) == (8, "gpt-4-0613", 0.5)
    rd = open_run(cfg, tmp_path / "run")
    again = resolve_config("smoke", [rd.path / "run.json"])  # a run's run.json reproduces its configuration
    assert again.to_dict() == config_from_dict(json.loads((rd.path / "run.json").read_text())["config"]).to_dict()
    assert again.pretrain.max_steps == 8
    (tmp_path / "bad.yaml").write_text("pretrain: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        read_overrides_file(tmp_path / "bad.yaml")
    (tmp_path / "bad2.yaml").write_text("pretrain:\n  max_stepz: 1\n")
    with pytest.raises(ConfigError, match="bad2.yaml: unknown config field 'pretrain.max_stepz'"):
        resolve_config("smoke", [tmp_path / "bad2.yaml"])


def test_open_stage_loads_the_runs_configuration(tmp_path):
    cfg = resolve_config("smoke", sets=["pretrain.max_steps=9"], seed=4)
    open_run(cfg, tmp_path / "run")
    got, rd = open_stage("smoke", tmp_path / "run", 4)
    assert got.pretrain.max_steps == 9 and got.seed == 4 and rd.cfg is got
    got, _ = open_stage("smoke", tmp_path / "run", 0)  # the notebook's default seed keeps the run's
    assert got.seed == 4
    got, _ = open_stage("smoke", tmp_path / "fresh", 2)  # no run.json: the profile's defaults
    assert got.pretrain.max_steps == get_profile("smoke").pretrain.max_steps and got.seed == 2


def test_config_command_prints_every_field_with_value_and_docstring(capsys):
    from phi_utils.cli import main

    assert main(["config", "--profile", "smoke", "--set", "pretrain.max_steps=200"]) == 0
    out = capsys.readouterr().out
    assert f"pretrain.max_steps = 200  (overridden; profile: {get_profile('smoke').pretrain.max_steps})" in out
    from phi_utils.config import TrainConfig, field_docs

    doc = " ".join(field_docs(TrainConfig)["max_steps"].split())
    assert out.split("pretrain.max_steps = 200")[1].splitlines()[1].strip() == doc
    cfg = get_profile("tiny")
    text = describe_config(cfg)
    from phi_utils.config import flatten

    for key in flatten(cfg.to_dict()):
        assert f"\n{key} = " in "\n" + text, key
    assert main(["config", "--profile", "tiny", "--set", "pretrain.nope=1"]) == 2
    assert "unknown config field 'pretrain.nope'" in capsys.readouterr().err


def test_a_stage_result_written_by_another_version_is_one_error_naming_the_file(tmp_path):
    """A cached step's JSON with a missing or unknown key (older code wrote it) names the file and keys."""
    from dataclasses import asdict

    from phi_utils.filtering.classifier import ClassifierReport, FilteringResult
    from phi_utils.rundir import read_result

    report = ClassifierReport(**{f: 0 for f in ClassifierReport.__dataclass_fields__})
    good = {f: 0 for f in FilteringResult.__dataclass_fields__} | {"report": asdict(report)}
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(good))
    assert isinstance(read_result(FilteringResult, path).report, ClassifierReport)

    path.write_text(json.dumps({k: v for k, v in good.items() if k != "n_kept"} | {"kept_share": 0.5}))
    with pytest.raises(RunDirError) as e:
        read_result(FilteringResult, path)
    assert str(path) in str(e.value) and "n_kept" in str(e.value) and "kept_share" in str(e.value)

    path.write_text("[1, 2]")
    with pytest.raises(RunDirError, match="expected a JSON object"):
        read_result(FilteringResult, path)


def test_a_new_output_format_redoes_the_step_and_its_dependents(tmp_path):
    """A step whose outputs changed format (a raised `StepSpec.version`) is redone, saying why, with
    everything downstream; a step at version 1 keeps the fingerprint it had before versions existed."""
    cfg = get_profile("smoke")
    old = StepGraph({"a": StepSpec("01", ("seed",)), "b": StepSpec("02", ("seed",), ("a",))})
    new = StepGraph({"a": StepSpec("01", ("seed",), version=2), "b": StepSpec("02", ("seed",), ("a",))})
    assert old.fields(cfg, "b") == new.fields(cfg, "b") == {"seed": 0}
    rd = RunDir.open(cfg, tmp_path / "run", graph=old)
    for step in old:
        rd.mark_complete(step)
    rd2 = RunDir.open(cfg, tmp_path / "run", graph=new)
    assert rd2.redo_reasons("a") == ['step.version "(unset)" -> 2'] and rd2.redo_reasons("b") == []
    rd2.mark_complete("a")
    assert rd2.redo_reasons("b") == ["upstream a was redone"]


def test_read_jsonl_reads_gzip_and_names_the_bad_line(tmp_path):
    """One reader for the run's JSONL and the benchmarks' `.jsonl.gz` release files, with the same errors."""
    import gzip

    from phi_utils.rundir import read_jsonl

    rows = [{"task_id": "a", "x": 1}, {"task_id": "b", "x": 2}]
    write_jsonl_atomic(tmp_path / "r.jsonl", rows)
    with gzip.open(tmp_path / "r.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write((tmp_path / "r.jsonl").read_text() + "\n{not json\n")
    assert read_jsonl(tmp_path / "r.jsonl") == rows
    with pytest.raises(RunDirError, match=r"r\.jsonl\.gz:4: malformed JSONL"):
        read_jsonl(tmp_path / "r.jsonl.gz")
    with gzip.open(tmp_path / "latin.jsonl.gz", "wb") as f:
        f.write(b'{"t": "caf\xe9"}\n')
    with pytest.raises(RunDirError, match=r"latin\.jsonl\.gz: not UTF-8"):
        read_jsonl(tmp_path / "latin.jsonl.gz")
