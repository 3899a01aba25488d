"""The compute-sizing rule: given a throughput and a budget, runs that meet the tokens-per-parameter
floor; exact parameter counts; the profile's runs derived from it; epoch accounting of a real run."""

from __future__ import annotations

import numpy as np
import pytest

from phi_utils.config import ConfigError, get_profile, resolve_config, run_size, sized_train_config
from phi_utils.sizing import MODEL_PRESETS, count_params, finetune_steps, schedule_fields, size_run

PRESETS = ["micro", "nano", "pico", "femto"]


@pytest.mark.parametrize("minutes", [0.3, 0.5, 1.0, 2.0, 4.0, 8.0, 30.0])
@pytest.mark.parametrize("count_embeddings", [False, True])
def test_the_rule_meets_the_floor_with_the_largest_model_that_can(minutes, count_embeddings):
    tps = [20_000.0, 28_000.0, 38_000.0, 50_000.0]
    per_step = 16 * 256
    try:
        r = size_run(minutes, PRESETS, tps, 2048, per_step, 20.0, count_embeddings)
    except ValueError as e:  # only when no candidate can meet the floor
        for name, t in zip(PRESETS, tps):
            n = count_params(name, 2048)
            counted = n.total if count_embeddings else n.non_embedding
            assert (minutes * 60 * t // per_step) * per_step < 20 * counted
        assert "too small a budget" in str(e)
        return
    assert r.tokens_per_param >= 20.0 and r.tokens == r.steps * per_step
    assert r.minutes <= minutes + 1e-9
    # every larger candidate would have missed the floor in the same minutes
    for name, t in zip(PRESETS, tps):
        n = count_params(name, 2048)
        counted = n.total if count_embeddings else n.non_embedding
        if counted > r.counted_params:
            assert (minutes * 60 * t // per_step) * per_step < 20 * counted


def test_more_compute_never_picks_a_smaller_model_and_counts_are_exact():
    import torch  # noqa: F401  (the model is built only to count)

    from phi_utils.model import PhiForCausalLM, get_model_config

    tps = [21_000.0, 28_000.0, 38_000.0, 50_000.0]
    sizes = [size_run(m, PRESETS, tps, 2048, 4096, 20.0, False).counted_params for m in (0.5, 1.5, 4, 12)]
    assert sizes == sorted(sizes) and len(set(sizes)) > 1
    for name in PRESETS + ["smoke"]:
        model = PhiForCausalLM(get_model_config(name, vocab_size=2000))
        n = count_params(name, 2000)
        assert sum(p.numel() for p in model.parameters()) == n.total
        emb = model.transformer.wte.weight.numel() + sum(p.numel() for p in model.lm_head.parameters())
        assert emb == n.embedding
    assert set(PRESETS) <= set(MODEL_PRESETS)


def test_finetuning_and_schedule_scale_with_the_run():
    assert finetune_steps(50_000_000_000, 3.1 / 50, 256 * 2048) == pytest.approx(5_913, abs=1)  # the paper's ~6k
    f = schedule_fields(1000, 0.02)
    assert f == {"max_steps": 1000, "warmup_steps": 20, "eval_interval": 125, "checkpoint_interval": 250}
    assert schedule_fields(3, 0.02)["warmup_steps"] == 1


def test_the_tiny_profile_is_sized_by_the_rule_at_every_budget():
    cfg = get_profile("tiny")
    c = cfg.compute
    assert c.minutes_per_run > 0 and len(c.scaling_divisors) >= 2
    main = run_size(cfg)
    assert (cfg.pretrain.model, cfg.pretrain.max_steps) == (main.preset, main.steps)
    assert main.tokens_per_param >= c.tokens_per_param
    for d in c.scaling_divisors:
        r = run_size(cfg, d)
        assert r.tokens_per_param >= c.tokens_per_param and r.tokens < main.tokens
        assert sized_train_config(cfg, "pretrain", d).max_steps == r.steps
    ft = cfg.finetune
    assert ft.max_steps * ft.global_batch_size * ft.seq_len == pytest.approx(main.tokens * c.finetune_token_ratio,
                                                                              rel=0.02)
    # the paper profile sizes its runs by hand
    assert get_profile("paper").compute.minutes_per_run == 0
    with pytest.raises(ConfigError, match="too small a budget"):
        resolve_config("tiny", sets=["compute.minutes_per_run=0.01"])


def test_epoch_accounting_of_a_real_run(tmp_path):
    """epochs over the data = tokens seen / the packed training tokens, counted by the sampler."""
    from phi_utils.config import TrainConfig
    from phi_utils.model.config import training_model_config
    from phi_utils.train import PackedData, Trainer, build_model
    from phi_utils.train.data import write_packed_arrays
    from phi_utils.train.dist import DistEnv, resolve_device

    rows, seq = 10, 32
    tok = np.random.default_rng(0).integers(0, 256, size=(rows, seq))
    write_packed_arrays(tmp_path / "d", {"train": (tok, np.ones_like(tok, dtype=np.uint8)),
                                         "val": (tok[:2], np.ones_like(tok[:2], dtype=np.uint8))}, 256, 0)
    tc = TrainConfig(model="femto", max_steps=7, global_batch_size=4, micro_batch_size=4, seq_len=seq, warmup_steps=1,
                     eval_interval=100, checkpoint_interval=100)
    trainer = Trainer(build_model(training_model_config("femto", 256, 0.0, seq)), tc,
                      PackedData.open(tmp_path / "d", "train"), None, tmp_path / "out",
                      DistEnv(device=resolve_device("cpu")), progress=False)
    result = trainer.fit(resume=False)
    assert result.tokens_seen == 7 * 4 * seq
    assert result.epochs == pytest.approx(7 * 4 / rows)  # 28 sequences drawn from 10: 2.8 epochs


def test_calibrate_measures_the_trainer_and_prints_the_set_line(capsys):
    from phi_utils.cli import main

    assert main(["calibrate", "--profile", "tiny", "--steps", "2", "--set", "compute.presets=femto",
                 "--set", "compute.tokens_per_s=50000", "--set", "pretrain.seq_len=64"]) == 0
    out = capsys.readouterr().out
    rate = float(out.split("femto: ")[1].split(" tokens/s")[0].replace(",", ""))
    assert rate > 0 and f"--set compute.tokens_per_s={rate:.0f}" in out and "host: " in out
