"""Measure the training throughput the sizing rule needs, on this machine.

    python -m phi_utils calibrate --profile tiny          # ~1 min on 2 CPU cores
    python -m phi_utils calibrate --profile tiny --steps 30

Each candidate preset of `compute.presets` is trained by this repository's Trainer (the profile's
batch, sequence length, precision, dropout and thread count; the tokenizer's vocabulary) on random
tokens for a few steps after a warm-up, and the tokens/s are printed with the `--set` line that makes
the profile size its runs by them. Run it on a quiet machine: the sizing reads these numbers as the
host's speed.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from ..config import TrainConfig


def measure_tokens_per_s(preset: str, vocab_size: int, tc: TrainConfig, steps: int = 20, warmup: int = 3) -> float:
    """Tokens/s of `steps` Trainer steps of `preset` with `tc`'s batch settings, after `warmup` steps."""
    import dataclasses

    from ..model.config import training_model_config
    from .data import PackedData, write_packed_arrays
    from .dist import DistEnv, resolve_device
    from .loop import Trainer, build_model

    seq = tc.seq_len
    rows = 2 * tc.global_batch_size
    tok = np.random.default_rng(0).integers(0, vocab_size, size=(rows, seq))
    mask = np.ones_like(tok, dtype=np.uint8)
    run_tc = dataclasses.replace(tc, model=preset, max_steps=warmup + steps + 1, warmup_steps=1, eval_interval=10**9,
                                 checkpoint_interval=10**9)
    with tempfile.TemporaryDirectory() as tmp:
        write_packed_arrays(Path(tmp) / "d", {"train": (tok, mask), "val": (tok[:2], mask[:2])}, vocab_size, 0)
        mc = training_model_config(preset, vocab_size, run_tc.dropout, seq)
        trainer = Trainer(build_model(mc), run_tc, PackedData.open(Path(tmp) / "d", "train"), None, Path(tmp) / "out",
                          DistEnv(device=resolve_device("cpu")), progress=False)
        for _ in range(warmup):
            trainer.train_step()
        t0 = time.perf_counter()
        for _ in range(steps):
            trainer.train_step()
        return steps * run_tc.global_batch_size * seq / (time.perf_counter() - t0)


def host_name() -> str:
    """The CPU's model name with its family/model numbers (e.g. `AMD EPYC (family 25 model 17)`)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        return platform.machine()
    name = fields.get("model name", platform.machine())
    return f"{name} (family {fields.get('cpu family', '?')} model {fields.get('model', '?')})"


def cli_calibrate(argv: Sequence[str]) -> int:
    import torch

    from ..config import resolve_config

    ap = argparse.ArgumentParser(prog="python -m phi_utils calibrate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="tiny")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    ap.add_argument("--steps", type=int, default=20, help="timed steps per preset (after 3 warm-up steps)")
    args = ap.parse_args(list(argv))
    cfg = resolve_config(args.profile, [], args.set)
    tc = cfg.pretrain
    if tc.num_threads:
        torch.set_num_threads(tc.num_threads)
    rates = []
    for preset in cfg.compute.presets:
        rates.append(measure_tokens_per_s(preset, cfg.tokenizer.vocab_size, tc, steps=args.steps))
        print(f"{preset}: {rates[-1]:,.0f} tokens/s (batch {tc.global_batch_size} x {tc.seq_len}, "
              f"{torch.get_num_threads()} threads)", flush=True)
    print(f"host: {host_name()}, {torch.get_num_threads()} threads")
    print("--set compute.tokens_per_s=" + ",".join(f"{r:.0f}" for r in rates))
    return 0
