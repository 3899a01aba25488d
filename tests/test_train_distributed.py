"""2 gloo ranks under `torchrun` give the same losses and weights as one process with the same
global batch (DDP; FSDP2 `fully_shard` under `slow`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from phi_utils.train import read_metrics

pytestmark = pytest.mark.distributed
REPO = Path(__file__).resolve().parent.parent
SETS = ["pretrain.max_steps=6", "pretrain.micro_batch_size=2", "pretrain.global_batch_size=4", "pretrain.seq_len=64",
        "pretrain.warmup_steps=2", "pretrain.checkpoint_interval=3", "pretrain.eval_interval=3",
        "pretrain.eval_batches=2", "pretrain.dropout=0.0"]


@pytest.fixture(scope="module")
def fake_run(tmp_path_factory):
    sys.path.insert(0, str(Path(__file__).parent))
    from test_train_helpers import make_fake_run

    path = tmp_path_factory.mktemp("train_dist") / "rd"
    make_fake_run(path, profile="smoke", n_files=30, vocab_size=384)
    return path


def _run(rd: Path, nproc: int, parallel: str = "ddp") -> None:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"] \
        if nproc > 1 else [sys.executable]
    cmd = launcher + ["-m", "phi_utils.train", "--run-dir", str(rd), "--step", "pretrain_textbook_s0", "--no-progress",
                      "--parallel", parallel]
    for s in SETS:
        cmd += ["--set", s]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
    assert out.returncode == 0, out.stderr[-3000:]


def _compare(single: Path, multi: Path) -> None:
    from safetensors.torch import load_file

    a = read_metrics(single / "pretrain_textbook_s0" / "metrics.jsonl")
    b = read_metrics(multi / "pretrain_textbook_s0" / "metrics.jsonl")
    assert len(a) == len(b) == 6
    for ra, rb in zip(a, b):
        assert rb["loss"] == pytest.approx(ra["loss"], rel=1e-5, abs=1e-6)
        assert rb["grad_norm"] == pytest.approx(ra["grad_norm"], rel=1e-4)
        assert (ra.get("val_loss") is None) == (rb.get("val_loss") is None)
        if ra.get("val_loss") is not None:
            assert rb["val_loss"] == pytest.approx(ra["val_loss"], rel=1e-5)
    wa = load_file(str(single / "pretrain_textbook_s0" / "final" / "model.safetensors"))
    wb = load_file(str(multi / "pretrain_textbook_s0" / "final" / "model.safetensors"))
    # One process computes the LM head and loss fused (phi_utils.model.fast.linear_cross_entropy), the
    # DDP ranks unfused: the same sums in another order, which Adam can turn into weight steps of ~lr size
    # on near-zero gradients after a few steps (losses above agree to 1e-5).
    for k in wa:
        torch.testing.assert_close(wb[k], wa[k], rtol=1e-4, atol=1e-4)
    assert (multi / "pretrain_textbook_s0" / "_COMPLETE.json").exists()


@pytest.fixture(scope="module")
def single(fake_run, tmp_path_factory):
    d = tmp_path_factory.mktemp("single") / "rd"
    shutil.copytree(fake_run, d)
    _run(d, 1)
    return d


@pytest.fixture(scope="module")
def ddp(fake_run, tmp_path_factory):
    """The run of two DDP ranks, shared by the comparison and the resume test (which copies it)."""
    d = tmp_path_factory.mktemp("ddp") / "rd"
    shutil.copytree(fake_run, d)
    _run(d, 2, "ddp")
    return d


def test_two_gloo_ranks_ddp_equal_single_process(single, ddp):
    _compare(single, ddp)


@pytest.mark.slow
def test_two_gloo_ranks_fsdp2_equal_single_process(fake_run, single, tmp_path):
    multi = tmp_path / "fsdp"
    shutil.copytree(fake_run, multi)
    _run(multi, 2, "fsdp")
    _compare(single, multi)


@pytest.mark.slow
def test_fsdp2_resumes_from_a_checkpoint(fake_run, single, tmp_path):
    """Two FSDP2 ranks interrupted after the step-3 checkpoint (the final export and completion
    marker gone) resume from step 3 and end where one uninterrupted process does."""
    multi = tmp_path / "fsdp_resume"
    shutil.copytree(fake_run, multi)
    _run(multi, 2, "fsdp")
    out = multi / "pretrain_textbook_s0"
    shutil.rmtree(out / "final")
    # what a kill after the checkpoint leaves: the in-progress record of the same fingerprint, no marker
    (out / "_COMPLETE.json").rename(out / "_IN_PROGRESS.json")
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step_000003"]
    _run(multi, 2, "fsdp")
    import json

    assert json.loads((out / "_COMPLETE.json").read_text())["counts"]["resumed_from_step"] == 3
    _compare(single, multi)


def test_ddp_resumes_from_a_checkpoint(ddp, single, tmp_path):
    """Two DDP ranks resume as FSDP2 ranks do: rank 0 reads the step-3 checkpoint and sends the weights
    and optimizer state to the other rank; the run ends where one uninterrupted process does."""
    import json

    multi = tmp_path / "ddp_resume"
    shutil.copytree(ddp, multi)
    out = multi / "pretrain_textbook_s0"
    shutil.rmtree(out / "final")
    (out / "_COMPLETE.json").rename(out / "_IN_PROGRESS.json")
    _run(multi, 2, "ddp")
    assert json.loads((out / "_COMPLETE.json").read_text())["counts"]["resumed_from_step"] == 3
    _compare(single, multi)
