"""`python -m phi_utils.train` - one training step, launched directly or by `torchrun`.

Examples::

    python -m phi_utils.train --run-dir runs/tiny --step pretrain_textbook_s0
    torchrun --standalone --nproc_per_node=8 -m phi_utils.train --run-dir runs/paper \\
        --step pretrain_textbook_s0 --parallel fsdp
    python -m phi_utils.train --profile smoke --run-dir /tmp/r --step finetune_s0 --set finetune.max_steps=4

A training step is one arm, budget and seed, `<arm>_s<seed>` or `<arm>_div<d>_s<seed>`
(`phi_utils.arms`). `--stage` is the deprecated name of `--step` (a stage is a notebook).

Multi-node: run the same command on every node with `--nnodes=N --rdzv_backend=c10d
--rdzv_endpoint=HOST:29500 --rdzv_id=JOB` instead of `--standalone`; the run directory must be on a
filesystem all nodes share (global rank 0 packs the data and writes checkpoints; every rank reads them).

The config comes from `--config` (a JSON ProfileConfig, e.g. a run directory's `run.json`), else
the run directory's `run.json`, else `--profile`; `--set a.b=value` overrides, parsed by the field's
type and checked together (`config.apply_overrides`, as `python -m phi_utils run` does).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..arms import parse_step, step_train_config
from ..config import ConfigError, apply_overrides, config_from_dict, get_profile
from ..rundir import RunDir, read_json
from ..steps import open_run, step_graph
from .dist import destroy, init_distributed
from .steps import run_step


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m phi_utils.train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--step", help="arm, budget and seed, e.g. pretrain_raw_s0, pretrain_filtered_s1, "
                                   "pretrain_textbook_div3_s0, finetune_s0")
    ap.add_argument("--stage", dest="stage", help="deprecated name of --step")
    ap.add_argument("--run-dir", required=True, help="run directory (inputs and outputs)")
    ap.add_argument("--config", help="JSON ProfileConfig (or a run.json holding one under 'config')")
    ap.add_argument("--profile", help="profile name when no config is given")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override, e.g. pretrain.max_steps=10")
    ap.add_argument("--parallel", default=None, choices=["ddp", "fsdp"],
                    help="multi-rank strategy (default: the stage's train.parallel)")
    ap.add_argument("--force", action="store_true", help="discard checkpoints and retrain")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    if args.stage and not args.step:
        print("python -m phi_utils.train: --stage is deprecated, use --step", file=sys.stderr)
        args.step = args.stage
    if not args.step:
        ap.error("--step is required")
    try:
        parse_step(args.step)
    except ValueError as e:
        ap.error(str(e))

    run_json = Path(args.run_dir) / "run.json"
    try:
        if args.config:
            d = read_json(Path(args.config))
            cfg = config_from_dict(d.get("config", d))
        elif run_json.exists():
            cfg = config_from_dict(read_json(run_json)["config"])
        elif args.profile:
            cfg = get_profile(args.profile)
        else:
            ap.error("give --config, --profile or a --run-dir that has a run.json")
        cfg = apply_overrides(cfg, sets=args.set)
    except ConfigError as e:
        ap.error(str(e))
    env = init_distributed(cfg.device)
    try:
        rd = open_run(cfg, args.run_dir) if env.is_main else RunDir(Path(args.run_dir), cfg.name, cfg, step_graph(cfg))
        parallel = args.parallel or step_train_config(cfg, args.step).parallel
        counts = run_step(cfg, rd, args.step, force=args.force, parallel=parallel,
                           progress=not args.no_progress, env=env)
        if env.is_main:
            print(json.dumps(counts, indent=2, default=str))
    finally:
        destroy(env)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
