"""The Figure 2.1 arm/seed registry and the packing shared between an arm's seeds."""

from __future__ import annotations

import json

import pytest

from phi_utils.config import ConfigError, get_profile
from phi_utils.arms import (ARMS, COMPARISONS, budget_of, check_seeds, init_step, parse_step,
                                  representative_steps, scaling_steps, step_name, step_train_config, training_steps)


def test_every_arm_and_seed_is_one_step():
    cfg = get_profile("tiny")
    steps = training_steps(cfg)
    n_pre = len(cfg.pretrain.seeds) * sum(a.config == "pretrain" for a in ARMS)
    assert len(steps) == n_pre + len(cfg.finetune.seeds) == len(set(steps))
    assert len(cfg.pretrain.seeds) >= 2 and len(cfg.finetune.seeds) >= 2
    assert steps[:2] == ["pretrain_raw_s0", "pretrain_raw_s1"]
    assert "pretrain_filtered_s1" in steps and steps[-1] == f"finetune_s{cfg.finetune.seeds[-1]}"
    for s in steps:  # the names parse back to their arm and seed
        arm, seed = parse_step(s)
        assert step_name(arm, seed) == s
    assert init_step("finetune_s2") == "pretrain_textbook_s2" and init_step("pretrain_raw_s0") is None
    assert [s for s, _ in representative_steps(cfg)] == ["pretrain_raw_s0", "pretrain_filtered_s0",
                                                          "pretrain_textbook_s0", "finetune_s0"]
    # A, B', B share one TrainConfig: the same model size and token budget
    assert {a.config for a in ARMS if a.key != "finetune"} == {"pretrain"}
    assert [(hi, lo) for hi, lo, _ in COMPARISONS] == [("filtered", "raw"), ("textbook", "filtered"),
                                                       ("textbook", "raw"), ("finetune", "textbook")]


def test_smaller_budgets_are_steps_of_their_own_sized_by_the_rule():
    cfg = get_profile("tiny")
    steps = scaling_steps(cfg)
    divs = cfg.compute.scaling_divisors
    assert len(steps) == len(ARMS) * len(divs) * len(cfg.compute.scaling_seeds) == len(set(steps))
    assert not set(steps) & set(training_steps(cfg))
    for s in steps:
        arm, seed = parse_step(s)
        assert step_name(arm, seed, budget_of(s)) == s and budget_of(s) in divs
    d = max(divs)
    assert init_step(f"finetune_div{d}_s0") == f"pretrain_textbook_div{d}_s0"
    # a smaller budget trains fewer tokens, each budget at or above the tokens-per-parameter floor
    main, small = step_train_config(cfg, "pretrain_raw_s0"), step_train_config(cfg, f"pretrain_raw_div{d}_s0")
    assert main is cfg.pretrain and small.max_steps < main.max_steps
    assert step_train_config(cfg, f"finetune_div{d}_s0").max_steps < cfg.finetune.max_steps


@pytest.mark.parametrize("bad", ["pretrain_raw", "pretrain_textbook", "finetune", "pretrain_raw_sX", "eval_s0",
                                 "pretrain_raw_s0_s1", "pretrain_raw_div_s0", "pretrain_raw_s0_div3"])
def test_unknown_steps_are_one_clear_error(bad):
    with pytest.raises(ValueError, match="unknown training step"):
        parse_step(bad)


def test_seed_config_is_checked():
    with pytest.raises(ConfigError, match="train.seeds"):
        get_profile("smoke", **{"pretrain.seeds": [0, 0]})
    cfg = get_profile("smoke", **{"finetune.seeds": [5]})
    with pytest.raises(ValueError, match=r"finetune.seeds \[5\] are not in pretrain.seeds"):
        check_seeds(cfg)


def test_seeds_share_one_packing_and_repacking_never_touches_the_other(tmp_path):
    import datasets

    from phi_utils.model.tokenizer import train_tokenizer
    from phi_utils.rundir import save_dataset
    from phi_utils.train.data import PackedData
    from phi_utils.train.prepare import prepare_packed

    texts = [f"def f{i}(x):\n    return x * {i} + {i % 7}\n" for i in range(200)]
    save_dataset(datasets.Dataset.from_dict({"text": texts}), tmp_path / "ds")
    tok = train_tokenizer(texts, 300, show_progress=False)
    a, b = tmp_path / "pretrain_raw_s0" / "data", tmp_path / "pretrain_raw_s1" / "data"
    meta_a = prepare_packed(tmp_path / "ds", tok, a, 32, 0.1, 0)
    meta_b = prepare_packed(tmp_path / "ds", tok, b, 32, 0.1, 0, reuse_from=[tmp_path / "nowhere", a])
    assert meta_a == meta_b
    assert (a / "train.tokens.bin").stat().st_ino == (b / "train.tokens.bin").stat().st_ino  # linked, not re-packed
    before = PackedData.open(b, "train").tokens.copy()
    # a different packing of seed 0 (other sequence length) writes new files; seed 1's stay intact
    prepare_packed(tmp_path / "ds", tok, a, 16, 0.1, 0)
    assert json.loads((a / "meta.json").read_text())["seq_len"] == 16
    assert (PackedData.open(b, "train").tokens == before).all()
    # a packing with another fingerprint is not reused
    c = tmp_path / "pretrain_raw_s2" / "data"
    prepare_packed(tmp_path / "ds", tok, c, 32, 0.1, 0, reuse_from=[a])
    assert (c / "train.tokens.bin").stat().st_ino != (a / "train.tokens.bin").stat().st_ino
    assert (PackedData.open(c, "train").tokens == before).all()


def test_torchrun_entry_point_rejects_an_unknown_step(tmp_path, capsys):
    from phi_utils.train.__main__ import main

    with pytest.raises(SystemExit):
        main(["--step", "pretrain_textbook", "--run-dir", str(tmp_path), "--profile", "smoke"])
    assert "unknown training step 'pretrain_textbook'" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # the deprecated name still works, with a warning
        main(["--stage", "pretrain_textbook", "--run-dir", str(tmp_path), "--profile", "smoke"])
    err = capsys.readouterr().err
    assert "--stage is deprecated, use --step" in err and "unknown training step" in err
    with pytest.raises(SystemExit):  # overrides are typed and checked as `run` checks them
        main(["--step", "pretrain_textbook_s0", "--run-dir", str(tmp_path), "--profile", "smoke",
              "--set", "pretrain.max_steps=abc"])
    assert "pretrain.max_steps: expected an integer, got 'abc'" in capsys.readouterr().err
