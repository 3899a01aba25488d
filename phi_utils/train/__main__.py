"""`python -m phi_utils.train` - one training stage, launched directly or by `torchrun`.

Examples::

    python -m phi_utils.train --run-dir runs/tiny --stage pretrain_textbook_s0
    torchrun --standalone --nproc_per_node=8 -m phi_utils.train --run-dir runs/paper \\
        --stage pretrain_textbook_s0 --parallel fsdp
    python -m phi_utils.train --profile smoke --run-dir /tmp/r --stage finetune_s0 --set finetune.max_steps=4

A stage is one arm and seed, `<arm>_s<seed>` (`phi_utils.train.arms`).

Multi-node: run the same command on every node with `--nnodes=N --rdzv_backend=c10d
--rdzv_endpoint=HOST:29500 --rdzv_id=JOB` instead of `--standalone`; the run directory must be on a
filesystem all nodes share (global rank 0 packs the data and writes checkpoints; every rank reads them).

The config comes from `--config` (a JSON ProfileConfig, e.g. a run directory's `run.json`), else
the run directory's `run.json`, else `--profile`; `--set a.b=value` overrides (value parsed as JSON).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..config import get_profile, set_dotted
from ..rundir import RunDir, read_json
from .dist import destroy, init_distributed
from .arms import parse_step
from .stages import profile_from_dict, run_stage, train_config_for


def _value(s: str):
    try:
        return json.loads(s)
    except json.JSONDecodeError:
        return s


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m phi_utils.train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", required=True, help="arm and seed, e.g. pretrain_raw_s0, pretrain_filtered_s1, "
                                                    "pretrain_textbook_s2, finetune_s0")
    ap.add_argument("--run-dir", required=True, help="run directory (inputs and outputs)")
    ap.add_argument("--config", help="JSON ProfileConfig (or a run.json holding one under 'config')")
    ap.add_argument("--profile", help="profile name when no config is given")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override, e.g. pretrain.max_steps=10")
    ap.add_argument("--parallel", default=None, choices=["ddp", "fsdp"],
                    help="multi-rank strategy (default: the stage's train.parallel)")
    ap.add_argument("--force", action="store_true", help="discard checkpoints and retrain")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    try:
        parse_step(args.stage)
    except ValueError as e:
        ap.error(str(e))

    run_json = Path(args.run_dir) / "run.json"
    if args.config:
        d = read_json(Path(args.config))
        cfg = profile_from_dict(d.get("config", d))
    elif run_json.exists():
        cfg = profile_from_dict(read_json(run_json)["config"])
    elif args.profile:
        cfg = get_profile(args.profile)
    else:
        ap.error("give --config, --profile or a --run-dir that has a run.json")
    for kv in args.set:
        key, _, val = kv.partition("=")
        set_dotted(cfg, key, _value(val))
    env = init_distributed(cfg.device)
    try:
        rd = RunDir.open(cfg, args.run_dir, create=env.is_main) if env.is_main else RunDir(Path(args.run_dir), cfg.name)
        parallel = args.parallel or train_config_for(cfg, args.stage).parallel
        counts = run_stage(cfg, rd, args.stage, force=args.force, parallel=parallel,
                           progress=not args.no_progress, env=env)
        if env.is_main:
            print(json.dumps(counts, indent=2, default=str))
    finally:
        destroy(env)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
